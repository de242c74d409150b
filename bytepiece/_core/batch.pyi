from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from .lattice import Lattice

# (encode_lists and encode_flat take the same batch arguments on purpose: the same ids,
# as lists or as one flat array)
def encode_lists(
    lattice: Lattice,
    datas: list[Any],
    *,
    alpha: float = -1.0,
    seed_words: npt.NDArray[np.uint64] | None = None,
    key_words: npt.NDArray[np.uint64] | None = None,
    sampler: int = ...,
    bos: int = -1,
    eos: int = -1,
    form: str | None = None,
    convert: Callable[[Any], bytes] | None = None,
    chunked: bool = True,
    threads: int = 1,
    submit: Callable[[Callable[[], object], int], None] | None = None,
) -> list[list[int]]: ...
def encode_flat(
    lattice: Lattice,
    datas: list[Any],
    *,
    alpha: float = -1.0,
    seed_words: npt.NDArray[np.uint64] | None = None,
    key_words: npt.NDArray[np.uint64] | None = None,
    sampler: int = ...,
    bos: int = -1,
    eos: int = -1,
    small: bool = False,
    with_ends: bool = False,
    form: str | None = None,
    convert: Callable[[Any], bytes] | None = None,
    chunked: bool = True,
) -> tuple[np.ndarray, npt.NDArray[np.int64], npt.NDArray[np.int32] | None]: ...
