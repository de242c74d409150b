"""The Tokenizer: BytePiece 0.6.3's API over the compiled core, plus batches, keys,
special tokens and exact lattice queries.

Python does what needs Python (argument checks, normalisation, keys); everything per
byte happens in the compiled core (``bytepiece._core``) with the GIL released. The
Tokenizer is a façade that holds its parts by composition: the compiled ``Lattice``
and a ``DrawStream`` for unkeyed samples; ``SpecialTokens`` (bytepiece.special);
a ``TextEncoder`` for the careful path of one text (bytepiece.encoding); a
``BatchEncoder`` (bytepiece.batches); the ``IdTable`` of ids and pieces
(bytepiece.ids); ``LatticeQueries`` (bytepiece.queries), a ``LatticeSampler``
(bytepiece.sampling) and a ``TokenSplitter`` (bytepiece.stochastok). Its compiled base
``TokenizerCore`` (bytepiece._core.tokenizer_core) runs the common call of ``encode``;
its own code is argument handling, and the methods of the parts it exposes keep their
documentation.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable, Iterable, Sequence

from . import keys as _keys
from ._core.lattice import DrawStream, Lattice
from ._core.tokenizer_core import TokenizerCore
from ._numpy import np
from .batches import BatchEncoder
from .constraints import Pattern, Positions
from .encoding import Encoding, Normalizer, TextEncoder, char_spans, check_alpha, sampler_code
from .ids import IdTable, UnknownIdError
from .model import (
    BOS_ID,
    EOS_ID,
    FIRST_PIECE_ID,
    NORMALIZATIONS,
    ModelSource,
    Vocabulary,
    load_model,
    save_model,
)
from .queries import LatticeQueries
from .sampling import LatticeSampler
from .score_cache import piece_scores
from .special import SpecialTokens
from .stochastok import TokenSplitter

__all__ = ["Tokenizer", "Encoding", "UnknownIdError", "Text", "id_dtype", "char_spans"]

Text = str | bytes | bytearray | memoryview


def id_dtype(vocab_size: int):
    """The smallest numpy integer type that holds every id: uint16 up to 65536 ids, else int32."""
    return getattr(np, _id_type_name(vocab_size))


def _id_type_name(vocab_size: int) -> str:
    """The name of id_dtype(vocab_size), known without importing numpy."""
    return "uint16" if vocab_size <= 1 << 16 else "int32"


def _forward(component: str, method: Callable):
    """A Tokenizer method that calls ``method`` on the part of the tokenizer held in the
    attribute ``component`` (its lattice queries, its id table, ...), with that method's
    documentation and signature."""

    @functools.wraps(method)
    def call(self: Tokenizer, *args, **kwargs):
        return method(getattr(self, component), *args, **kwargs)

    return call


class Tokenizer(TokenizerCore):
    """A byte-level Unigram tokenizer; a drop-in replacement for BytePiece 0.6.3's.

    >>> tok = Tokenizer("bytepiece.model", seed=42)
    >>> tok.tokenize("Hello world")
    [b'Hello', b' world']
    >>> tok.encode("Hello world", alpha=0.1, key=7)
    [910, 4351, 35, 122, 114, 117, 1346]

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
            alpha = check_alpha(alpha)
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
        self._normalizer = Normalizer(self._form)
        self._to_bytes = self._normalizer.to_bytes
        self._alpha = float(vocab.alpha)
        self._bos_id, self._eos_id = BOS_ID, EOS_ID
        counts = vocab._count_values()
        # Same arithmetic as 0.6.3 (numpy's log of each count minus numpy's log of the
        # integer total), so that Viterbi ties are decided on identical floating-point
        # scores; numpy is imported here unless this machine has kept them (score_cache).
        logprobs = piece_scores(counts)
        self._logprobs = logprobs
        n = len(vocab.pieces)
        self._lattice = Lattice(list(vocab.pieces), logprobs, range(FIRST_PIECE_ID, FIRST_PIECE_ID + n))
        # User special tokens take the ids after the pieces.
        first_special = n + FIRST_PIECE_ID
        self._special_ids = {t: first_special + j for j, t in enumerate(vocab.special_tokens)}
        self.vocab_size = first_special + len(vocab.special_tokens)
        id_type = _id_type_name(self.vocab_size)  # (numpy's type of it: the id_dtype property)
        self._ids = IdTable(vocab.pieces, self._special_ids)
        self._special = SpecialTokens(self._special_ids, self._normalizer.normalize_text)
        self._encoder = TextEncoder(self._lattice, self._special, self._normalizer, self._words, id_type, self._alpha)
        self._batches = BatchEncoder(
            self._lattice,
            self._form if self._normalize else None,
            self._to_bytes,
            id_type,
            self._encoder,
            self._words,
            self._draw_block,
            self._alpha,
        )
        self._queries = LatticeQueries(self._lattice, self._to_bytes, self._ids.id_bytes, logprobs)
        self._sampler = LatticeSampler(self._lattice, self._to_bytes, self._words, logprobs)
        self._splitter = TokenSplitter(self._ids.id_bytes, FIRST_PIECE_ID, first_special, self._words)
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

    def _words(self, key) -> tuple[int, int]:
        """(seed word, key word) of a draw: the key's, or the next of the unkeyed stream."""
        if key is None:
            return self._stream.word, self._stream.take()
        return _keys.key_words(key, self._int_word, self._hashed_word)

    def _draw_block(self, n: int) -> tuple[int, int]:
        """(stream word, first number) of n consecutive unkeyed draws."""
        return self._stream.word, self._stream.take(n)

    def _reseed_stream(self) -> None:
        """Give this copy (forked child, unpickled copy) an unkeyed stream of its own."""
        self._stream.word = _keys.renewed_stream(self._stream.word)

    # -- text -> bytes ------------------------------------------------------
    normalize_text = _forward("_normalizer", Normalizer.normalize_text)
    normalize_bytes = _forward("_normalizer", Normalizer.normalize_bytes)

    # -- the 0.6.3 API ------------------------------------------------------
    def tokenize(
        self,
        text: Text,
        alpha: float | None = None,
        iter: bool = False,
        *,
        key=None,
        sampler: str = "exact",
        required_boundaries: Positions | None = None,
        forbidden_boundaries: Positions | None = None,
        boundary_regex: Pattern | None = None,
    ):
        """Pieces (bytes) of ``text``: the Viterbi segmentation when ``alpha < 0``, else one
        exact draw with probability proportional to exp(alpha * score). ``alpha=None``
        is the model's default (-1, Viterbi, unless the model file records another).

        >>> tok.tokenize("tokenizer")
        [b'token', b'ize', b'r']

        ``key`` (int, str, bytes or a tuple of those) makes the draw a pure function of
        (seed, key, text, alpha). ``sampler="legacy-v1"`` is the first, inexact variant.

        ``required_boundaries`` / ``forbidden_boundaries`` (byte positions in the text as
        the tokenizer sees it, or a boolean mask of ``len(bytes) + 1``) constrain the
        segmentation: no piece crosses a required boundary, none starts or ends at a
        forbidden one; ``boundary_regex`` requires the boundaries that make every match a
        whole run of pieces. Viterbi and sampling then run on the constrained lattice, so
        samples stay exact (see :mod:`bytepiece.constraints`).
        """
        if alpha is None:
            alpha = self._alpha
        elif type(alpha) is not float:
            alpha = check_alpha(alpha)
        if required_boundaries is not None or forbidden_boundaries is not None or boundary_regex is not None:
            bounds = (required_boundaries, forbidden_boundaries, boundary_regex)
            _, starts, ends, data = self._encoder.spans(text, False, False, alpha, key, sampler, bounds=bounds)
            pieces = [data[a:b] for a, b in zip(starts, ends)]
        elif alpha < 0:  # NaN is not < 0: the core rejects it below
            if sampler != "exact":
                sampler_code(sampler)  # (a bad name is an error for Viterbi calls too)
            pieces = self._lattice.pieces(self._to_bytes(text))
        else:
            seed_word, key_word = self._words(key)
            code = sampler_code(sampler)
            pieces = self._lattice.pieces(self._to_bytes(text), alpha, seed_word, key_word, sampler=code)
        return pieces.__iter__() if iter else pieces

    # encode() is TokenizerCore.encode (bytepiece._core.tokenizer_core): the common call
    # runs there, compiled; every other call goes to the careful path of bytepiece.encoding.
    _encode_careful = _forward("_encoder", TextEncoder.encode)
    encode_with_offsets = _forward("_encoder", TextEncoder.encode_with_offsets)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; ids 0-2 are dropped and invalid UTF-8 is skipped, as in 0.6.3
        (special tokens of the model decode to their text).

        >>> tok.decode(tok.encode("tokenizer"))
        'tokenizer'
        """
        return self._ids.decode_bytes(ids).decode("utf-8", errors="ignore")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The exact bytes of ``ids`` (special ids contribute nothing).

        >>> tok.decode_bytes(tok.encode(b"\\xff\\xfe"))
        b'\\xff\\xfe'
        """
        return self._ids.decode_bytes(ids)

    piece_to_id = _forward("_ids", IdTable.piece_to_id)
    id_to_piece = _forward("_ids", IdTable.id_to_piece)
    pieces_to_ids = _forward("_ids", IdTable.pieces_to_ids)
    ids_to_pieces = _forward("_ids", IdTable.ids_to_pieces)

    @property
    def _pieces(self) -> dict:
        """piece -> count, as 0.6.3's attribute of the same name."""
        return dict(zip(self._vocab.pieces, self._vocab.counts))

    # -- batches ------------------------------------------------------------
    encode_batch = _forward("_batches", BatchEncoder.encode_batch)

    # -- exact answers from the lattice, and token splitting --------------------
    # (bytepiece.queries, .sampling and .stochastok, with their documentation; one line
    # a forwarded method, alike on purpose.)
    nbest = _forward("_queries", LatticeQueries.nbest)
    score = _forward("_queries", LatticeQueries.score)
    log_prob = _forward("_queries", LatticeQueries.log_prob)
    log_partition = _forward("_queries", LatticeQueries.log_partition)
    entropy = _forward("_queries", LatticeQueries.entropy)
    boundary_marginals = _forward("_queries", LatticeQueries.boundary_marginals)
    # sample() is TokenizerCore.sample: the common call runs compiled, the rest in LatticeSampler.sample.
    sample_distinct = _forward("_sampler", LatticeSampler.sample_distinct)
    piece_marginals = _forward("_queries", LatticeQueries.piece_marginals)
    expected_counts = _forward("_queries", LatticeQueries.expected_counts)
    lattice = _forward("_queries", LatticeQueries.lattice)
    stochastok = _forward("_splitter", TokenSplitter.stochastok)

    # -- the vocabulary -------------------------------------------------------
    @property
    def id_bytes(self) -> Sequence[bytes]:
        """The bytes each id decodes to, indexed by id (``b""`` for ``<pad>``, ``<bos>``,
        ``<eos>``; a special token's UTF-8)."""
        return self._ids.id_bytes

    @property
    def id_dtype(self):
        """The numpy type of the ids in arrays (``as_numpy=True``): uint16 when every id
        fits, else int32."""
        return id_dtype(self.vocab_size)

    @property
    def special_tokens(self) -> dict:
        """The model's special tokens and their ids (after the pieces)."""
        return dict(self._special_ids)

    @property
    def piece_log_probs(self) -> np.ndarray:
        """The log-probability of every piece, the values the lattice scores with: entry i
        is that of id i + 3 (a read-only float64 view)."""
        view = np.frombuffer(self._logprobs, dtype=np.float64)
        view.flags.writeable = False
        return view

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

    # -- files, interoperability (bytepiece.convert) and pickling ------------------
    def save(self, path, *, overwrite: bool = True) -> None:
        """Write the model (atomically): BytePiece 0.6.3's JSON format, byte for byte, when the
        tokenizer is plain (NFC, Viterbi by default, no special tokens); otherwise the same
        plus a metadata entry recording the special tokens, normalisation and default alpha."""
        save_model(path, self._vocab, overwrite=overwrite)

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


_LIVE_TOKENIZERS: weakref.WeakSet[Tokenizer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tok in list(_LIVE_TOKENIZERS):
        tok._reseed_stream()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
