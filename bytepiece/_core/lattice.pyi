from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Text = str | bytes

#: The largest alpha the samplers and lattice queries take.
MAX_ALPHA: float
#: The samplers by name.
SAMPLERS: dict[str, int]

def count_total(counts: Sequence[int | float]) -> float: ...

class Lattice:
    num_pieces: int
    max_len: int
    min_logprob: float
    def __init__(self, pieces: Sequence[bytes], logprobs: npt.ArrayLike, ids: npt.ArrayLike) -> None: ...
    def with_logprobs(self, logprobs: npt.ArrayLike) -> Lattice: ...
    def viterbi(self, data: Text, bos: int = -1, eos: int = -1) -> list[int]: ...
    def sample(
        self,
        data: Text,
        alpha: float,
        seed_word: int,
        key_word: int,
        bos: int = -1,
        eos: int = -1,
        *,
        sampler: int = ...,
    ) -> list[int]: ...
    def pieces(
        self, data: bytes, alpha: float = -1.0, seed_word: int = 0, key_word: int = 0, *, sampler: int = ...
    ) -> list[bytes]: ...
    def segment(
        self,
        data: bytes,
        *,
        alpha: float = -1.0,
        seed_word: int = 0,
        key_word: int = 0,
        sampler: int = ...,
        chunked: bool = True,
        cuts: npt.NDArray[np.uint8] | None = None,
        banned: npt.NDArray[np.uint8] | None = None,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]: ...
    def __reduce__(self) -> Any: ...

class DrawStream:
    lattice: Lattice
    word: int
    def __init__(self, lattice: Lattice, word: int) -> None: ...
    def take(self, n: int = 1) -> int: ...
    def sample(self, data: Text, alpha: float, bos: int = -1, eos: int = -1) -> list[int]: ...
