from collections.abc import Callable, Iterator
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from .lattice import DrawStream, Lattice

Text = str | bytes | bytearray | memoryview

class TokenizerCore:
    _lattice: Lattice
    _stream: DrawStream
    _alpha: float
    _normalize: bool
    _form: str
    _to_bytes: Callable[[Any], bytes]
    _int_word: int
    _bos_id: int
    _eos_id: int
    # (one overload per return type: the signatures repeat on purpose)
    @overload
    def encode(
        self,
        text: Text,
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float | None = None,
        iter: Literal[False] = False,
        *,
        key: Any = None,
        sampler: str = "exact",
        allowed_special: Any = (),
        disallowed_special: Any = (),
        as_numpy: Literal[False] = False,
        required_boundaries: Any = None,
        forbidden_boundaries: Any = None,
        boundary_regex: Any = None,
    ) -> list[int]: ...
    @overload
    def encode(
        self,
        text: Text,
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float | None = None,
        *,
        iter: Literal[True],
        key: Any = None,
        sampler: str = "exact",
        allowed_special: Any = (),
        disallowed_special: Any = (),
        as_numpy: Literal[False] = False,
        required_boundaries: Any = None,
        forbidden_boundaries: Any = None,
        boundary_regex: Any = None,
    ) -> Iterator[int]: ...
    @overload
    def encode(
        self,
        text: Text,
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float | None = None,
        iter: bool = False,
        *,
        key: Any = None,
        sampler: str = "exact",
        allowed_special: Any = (),
        disallowed_special: Any = (),
        as_numpy: Literal[True],
        required_boundaries: Any = None,
        forbidden_boundaries: Any = None,
        boundary_regex: Any = None,
    ) -> npt.NDArray[np.integer[Any]]: ...
    # (sample's parameters mirror LatticeSampler.sample's and the compiled queries':
    # a text, a count or alpha, a key and the boundary constraints, on purpose)
    def sample(
        self,
        text: Text,
        n: int,
        alpha: float,
        *,
        key: Any = None,
        with_log_prob: bool = False,
        required_boundaries: Any = None,
        forbidden_boundaries: Any = None,
        boundary_regex: Any = None,
    ) -> list[Any]: ...
    def _encode_careful(
        self,
        text: Text,
        add_bos: bool,
        add_eos: bool,
        alpha: float | None,
        iter: bool,
        key: Any,
        sampler: str,
        allowed_special: Any,
        disallowed_special: Any,
        as_numpy: bool,
        required_boundaries: Any,
        forbidden_boundaries: Any,
        boundary_regex: Any,
    ) -> Any: ...
