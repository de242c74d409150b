"""The Tokenizer: BytePiece 0.6.3's API over the compiled core, plus batches, keys,
special tokens and exact lattice queries.

Python does what needs Python (argument checks, normalisation, keys); everything per
byte happens in the compiled core (``bytepiece._core``) with the GIL released. The
Tokenizer holds its parts by composition: the compiled ``Lattice``, a ``DrawStream``
for unkeyed samples, ``SpecialTokens`` (bytepiece.special), a ``BatchEncoder``
(bytepiece.batches) and ``LatticeQueries`` (bytepiece.queries).
"""

from __future__ import annotations

import functools
import os
import struct
import unicodedata
import weakref
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import NamedTuple, Union

import numpy as np

from . import _parallel
from . import keys as _keys
from ._core.lattice import SAMPLERS as _CORE_SAMPLERS
from ._core.lattice import DrawStream, Lattice
from .batches import BatchEncoder, join_flat
from .keys import blake2b
from .model import (
    BOS_ID,
    EOS_ID,
    FIRST_PIECE_ID,
    NORMALIZATIONS,
    SPECIAL_PIECES,
    ModelSource,
    Vocabulary,
    load_model,
    save_model,
)
from .queries import LatticeQueries
from .special import SpecialSet, SpecialTokens

Text = Union[str, bytes, bytearray, memoryview]


def _nfc(form: str, text: str) -> str:
    """unicodedata.normalize with the model's form (a str: "NFC", "NFKC", "NFD" or "NFKD")."""
    return unicodedata.normalize(form, text)  # type: ignore[arg-type]


SAMPLERS = {name: _CORE_SAMPLERS[name] for name in ("exact", "legacy-v1")}
_EXACT = SAMPLERS["exact"]
_INF = float("inf")


class Encoding(NamedTuple):
    """Ids of a text with the span of every token.

    ``offsets[k] == (start, end)``: token ``k`` covers ``data[start:end]`` of the text's
    UTF-8 bytes (after normalisation). ``char_offsets[k]``: the characters it touches,
    ``text[start:end]`` of the normalised text; a token holding only part of a
    character's bytes still touches that whole character, so two tokens that split a
    character both include it. ``<bos>`` is ``(0, 0)``, ``<eos>`` is ``(n, n)``.
    """

    ids: list[int]
    offsets: list[tuple[int, int]]
    char_offsets: list[tuple[int, int]]


def id_dtype(vocab_size: int):
    """The smallest numpy integer type that holds every id: uint16 up to 65536 ids, else int32."""
    return np.uint16 if vocab_size <= 1 << 16 else np.int32


class UnknownIdError(KeyError, ValueError):
    """An id outside the vocabulary (a KeyError, as in BytePiece 0.6.3, and a ValueError)."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


def _query(name: str):
    """The Tokenizer method ``name``: LatticeQueries.<name> on the tokenizer's queries
    object, with that method's documentation and signature."""
    method = getattr(LatticeQueries, name)

    @functools.wraps(method)
    def call(self: Tokenizer, *args, **kwargs):
        return method(self._queries, *args, **kwargs)

    return call


