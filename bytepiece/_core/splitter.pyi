from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .piece_table import PieceTable

class PieceSplitter:
    num_pieces: int
    def __init__(self, pieces: list[bytes], logprobs: npt.ArrayLike) -> None: ...
    def counts(self, texts: list[bytes], weights: Sequence[int] | npt.ArrayLike) -> npt.NDArray[np.int64]: ...
    def count_table(self, table: PieceTable) -> npt.NDArray[np.int64]: ...
