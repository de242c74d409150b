import numpy as np
import numpy.typing as npt

from .lattice import Lattice

GENERATORS: dict[str, int]

def encode_with_generator(
    lattice: Lattice,
    datas: list[str | bytes],
    alpha: float,
    seed_words: npt.NDArray[np.uint64],
    key_words: npt.NDArray[np.uint64],
    *,
    sampler: int = ...,
    generator: int = ...,
    chunked: bool = True,
) -> list[list[int]]: ...
def viterbi_windowed(
    lattice: Lattice, data: bytes, first_cap: int, *, chunked: bool = True
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]: ...
def viterbi_split(lattice: Lattice, data: bytes, *, forbid_whole: bool = False) -> list[int]: ...
def pick_edge(sums: list[float], u: float) -> int: ...
