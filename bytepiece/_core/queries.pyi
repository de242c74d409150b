from typing import Any

import numpy as np
import numpy.typing as npt

from .lattice import Lattice

Mask = npt.NDArray[np.uint8] | None

# (The queries, like draws.sample_many, all take a lattice, a text, alpha and the
# constraint masks: their signatures are alike on purpose.)

def nbest(
    lattice: Lattice, data: bytes, n: int, *, chunked: bool = True, cuts: Mask = None, banned: Mask = None
) -> list[tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], float]]: ...
def path_score(
    lattice: Lattice, data: bytes, ends: npt.NDArray[np.int32], *, chunked: bool = True
) -> tuple[float, npt.NDArray[np.int32]]: ...
def entropy(
    lattice: Lattice, data: bytes, alpha: float, *, chunked: bool = True, cuts: Mask = None, banned: Mask = None
) -> tuple[float, float, float]: ...
def forward_log(
    lattice: Lattice, data: bytes, alpha: float, *, chunked: bool = True, cuts: Mask = None, banned: Mask = None
) -> npt.NDArray[np.float64]: ...
def boundary_marginals(
    lattice: Lattice,
    data: bytes,
    alpha: float,
    *,
    chunked: bool = True,
    logspace: bool = False,
    cuts: Mask = None,
    banned: Mask = None,
) -> tuple[float, npt.NDArray[np.float64]]: ...
def piece_marginals(
    lattice: Lattice,
    data: bytes,
    alpha: float,
    *,
    chunked: bool = True,
    logspace: bool = False,
    cuts: Mask = None,
    banned: Mask = None,
) -> tuple[float, npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.float64]]: ...
def piece_marginal_table(
    lattice: Lattice,
    data: bytes,
    alpha: float,
    fields: np.dtype[Any],
    id_offset: int,
    *,
    chunked: bool = True,
    cuts: Mask = None,
    banned: Mask = None,
) -> tuple[float, npt.NDArray[np.void]]: ...
def edges(
    lattice: Lattice, data: bytes, *, chunked: bool = True, cuts: Mask = None, banned: Mask = None
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int32]]: ...
def first_unreachable(
    lattice: Lattice, data: bytes, *, chunked: bool = True, cuts: Mask = None, banned: Mask = None
) -> int: ...