class Tokenizer:
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

    def __init__(
        self,
        pieces_or_path: ModelSource,
        seed: _keys.Key | None = None,
        *,
        normalize: bool | str | None = None,
        alpha: float | None = None,
        special_tokens: Sequence[str] | None = None,
    ):
        vocab = load_model(pieces_or_path)
        changes: dict = {}
        if normalize is not None:
            changes["normalization"] = _normalization(normalize, vocab.normalization)
        if alpha is not None:
            alpha = self._check_alpha(alpha)
            changes["alpha"] = alpha if alpha >= 0 else -1.0
        if special_tokens is not None:
            if isinstance(special_tokens, str):
                raise TypeError("special_tokens is a list of strings, not one string")
            extra = [t for t in special_tokens if t not in vocab.special_tokens]
            changes["special_tokens"] = vocab.special_tokens + tuple(dict.fromkeys(extra))
        if changes:
            vocab = vocab.replace(**changes)
        self._init(vocab, seed)

    def _init(self, vocab: Vocabulary, seed, normalize: bool | None = None) -> None:
        if normalize is not None:
            vocab = vocab.replace(normalization=_normalization(normalize, vocab.normalization))
        self._vocab = vocab
        self._form = vocab.normalization
        self._normalize = self._form != "none"
        self._alpha = float(vocab.alpha)
        counts = np.asarray(vocab.counts, dtype=np.float64)
        # Same arithmetic as 0.6.3 (np.log of each count minus np.log of the integer
        # total), so that Viterbi ties are decided on identical floating-point scores.
        # float() rounds the exact total as numpy's int64 cast does, and also takes
        # totals beyond 64 bits (on which np.log of a Python int raises TypeError).
        logprobs = np.log(counts) - np.log(float(sum(vocab.counts)))
        self._logprobs = logprobs
        n = len(vocab.pieces)
        self._lattice = Lattice(list(vocab.pieces), logprobs, np.arange(FIRST_PIECE_ID, FIRST_PIECE_ID + n))
        # User special tokens take the ids after the pieces.
        first_special = n + FIRST_PIECE_ID
        self._special_ids = {t: first_special + j for j, t in enumerate(vocab.special_tokens)}
        self.vocab_size = first_special + len(vocab.special_tokens)
        self.id_dtype = id_dtype(self.vocab_size)
        # id -> bytes: <pad>, <bos>, <eos> decode to nothing (0.6.3 drops them); a user
        # special token decodes to its text.
        self._id_bytes: tuple[bytes, ...] = tuple(
            [b""] * FIRST_PIECE_ID + list(vocab.pieces) + [t.encode("utf-8") for t in vocab.special_tokens]
        )
        self._special = SpecialTokens(self._special_ids, self.normalize_text)
        self._batches = BatchEncoder(
            self._lattice, self._form if self._normalize else None, self._to_bytes, self.id_dtype
        )
        self._queries = LatticeQueries(
            self._lattice, self._to_bytes, self._words, self._id_bytes, vocab.pieces, logprobs
        )
        self.set_seed(seed)
        _LIVE_TOKENIZERS.add(self)

    # -- randomness ---------------------------------------------------------
    def set_seed(self, seed: _keys.Key | None) -> None:
        """Fix the samples: after ``set_seed(S)`` the same calls give the same samples,
        in any process. ``None`` draws a fresh random seed."""
        if seed is None:
            seed = _keys.random_seed()
        self._seed = seed
        self._int_word, self._hashed_word, stream_word = _keys.seed_words(seed)
        # Unkeyed calls are numbered by the stream (with the GIL held, so threads sharing
        # this tokenizer never draw the same call number).
        self._stream = DrawStream(self._lattice, stream_word)

    @property
    def _stream_word(self) -> int:
        return self._stream.word

    def _words(self, key) -> tuple[int, int]:
        if key is None:
            return self._stream.word, self._stream.take()
        return _keys.key_words(key, self._int_word, self._hashed_word)

    def _reseed_stream(self) -> None:
        """Give this copy (forked child, unpickled copy) an unkeyed stream of its own."""
        self._stream.word = _keys.renewed_stream(self._stream.word)

    # -- text -> bytes ------------------------------------------------------
    def _to_bytes(self, text: Text) -> bytes:
        if isinstance(text, str):
            return (_nfc(self._form, text) if self._normalize else text).encode("utf-8")
        if isinstance(text, bytes):
            return text
        if isinstance(text, (bytearray, memoryview)):
            return bytes(text)
        raise TypeError(f"text must be str or bytes, not {type(text).__name__}")

    @staticmethod
    def _check_alpha(alpha) -> float:
        alpha = float(alpha)
        if alpha != alpha or alpha == _INF:
            raise ValueError(f"alpha must be a finite number (negative for Viterbi), not {alpha}")
        return alpha

    @staticmethod
    def _sampler(sampler: str) -> int:
        try:
            return SAMPLERS[sampler]
        except KeyError:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, not {sampler!r}") from None

    # -- the 0.6.3 API ------------------------------------------------------
    def tokenize(self, text: Text, alpha: float | None = None, iter: bool = False, *, key=None, sampler: str = "exact"):
        """Pieces (bytes) of ``text``: the Viterbi segmentation when ``alpha < 0``, else one
        exact draw with probability proportional to exp(alpha * score). ``alpha=None``
        is the model's default (-1, Viterbi, unless the model file records another).

        >>> tok.tokenize("tokenizer")                       # doctest: +SKIP
        [b'token', b'ize', b'r']

        ``key`` (int, str, bytes or a tuple of those) makes the draw a pure function of
        (seed, key, text, alpha). ``sampler="legacy-v1"`` is the first, inexact variant.
        """
        data = self._to_bytes(text)
        if alpha is None:
            alpha = self._alpha
        if alpha < 0:  # NaN is not < 0: the core rejects it below
            pieces = self._lattice.pieces(data)
        else:
            seed_word, key_word = self._words(key)
            pieces = self._lattice.pieces(data, alpha, seed_word, key_word, sampler=self._sampler(sampler))
        return pieces.__iter__() if iter else pieces

    def encode(
        self,
        text: Text,
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float | None = None,
        iter: bool = False,
        *,
        key=None,
        sampler: str = "exact",
        allowed_special: SpecialSet = (),
        disallowed_special: SpecialSet = (),
        as_numpy: bool = False,
    ):
        """Ids of ``text`` (see :meth:`tokenize` for ``alpha``, ``key`` and ``sampler``).

        >>> tok.encode("tokenizer", add_eos=True)           # doctest: +SKIP
        [13720, 4292, 117, 2]

        Special tokens (``special_tokens`` of the model) found in ``text`` are encoded as
        ordinary text unless listed in ``allowed_special`` (a set of them, or ``"all"``);
        those found in ``disallowed_special`` (a set or ``"all"``: every special token not
        allowed) raise ValueError. ``as_numpy=True`` returns a numpy array of
        :attr:`id_dtype` (uint16 when the vocabulary has at most 65536 ids).
        """
        if alpha is None:
            alpha = self._alpha
        if as_numpy:
            return self._encode_array(text, add_bos, add_eos, alpha, key, sampler, allowed_special, disallowed_special)
        if allowed_special or disallowed_special:
            ids = self._encode_spans(
                text, add_bos, add_eos, alpha, key, sampler, allowed_special, disallowed_special, False
            )[0]
            return ids.__iter__() if iter else ids
        # The hot path of per-line encoding: kept free of helper calls for str input. An
        # ASCII str is left as it is (no normal form changes ASCII) and the lattice reads
        # its buffer in place.
        data: str | bytes
        if type(text) is str:
            if not text.isascii():
                data = (_nfc(self._form, text) if self._normalize else text).encode("utf-8")
            else:
                data = text
        else:
            data = self._to_bytes(text)
        bos = BOS_ID if add_bos else -1
        eos = EOS_ID if add_eos else -1
        if alpha < 0:  # NaN is not < 0: the core rejects it below
            ids = self._lattice.viterbi(data, bos, eos)
        elif key is None and sampler == "exact":
            ids = self._stream.sample(data, alpha, bos, eos)
        else:
            if key is None:
                seed_word, key_word = self._stream.word, self._stream.take()
            else:
                seed_word, key_word = _keys.key_words(key, self._int_word, self._hashed_word)
            code = _EXACT if sampler == "exact" else self._sampler(sampler)
            ids = self._lattice.sample(data, alpha, seed_word, key_word, bos, eos, sampler=code)
        return ids.__iter__() if iter else ids

    def encode_with_offsets(
        self,
        text: Text,
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float | None = None,
        *,
        key=None,
        sampler: str = "exact",
        allowed_special: SpecialSet = (),
        disallowed_special: SpecialSet = (),
    ) -> Encoding:
        """:meth:`encode` with the byte and character span of every token.

        >>> enc = tok.encode_with_offsets("héllo")             # doctest: +SKIP
        >>> enc.ids, enc.offsets, enc.char_offsets             # doctest: +SKIP
        ([107, 1519, 4351], [(0, 1), (1, 3), (3, 6)], [(0, 1), (1, 2), (2, 5)])

        Offsets refer to the normalised text (``tok.normalize_text(text)``, which is
        ``text`` itself when it is already NFC or normalisation is off): byte offsets
        into its UTF-8 encoding, character offsets into the str. When a token holds
        only some bytes of a character, its character span still includes that whole
        character (``text[a:b]`` is the shortest substring containing the token's
        bytes), so neighbouring tokens that split a character overlap on it. For bytes
        input, characters are counted as UTF-8 lead bytes (exact for valid UTF-8).
        The ids equal ``encode``'s for the same arguments (and key).
        """
        if alpha is None:
            alpha = self._alpha
        ids, starts, ends, data = self._encode_spans(
            text, add_bos, add_eos, alpha, key, sampler, allowed_special, disallowed_special, True
        )
        return Encoding(ids, list(zip(starts, ends)), char_spans(data, starts, ends))

    def normalize_text(self, text: str) -> str:
        """``text`` as the tokenizer sees it (the model's normalisation applied)."""
        return _nfc(self._form, text) if self._normalize else text

    def normalize_bytes(self, data: bytes) -> bytes:
        """UTF-8 ``data`` as the tokenizer sees it: the model's normalisation applied to
        its text, while bytes that are not valid UTF-8 pass through untouched (so a line
        read from a file in binary still round-trips)."""
        if not self._normalize or data.isascii():
            return data
        text = data.decode("utf-8", "surrogateescape")
        if unicodedata.is_normalized(self._form, text):  # type: ignore[arg-type]
            return data
        return _nfc(self._form, text).encode("utf-8", "surrogateescape")

    @property
    def id_bytes(self) -> Sequence[bytes]:
        """The bytes each id decodes to, indexed by id (``b""`` for ``<pad>``, ``<bos>``,
        ``<eos>``; a special token's UTF-8)."""
        return self._id_bytes

    # -- special tokens ---------------------------------------------------------
    @property
    def special_tokens(self) -> dict:
        """The model's special tokens and their ids (after the pieces)."""
        return dict(self._special_ids)

    def _encode_spans(self, text, add_bos, add_eos, alpha, key, sampler, allowed, disallowed, spans: bool):
        """(ids, token starts, token ends, data); starts/ends only when `spans`."""
        data = self._to_bytes(text)
        parts = (
            self._special.split(data, allowed, disallowed)
            if (allowed or disallowed)
            else ([(0, len(data), -1)] if data else [])
        )
        if alpha < 0:
            seed_word = key_word = 0
            sampler_code = 0
            alpha = -1.0
        else:
            alpha = self._check_alpha(alpha)
            seed_word, key_word = self._words(key)
            sampler_code = self._sampler(sampler)
        ids: list[int] = [BOS_ID] if add_bos else []
        starts: list[int] = [0] if add_bos else []
        ends: list[int] = [0] if add_bos else []
        ordinary = 0
        for lo, hi, special in parts:
            if special >= 0:
                ids.append(special)
                if spans:
                    starts.append(lo)
                    ends.append(hi)
                continue
            # Each run of ordinary text is segmented on its own; the first run draws with
            # the call's own key word (so text without special tokens samples as encode
            # does), later runs with key words derived from it.
            word = key_word if ordinary == 0 else _segment_word(key_word, ordinary)
            ordinary += 1
            vals, cut = self._lattice.segment(
                data[lo:hi] if (lo or hi != len(data)) else data,
                alpha=alpha,
                seed_word=seed_word,
                key_word=word,
                sampler=sampler_code,
            )
            ids.extend((vals + FIRST_PIECE_ID).tolist())
            if spans:
                e = (cut + lo).tolist()
                starts.append(lo)
                starts.extend(e[:-1])
                ends.extend(e)
        if add_eos:
            ids.append(EOS_ID)
            starts.append(len(data))
            ends.append(len(data))
        return ids, starts, ends, data

    def _encode_array(self, text, add_bos, add_eos, alpha, key, sampler, allowed, disallowed, with_ends: bool = False):
        """encode(..., as_numpy=True) (with `with_ends`, also the end byte of every token):
        the runs of ordinary text between honoured special tokens go to the core as one
        batch, each with the key word _encode_spans gives it, so the ids are the same."""
        data = self._to_bytes(text)
        parts = (
            self._special.split(data, allowed, disallowed)
            if (allowed or disallowed)
            else ([(0, len(data), -1)] if data else [])
        )
        seeds = keys = None
        code = 0
        if alpha < 0:
            alpha = -1.0
        else:
            alpha = self._check_alpha(alpha)
            code = self._sampler(sampler)
            seed_word, key_word = self._words(key)
            runs = sum(1 for part in parts if part[2] < 0) if parts else 1  # (an empty text: one empty run)
            seeds = np.full(runs, seed_word, dtype=np.uint64)
            keys = np.array([key_word if j == 0 else _segment_word(key_word, j) for j in range(runs)], dtype=np.uint64)
        return self._batches.text_array(data, parts, alpha, seeds, keys, code, add_bos, add_eos, with_ends)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; ids 0-2 are dropped and invalid UTF-8 is skipped, as in 0.6.3
        (special tokens of the model decode to their text).

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
            bad = next(
                i
                for i in ids
                if not (isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < len(table))
            )
            raise UnknownIdError(f"id {bad!r} is not in the vocabulary (0 .. {len(table) - 1})") from None

    def piece_to_id(self, piece):
        """Id of a piece (bytes), of '<pad>', '<bos>', '<eos>' or of a special token (str)."""
        return self._piece2id[piece]

    def id_to_piece(self, i):
        """Piece (bytes) of an id; '<pad>', '<bos>', '<eos>' for 0, 1, 2; a special token's str."""
        return self._id2piece[i]

    def pieces_to_ids(self, pieces):
        table = self._piece2id
        return [table[p] for p in pieces]

    def ids_to_pieces(self, ids):
        table = self._id2piece
        return [table[i] for i in ids]

    @cached_property
    def _piece2id(self) -> dict:
        mapping: dict[bytes | str, int] = {p: i for i, p in enumerate(self._vocab.pieces, FIRST_PIECE_ID)}
        mapping.update({name: i for i, name in enumerate(SPECIAL_PIECES)})
        mapping.update(self._special_ids)
        return mapping

    @cached_property
    def _id2piece(self) -> dict:
        mapping: dict[int, bytes | str] = dict(enumerate(SPECIAL_PIECES))
        mapping.update(enumerate(self._vocab.pieces, FIRST_PIECE_ID))
        mapping.update({i: name for name, i in self._special_ids.items()})
        return mapping

    @cached_property
    def _pieces(self) -> dict:
        """piece -> count, as 0.6.3's attribute of the same name."""
        return dict(zip(self._vocab.pieces, self._vocab.counts))

    # -- batches ------------------------------------------------------------
    def encode_batch(
        self,
        texts: Sequence[Text],
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float | None = None,
        keys: Sequence | None = None,
        num_threads: int | None = None,
        *,
        sampler: str = "exact",
        allowed_special: SpecialSet = (),
        disallowed_special: SpecialSet = (),
        as_numpy: bool = False,
        return_offsets: bool = False,
    ):
        """``[encode(t) for t in texts]`` on several threads, the GIL released in the core.

        >>> tok.encode_batch(["a text", "another"], alpha=0.1, keys=[0, 1])   # doctest: +SKIP
        >>> ids, rows = tok.encode_batch(["a text", "another"], as_numpy=True)  # doctest: +SKIP

        With ``keys`` (one per text) each result depends only on (seed, key, text, alpha),
        never on ``num_threads`` or the position in the batch. Without keys the texts
        draw consecutive calls of this tokenizer's unkeyed stream.

        ``as_numpy=True`` returns ``(ids, rows)``: all ids in one array of
        :attr:`id_dtype` and int64 row offsets (text ``i`` is ``ids[rows[i]:rows[i + 1]]``),
        built without Python lists. With ``return_offsets`` as well, a third int32 array
        of shape (number of ids, 2) holds every token's byte span within its text.
        ``return_offsets`` alone gives one :class:`Encoding` per text. For the special
        token arguments see :meth:`encode`.
        """
        alpha = self._check_alpha(self._alpha if alpha is None else alpha)
        if isinstance(texts, (str, bytes)):
            raise TypeError("encode_batch takes a sequence of texts; use encode for one text")
        texts = list(texts)
        n = len(texts)
        if keys is not None:
            keys = list(keys)
            if len(keys) != n:
                raise ValueError(f"keys has {len(keys)} entries for {n} texts")
        sampler_code = self._sampler(sampler)
        if allowed_special or disallowed_special or (return_offsets and not as_numpy):
            return self._encode_batch_slow(
                texts,
                add_bos,
                add_eos,
                alpha,
                keys,
                sampler,
                allowed_special,
                disallowed_special,
                as_numpy,
                return_offsets,
            )
        seed_arr = key_arr = None
        if alpha >= 0:
            seed_arr = np.empty(n, dtype=np.uint64)
            key_arr = np.empty(n, dtype=np.uint64)
            if keys is None:
                seed_arr.fill(self._stream.word)
                key_arr[:] = np.arange(n, dtype=np.uint64)
                key_arr += np.uint64(self._stream.take(n))
            else:
                for i, key in enumerate(keys):
                    seed_arr[i], key_arr[i] = _keys.key_words(key, self._int_word, self._hashed_word)
        bos = BOS_ID if add_bos else -1
        eos = EOS_ID if add_eos else -1
        threads = _parallel.thread_count(num_threads, texts)
        if as_numpy:
            return self._batches.arrays(
                texts, alpha, seed_arr, key_arr, sampler_code, bos, eos, threads, return_offsets
            )
        return self._batches.lists(texts, alpha, seed_arr, key_arr, sampler_code, bos, eos, threads)

    def _encode_batch_slow(
        self, texts, add_bos, add_eos, alpha, keys, sampler, allowed, disallowed, as_numpy, return_offsets
    ):
        """One text at a time (special tokens honoured or checked, or per-text Encodings)."""
        if as_numpy:
            # Arrays straight from the core, text by text, joined as the flat path joins
            # its blocks (no Python int per token).
            parts = []
            for i, t in enumerate(texts):
                got = self._encode_array(
                    t,
                    add_bos,
                    add_eos,
                    alpha,
                    None if keys is None else keys[i],
                    sampler,
                    allowed,
                    disallowed,
                    with_ends=return_offsets,
                )
                ids, ends = got if return_offsets else (got, None)
                parts.append((ids, np.array([0, len(ids)], dtype=np.int64), ends))
            return join_flat(parts, self.id_dtype, return_offsets)
        encodings = [
            self.encode_with_offsets(
                t,
                add_bos,
                add_eos,
                alpha,
                key=None if keys is None else keys[i],
                sampler=sampler,
                allowed_special=allowed,
                disallowed_special=disallowed,
            )
            for i, t in enumerate(texts)
        ]
        return encodings if return_offsets else [e.ids for e in encodings]

    # -- exact answers from the lattice --------------------------------------
    # Exact answers from the lattice (bytepiece.queries), with their documentation.
    nbest = _query("nbest")
    score = _query("score")
    log_prob = _query("log_prob")
    log_partition = _query("log_partition")
    entropy = _query("entropy")
    boundary_marginals = _query("boundary_marginals")
    sample_distinct = _query("sample_distinct")

    @property
    def piece_log_probs(self) -> np.ndarray:
        """The log-probability of every piece, the values the lattice scores with: entry i
        is that of id i + 3 (a read-only float64 view)."""
        view = self._logprobs.view()
        view.flags.writeable = False
        return view

    # -- files and pickling ---------------------------------------------------
    def save(self, path, *, overwrite: bool = True) -> None:
        """Write the model (atomically): BytePiece 0.6.3's JSON format, byte for byte, when the
        tokenizer is plain (NFC, Viterbi by default, no special tokens); otherwise the same
        plus a metadata entry recording the special tokens, normalisation and default alpha."""
        save_model(path, self._vocab, overwrite=overwrite)

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocab

    @property
    def normalize(self) -> bool:
        return self._normalize

    @property
    def normalization(self) -> str:
        """The Unicode normalisation applied to str input: "NFC" (0.6.3's), "NFKC", "NFD", "NFKD" or "none"."""
        return self._form

    @property
    def alpha(self) -> float:
        """The default alpha of encode/tokenize (negative: Viterbi)."""
        return self._alpha

    # -- interoperability (bytepiece.convert) ------------------------------------
    def convert_to_sentencepiece(self, path) -> None:
        """Write the model as a SentencePiece Unigram model file (as BytePiece 0.6.3 does;
        see docs/interop.md for what SentencePiece cannot represent)."""
        from .convert import to_sentencepiece

        to_sentencepiece(self, path)

    def export_huggingface(self, path) -> str:
        """Write a Hugging Face ``tokenizer.json`` (``path`` is the file, or a folder to hold
        it) that segments exactly as this tokenizer; returns the file's path."""
        from .convert import to_huggingface

        return to_huggingface(self, path)

    @classmethod
    def from_sentencepiece(cls, path, seed: _keys.Key | None = None, **options) -> Tokenizer:
        """A Tokenizer from a SentencePiece Unigram model file (see docs/interop.md)."""
        from .convert import from_sentencepiece

        return cls(from_sentencepiece(path), seed, **options)

    def __reduce__(self):
        return (_restore, (self._vocab, self._seed))

    def __repr__(self) -> str:
        extra = f", special_tokens={len(self._special_ids)}" if self._special_ids else ""
        return f"Tokenizer(vocab_size={self.vocab_size}, normalization={self._form!r}{extra})"


