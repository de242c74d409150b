import numpy as np
import numpy.typing as npt

from .lattice import Lattice
from .pair_counts import PairCounts

def split_scores(lattice: Lattice, datas: list[bytes]) -> npt.NDArray[np.float64]: ...
def expected_counts(
    lattice: Lattice,
    texts: list[bytes],
    counts: npt.NDArray[np.float64],
    *,
    alpha: float = 1.0,
    weights: npt.ArrayLike | None = None,
    chunked: bool = False,
    logspace: bool = False,
) -> float: ...
def viterbi_counts(
    lattice: Lattice, texts: list[bytes], weights: npt.ArrayLike, counts: npt.NDArray[np.float64]
) -> None: ...
def count_viterbi_pairs(
    lattice: Lattice,
    texts: list[bytes],
    weights: npt.ArrayLike,
    out: PairCounts,
    *,
    unigrams: npt.NDArray[np.int64] | None = None,
    odd: PairCounts | None = None,
) -> None: ...
