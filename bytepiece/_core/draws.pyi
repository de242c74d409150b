import numpy as np
import numpy.typing as npt

from .lattice import Lattice

def sample_many(
    lattice: Lattice,
    data: bytes,
    count: int,
    alpha: float,
    seed_word: int,
    key_word: int,
    *,
    chunked: bool = True,
    cuts: npt.NDArray[np.uint8] | None = None,
    banned: npt.NDArray[np.uint8] | None = None,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
