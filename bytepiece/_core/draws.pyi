from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from .lattice import Lattice

Mask = npt.NDArray[np.uint8] | None

#: The largest number of draws (and n-best size, sample count) the core takes.
MAX_COUNT: int

# (one overload per return type: the signatures repeat on purpose)
@overload
def sample_many(
    lattice: Lattice,
    data: bytes,
    count: int,
    alpha: float,
    seed_word: int,
    key_word: int,
    *,
    chunked: bool = True,
    cuts: Mask = None,
    banned: Mask = None,
    lists: Literal[False] = False,
    log_probs: bool = True,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.float64] | None]: ...
@overload
def sample_many(
    lattice: Lattice,
    data: bytes,
    count: int,
    alpha: float,
    seed_word: int,
    key_word: int,
    *,
    chunked: bool = True,
    cuts: Mask = None,
    banned: Mask = None,
    lists: Literal[True],
    log_probs: bool = True,
) -> tuple[list[list[int]], list[float] | None]: ...
