from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .ngram_table import NgramTable
from .piece_table import PieceTable

class NgramModel:
    order: int
    size: int
    suffix_closed: bool
    @staticmethod
    def from_table(table: NgramTable, min_count: int) -> NgramModel: ...
    def logprob(self, ngram: bytes) -> float: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> NgramModel: ...
    def __reduce__(self) -> Any: ...
    def tokenize(self, chunk: bytes, ensure_unicode: bool = True) -> list[bytes]: ...

def finish_ngrams(
    table: NgramTable, min_count: int, limit: int = 0, threads: int = 1, release: bool = False
) -> tuple[NgramModel, tuple[list[bytes], npt.NDArray[np.int64]]]: ...
def count_pieces_block(
    chunks: Sequence[bytes], model: NgramModel, ensure_unicode: bool = True, max_pair_length: int = 0
) -> tuple[PieceTable, PieceTable | None]: ...
