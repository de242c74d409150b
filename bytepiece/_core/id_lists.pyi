from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")

def atomic_tuple(items: Iterable[T]) -> tuple[T, ...]: ...
