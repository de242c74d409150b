from collections.abc import Callable
from typing import Any, Literal

from .lattice import Lattice

def encode_constrained(
    lattice: Lattice,
    data: bytes,
    alpha: float,
    words: Callable[[Any], tuple[int, int]],
    key: Any,
    bos: int,
    eos: int,
    required: Any,
    forbidden: Any,
) -> list[int] | Literal[False] | None: ...
