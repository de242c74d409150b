"""The Tokenizer: BytePiece 0.6.3's API over the compiled lattice, plus batches and keys.

Python does what needs Python (argument checks, NFC normalisation, keys, the
thread pool); everything per byte happens in ``bytepiece._lattice`` with the GIL
released.
"""
from __future__ import annotations

import itertools
import os
import threading
import unicodedata
import weakref
from functools import cached_property
from typing import Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np

from . import keys as _keys
from .analysis import LatticeQueries
from ._lattice import SAMPLER_EXACT, SAMPLER_LEGACY_V1, Lattice
from .model import (
    BOS_ID,
    EOS_ID,
    FIRST_PIECE_ID,
    SPECIAL_PIECES,
    ModelSource,
    Vocabulary,
    load_model,
    save_model,
)

Text = Union[str, bytes, bytearray, memoryview]

_nfc = unicodedata.normalize

SAMPLERS = {"exact": SAMPLER_EXACT, "legacy-v1": SAMPLER_LEGACY_V1}

# Batches smaller than this many bytes per thread are not worth a thread.
_MIN_BYTES_PER_THREAD = 1 << 16
_BLOCK_TEXTS = 64


class UnknownIdError(KeyError, ValueError):
    """An id outside the vocabulary (a KeyError, as in BytePiece 0.6.3, and a ValueError)."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


class Tokenizer(LatticeQueries):
    """A byte-level Unigram tokenizer; a drop-in replacement for BytePiece 0.6.3's.

    >>> tok = Tokenizer("bytepiece.model", seed=42)          # doctest: +SKIP
    >>> tok.tokenize("Hello world")                           # doctest: +SKIP
    [b'Hello', b' world']
    >>> tok.encode("Hello world", alpha=0.1, key=7)           # doctest: +SKIP

    ``pieces_or_path`` is a model file (JSON or a zip holding one), a dict in
    BytePiece's format, or a :class:`~bytepiece.model.Vocabulary`. ``seed``
    fixes the random samples (``alpha >= 0``); without it a random seed is
    drawn. ``normalize=False`` turns NFC normalisation off, so that
    ``decode(encode(x)) == x`` for every str.
    """

    def __init__(self, pieces_or_path: ModelSource, seed: Optional[_keys.Key] = None, *, normalize: bool = True):
        vocab = load_model(pieces_or_path)
        self._init(vocab, seed, normalize)

    def _init(self, vocab: Vocabulary, seed, normalize: bool) -> None:
        self._vocab = vocab
        self._normalize = bool(normalize)
        counts = np.asarray(vocab.counts, dtype=np.float64)
        # Same arithmetic as 0.6.3 (np.log of each count minus np.log of the integer
        # total), so that Viterbi ties are decided on identical floating-point scores.
        logprobs = np.log(counts) - np.log(sum(vocab.counts))
        self._logprobs = logprobs
        n = len(vocab.pieces)
        self._lattice = Lattice(list(vocab.pieces), logprobs, np.arange(FIRST_PIECE_ID, FIRST_PIECE_ID + n))
        self.vocab_size = n + FIRST_PIECE_ID
        # id -> bytes, with the special ids decoding to nothing (0.6.3 drops them).
        self._id_bytes: List[bytes] = [b""] * FIRST_PIECE_ID + list(vocab.pieces)
        self.set_seed(seed)
        _LIVE_TOKENIZERS.add(self)

    # -- randomness ---------------------------------------------------------
    def set_seed(self, seed: Optional[_keys.Key]) -> None:
        """Fix the samples: after ``set_seed(S)`` the same calls give the same samples,
        in any process. ``None`` draws a fresh random seed."""
        if seed is None:
            seed = _keys.random_seed()
        self._seed = seed
        self._int_word, self._hashed_word, self._stream_word = _keys.seed_words(seed)
        # Unkeyed calls are numbered; next() on a count is atomic under the GIL, so
        # threads sharing this tokenizer never draw the same call number.
        self._calls = itertools.count()

    def _words(self, key) -> tuple[int, int]:
        if key is None:
            return self._stream_word, next(self._calls)
        return _keys.key_words(key, self._int_word, self._hashed_word)

    def _reseed_stream(self) -> None:
        """Give this copy (forked child, unpickled copy) an unkeyed stream of its own."""
        self._stream_word = _keys.renewed_stream(self._stream_word)

    # -- text -> bytes ------------------------------------------------------
    def _to_bytes(self, text: Text) -> bytes:
        if isinstance(text, str):
            return (_nfc("NFC", text) if self._normalize else text).encode("utf-8")
        if isinstance(text, bytes):
            return text
        if isinstance(text, (bytearray, memoryview)):
            return bytes(text)
        raise TypeError(f"text must be str or bytes, not {type(text).__name__}")

    @staticmethod
    def _check_alpha(alpha) -> float:
        alpha = float(alpha)
        if alpha != alpha or alpha == float("inf"):
            raise ValueError(f"alpha must be a finite number (negative for Viterbi), not {alpha}")
        return alpha

    @staticmethod
    def _sampler(sampler: str) -> int:
        try:
            return SAMPLERS[sampler]
        except KeyError:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, not {sampler!r}") from None

    # -- the 0.6.3 API ------------------------------------------------------
    def tokenize(self, text: Text, alpha: float = -1, iter: bool = False, *, key=None, sampler: str = "exact"):
        """Pieces (bytes) of ``text``: the Viterbi segmentation when ``alpha < 0``, else one
        exact draw with probability proportional to exp(alpha * score).

        >>> tok.tokenize("tokenizer")                       # doctest: +SKIP
        [b'token', b'izer']

        ``key`` (int, str, bytes or a tuple of those) makes the draw a pure function of
        (seed, key, text, alpha). ``sampler="legacy-v1"`` is the first, inexact variant.
        """
        data = self._to_bytes(text)
        if alpha < 0:  # NaN is not < 0: the core rejects it below
            pieces = self._lattice.tokenize(data)
        else:
            seed_word, key_word = self._words(key)
            pieces = self._lattice.tokenize(data, alpha, seed_word, key_word, True, self._sampler(sampler))
        return pieces.__iter__() if iter else pieces

    def encode(self, text: Text, add_bos: bool = False, add_eos: bool = False, alpha: float = -1,
               iter: bool = False, *, key=None, sampler: str = "exact"):
        """Ids of ``text`` (see :meth:`tokenize` for ``alpha``, ``key`` and ``sampler``).

        >>> tok.encode("tokenizer", add_eos=True)           # doctest: +SKIP
        [20577, 16386, 2]
        """
        # The hot path of per-line encoding: kept free of helper calls for str input.
        if type(text) is str:
            data = (_nfc("NFC", text) if self._normalize else text).encode("utf-8")
        else:
            data = self._to_bytes(text)
        bos = BOS_ID if add_bos else -1
        eos = EOS_ID if add_eos else -1
        if alpha < 0:  # NaN is not < 0: the core rejects it below
            ids = self._lattice.encode(data, -1.0, 0, 0, True, 0, 0, bos, eos)
        else:
            seed_word, key_word = self._words(key)
            ids = self._lattice.encode(data, alpha, seed_word, key_word, True, self._sampler(sampler), 0, bos, eos)
        return ids.__iter__() if iter else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; special ids are dropped and invalid UTF-8 is skipped, as in 0.6.3.

        >>> tok.decode(tok.encode("tokenizer"))             # doctest: +SKIP
        'tokenizer'
        """
        return self.decode_bytes(ids).decode("utf-8", errors="ignore")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The exact bytes of ``ids`` (special ids contribute nothing).

        >>> tok.decode_bytes(tok.encode(b"\\xff\\xfe"))         # doctest: +SKIP
        b'\\xff\\xfe'
        """
        table = self._id_bytes
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        elif not isinstance(ids, (list, tuple)):
            ids = list(ids)
        try:
            if ids and (min(ids) < 0 or max(ids) >= len(table)):
                raise IndexError
            return b"".join([table[i] for i in ids])
        except (IndexError, TypeError):
            bad = next(i for i in ids if not (isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                                              and 0 <= i < len(table)))
            raise UnknownIdError(f"id {bad!r} is not in the vocabulary (0 .. {len(table) - 1})") from None

    def piece_to_id(self, piece):
        """Id of a piece (bytes) or of '<pad>', '<bos>', '<eos>'."""
        return self._piece2id[piece]

    def id_to_piece(self, i):
        """Piece (bytes) of an id; '<pad>', '<bos>', '<eos>' for 0, 1, 2."""
        return self._id2piece[i]

    def pieces_to_ids(self, pieces):
        table = self._piece2id
        return [table[p] for p in pieces]

    def ids_to_pieces(self, ids):
        table = self._id2piece
        return [table[i] for i in ids]

    @cached_property
    def _piece2id(self) -> dict:
        mapping = {p: i for i, p in enumerate(self._vocab.pieces, FIRST_PIECE_ID)}
        mapping.update({name: i for i, name in enumerate(SPECIAL_PIECES)})
        return mapping

    @cached_property
    def _id2piece(self) -> dict:
        mapping = {i: name for i, name in enumerate(SPECIAL_PIECES)}
        mapping.update(enumerate(self._vocab.pieces, FIRST_PIECE_ID))
        return mapping

    @cached_property
    def _pieces(self) -> dict:
        """piece -> count, as 0.6.3's attribute of the same name."""
        return dict(zip(self._vocab.pieces, self._vocab.counts))

    # -- batches ------------------------------------------------------------
    def encode_batch(self, texts: Sequence[Text], add_bos: bool = False, add_eos: bool = False,
                     alpha: float = -1, keys: Optional[Sequence] = None, num_threads: Optional[int] = None,
                     *, sampler: str = "exact") -> List[List[int]]:
        """``[encode(t) for t in texts]`` on several threads, the GIL released in the core.

        >>> tok.encode_batch(["a text", "another"], alpha=0.1, keys=[0, 1])   # doctest: +SKIP

        With ``keys`` (one per text) each result depends only on (seed, key, text, alpha),
        never on ``num_threads`` or the position in the batch. Without keys the texts
        draw consecutive calls of this tokenizer's unkeyed stream.
        """
        alpha = self._check_alpha(alpha)
        if isinstance(texts, (str, bytes)):
            raise TypeError("encode_batch takes a sequence of texts; use encode for one text")
        texts = list(texts)
        n = len(texts)
        if keys is not None:
            keys = list(keys)
            if len(keys) != n:
                raise ValueError(f"keys has {len(keys)} entries for {n} texts")
        sampler_code = self._sampler(sampler)
        seed_arr = key_arr = None
        if alpha >= 0:
            seed_arr = np.empty(n, dtype=np.uint64)
            key_arr = np.empty(n, dtype=np.uint64)
            if keys is None:
                calls = self._calls
                seed_arr.fill(self._stream_word)
                key_arr[:] = [next(calls) for _ in range(n)]
            else:
                for i, key in enumerate(keys):
                    seed_arr[i], key_arr[i] = _keys.key_words(key, self._int_word, self._hashed_word)
        bos = BOS_ID if add_bos else -1
        eos = EOS_ID if add_eos else -1
        results: List[Optional[List[int]]] = [None] * n

        def run_block(lo: int, hi: int) -> None:
            datas = [self._to_bytes(t) for t in texts[lo:hi]]
            results[lo:hi] = self._lattice.encode_many(
                datas, alpha,
                None if seed_arr is None else seed_arr[lo:hi],
                None if key_arr is None else key_arr[lo:hi],
                True, sampler_code, 0, bos, eos,
            )

        threads = self._thread_count(num_threads, texts)
        blocks = [(lo, min(lo + _BLOCK_TEXTS, n)) for lo in range(0, n, _BLOCK_TEXTS)]
        if threads <= 1:
            for lo, hi in blocks:
                run_block(lo, hi)
        else:
            _run_parallel(run_block, blocks, threads)
        return results  # type: ignore[return-value]

    @staticmethod
    def _thread_count(num_threads: Optional[int], texts: Sequence[Text]) -> int:
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"num_threads must be >= 1, not {num_threads}")
            return num_threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        size = sum(len(t) for t in texts)
        return max(1, min(cores, size // _MIN_BYTES_PER_THREAD))

    # -- files and pickling ---------------------------------------------------
    def save(self, path, *, overwrite: bool = True) -> None:
        """Write the model in BytePiece 0.6.3's JSON format (atomically)."""
        save_model(path, self._vocab, overwrite=overwrite)

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocab

    @property
    def normalize(self) -> bool:
        return self._normalize

    def __reduce__(self):
        return (_restore, (self._vocab, self._seed, self._normalize))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, normalize={self._normalize})"


def _restore(vocab: Vocabulary, seed, normalize: bool) -> Tokenizer:
    tok = Tokenizer.__new__(Tokenizer)
    tok._init(vocab, seed, normalize)
    # Keyed samples are as in the original; the unkeyed stream is this copy's own,
    # so data-loader workers that unpickle one tokenizer never draw the same samples.
    tok._reseed_stream()
    return tok


def _run_parallel(run_block, blocks, threads: int) -> None:
    next_block = itertools.count()
    errors: list = []

    def worker() -> None:
        try:
            while not errors:
                i = next(next_block)
                if i >= len(blocks):
                    return
                run_block(*blocks[i])
        except BaseException as error:  # re-raised in the calling thread
            errors.append(error)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads - 1)]
    for thread in pool:
        thread.start()
    worker()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]


_LIVE_TOKENIZERS: "weakref.WeakSet[Tokenizer]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tok in list(_LIVE_TOKENIZERS):
        tok._reseed_stream()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
