from typing import Any

import numpy as np
import numpy.typing as npt

from .ngram_table import NgramTable

def select_candidates(
    parts: list[Any], limit: int, bytes_order: bool = False
) -> tuple[list[bytes], npt.NDArray[np.int64]]: ...
def candidates_by_sorting(
    table: NgramTable, min_count: int, limit: int, threads: int = 1
) -> list[tuple[int, npt.NDArray[np.uint64], npt.NDArray[np.int64]]]: ...
def ngram_candidates(
    table: NgramTable, min_count: int, limit: int, threads: int = 1, release: bool = False, bytes_order: bool = False
) -> tuple[list[bytes], npt.NDArray[np.int64]]: ...

class ReadyResult:
    def __init__(self, value: Any) -> None: ...
    def result(self) -> Any: ...