def _restore(vocab: Vocabulary, seed, normalize: bool | None = None) -> Tokenizer:
    tok = Tokenizer.__new__(Tokenizer)
    tok._init(vocab, seed, normalize)
    # Keyed samples are as in the original; the unkeyed stream is this copy's own,
    # so data-loader workers that unpickle one tokenizer never draw the same samples.
    tok._reseed_stream()
    return tok


def _normalization(normalize: bool | str, model_form: str) -> str:
    """The normalisation a ``normalize`` argument asks for: True keeps the model's (NFC
    when the model has none), False turns it off, a str names the form."""
    if normalize is True:
        return model_form if model_form != "none" else "NFC"
    if normalize is False:
        return "none"
    if normalize in NORMALIZATIONS:
        return normalize
    raise ValueError(f"normalize must be True, False or one of {', '.join(NORMALIZATIONS)}, not {normalize!r}")


def _segment_word(key_word: int, index: int) -> int:
    """The key word of the index-th run of ordinary text between special tokens."""
    return int.from_bytes(
        blake2b(b"special-split" + struct.pack("<QQ", key_word & 0xFFFFFFFFFFFFFFFF, index), digest_size=8).digest(),
        "little",
    )


def char_spans(data: bytes, starts: Sequence[int], ends: Sequence[int]) -> list[tuple[int, int]]:
    """Character spans of byte spans: [index of the character holding the first byte,
    1 + index of the character holding the last byte); empty spans map to the
    character boundary at or after them."""
    if not starts:
        return []
    arr = np.frombuffer(data, dtype=np.uint8)
    lead = (arr & 0xC0) != 0x80
    if len(arr):
        lead[0] = True
    # before[b] = number of characters starting before byte b (b = 0 .. n)
    before = np.zeros(len(arr) + 1, dtype=np.int64)
    np.cumsum(lead, out=before[1:])
    s = np.asarray(starts, dtype=np.int64)
    e = np.asarray(ends, dtype=np.int64)
    nonempty = e > s
    # The character holding byte s is number before[s + 1] - 1; the one holding byte
    # e - 1 is before[e] - 1. An empty span (<bos>, <eos>) at b maps to before[b].
    n = len(arr)
    cs = np.where(nonempty, before[np.minimum(s + 1, n)] - 1, before[np.minimum(s, n)])
    ce = np.where(nonempty, before[np.minimum(e, n)], cs)
    return list(zip(cs.tolist(), ce.tolist()))


_LIVE_TOKENIZERS: weakref.WeakSet[Tokenizer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tok in list(_LIVE_TOKENIZERS):
        tok._reseed_stream()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
