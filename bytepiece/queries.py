"""Exact answers about the whole segmentation lattice of a text: the Tokenizer's
n-best, score, log_prob, log_partition, entropy, boundary_marginals and
sample_distinct, which it holds as a LatticeQueries object.

The sampler draws a segmentation with probability ``exp(alpha * score) / Z``. The same
lattice gives, exactly and in one or two passes over the text, the quantities around
that distribution (the compiled ``bytepiece._core.queries`` does the passes): the n
best segmentations, the log-probability of a given segmentation, log Z, the entropy,
the probability that a piece boundary falls at each byte, and k distinct samples
drawn without replacement.

All answers are per the model's chunking (text is cut after each run of newlines,
and no piece crosses a cut), exactly as ``tokenize`` segments.
:mod:`bytepiece.reference` computes the same things by brute force; the tests check
one against the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable, Union

import numpy as np

from . import distinct
from ._core import queries as _queries
from ._core.lattice import Lattice

Piece = Union[bytes, bytearray, str, int]


class LatticeQueries:
    """Exact lattice queries over one tokenizer's lattice.

    ``to_bytes`` turns a text into the bytes the lattice segments (the tokenizer's
    normalisation); ``words(key)`` gives the (seed word, key word) of a draw;
    ``id_bytes`` maps ids to piece bytes; ``pieces`` and ``logprobs`` are the
    vocabulary's, in the lattice's order."""

    def __init__(
        self,
        lattice: Lattice,
        to_bytes: Callable[[Any], bytes],
        words: Callable[[Any], tuple[int, int]],
        id_bytes: Sequence[bytes],
        pieces: Sequence[bytes],
        logprobs: np.ndarray,
    ):
        self.lattice = lattice
        self.to_bytes = to_bytes
        self.words = words
        self.id_bytes = id_bytes
        self._pieces = pieces
        self._logprobs = logprobs

    # -- helpers -------------------------------------------------------------
    @staticmethod
    def _check_query_alpha(alpha) -> float:
        alpha = float(alpha)
        if not (0.0 <= alpha < math.inf):
            raise ValueError(f"alpha must be a finite number >= 0, not {alpha}")
        return alpha

    def _piece_bytes(self, piece: Piece) -> bytes:
        if isinstance(piece, bytes):
            return piece
        if isinstance(piece, (bytearray, memoryview)):
            return bytes(piece)
        if isinstance(piece, str):
            return piece.encode("utf-8")
        if isinstance(piece, (int, np.integer)) and not isinstance(piece, bool):
            table = self.id_bytes
            if 3 <= piece < len(table):
                return table[piece]
            raise ValueError(f"id {piece} is not a piece id (3 .. {len(table) - 1})")
        raise TypeError(f"a piece must be bytes, str or an id, not {type(piece).__name__}")

    # -- queries ---------------------------------------------------------------
    def nbest(self, text, n: int = 5) -> list[tuple[list[bytes], float]]:
        """The ``n`` best segmentations of ``text`` as ``(pieces, score)``, best first.

        >>> tok.nbest("tokenizer", 2)                        # doctest: +SKIP
        [([b'token', b'ize', b'r'], -26.63...), ([b'token', b'iz', b'er'], -27.38...)]

        Exact (k-best Viterbi keeps the n best partial paths at every position, so no
        top-n path is ever pruned); fewer than ``n`` when the text has fewer
        segmentations. The score is the sum of the pieces' log-probabilities. Ties are
        ordered as Viterbi breaks them (the longer last piece first, recursively), so
        ``nbest(text, 1)[0][0] == tokenize(text)``.
        """
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be >= 1, not {n}")
        data = self.to_bytes(text)
        out = []
        for _, ends, score in _queries.nbest(self.lattice, data, n):
            cuts = [0] + ends.tolist()
            out.append(([data[a:b] for a, b in zip(cuts, cuts[1:])], float(score)))
        return out

    def score(self, text, pieces: Sequence[Piece]) -> float:
        """The score (sum of log-probabilities) of one segmentation of ``text``.

        >>> tok.score("tokenizer", [b"token", b"ize", b"r"])  # doctest: +SKIP
        -26.63...

        ``pieces`` are bytes, str or ids and must concatenate to ``text``; ``-inf`` when
        a piece crosses a chunk boundary (after a newline), which the model never does.
        """
        data = self.to_bytes(text)
        parts = [self._piece_bytes(p) for p in pieces]
        if b"".join(parts) != data:
            raise ValueError("the pieces do not concatenate to the text")
        ends = np.cumsum([len(p) for p in parts], dtype=np.int64).astype(np.int32)
        if any(len(p) == 0 for p in parts):
            raise ValueError("pieces must not be empty")
        score, _ = _queries.path_score(self.lattice, data, ends)
        return float(score)

    def log_prob(self, text, pieces: Sequence[Piece], alpha: float = 1.0) -> float:
        """log P(pieces) under the sampling distribution exp(alpha * score) / Z.

        >>> tok.log_prob("tokenizer", [b"token", b"ize", b"r"], alpha=0.1)   # doctest: +SKIP
        -3.39...
        >>> pieces = tok.tokenize("tokenizer", alpha=0.1, key=0)     # doctest: +SKIP
        >>> tok.log_prob("tokenizer", pieces, alpha=0.1)             # doctest: +SKIP
        -4.59...

        Works for any segmentation, e.g. one drawn by ``tokenize(text, alpha)``;
        ``-inf`` for one the model cannot produce (a piece across a chunk boundary).
        """
        alpha = self._check_query_alpha(alpha)
        score = self.score(text, pieces)
        if score == -math.inf:
            return -math.inf
        return alpha * score - self.log_partition(text, alpha)

    def log_partition(self, text, alpha: float = 1.0) -> float:
        """log Z, Z = the sum of exp(alpha * score) over all segmentations of ``text``.

        >>> tok.log_partition("ab", alpha=0.0)     # doctest: +SKIP
        0.6931...

        (``alpha=0`` gives the log of the number of segmentations: here ``ab`` and
        ``a b``.)
        """
        alpha = self._check_query_alpha(alpha)
        logz, _, _ = _queries.entropy(self.lattice, self.to_bytes(text), alpha)
        return float(logz)

    def entropy(self, text, alpha: float = 1.0) -> float:
        """Entropy in nats of the segmentation distribution exp(alpha * score) / Z.

        >>> tok.entropy("tokenizer", alpha=0.1)    # doctest: +SKIP
        4.44...

        Equal to ``log Z - alpha * E[score]``; computed by a forward recursion with no
        cancellation, so it stays accurate (and >= 0) when the distribution is nearly
        deterministic. ``alpha=0`` gives ``log_partition(text, 0)``.
        """
        alpha = self._check_query_alpha(alpha)
        _, ent, _ = _queries.entropy(self.lattice, self.to_bytes(text), alpha)
        return max(float(ent), 0.0)

    def boundary_marginals(self, text, alpha: float = 1.0) -> np.ndarray:
        """For each byte position i = 0 .. len(bytes): P(a piece boundary falls at i).

        >>> tok.boundary_marginals("ab", alpha=1.0)  # doctest: +SKIP
        array([1. , 0.1, 1. ])

        Positions are in the UTF-8 bytes of the (NFC-normalised) text; the first and
        last entries are always 1, and so is every chunk boundary.
        """
        alpha = self._check_query_alpha(alpha)
        data = self.to_bytes(text)
        _, marg = _queries.boundary_marginals(self.lattice, data, alpha)
        # Rounding can leave a probability a few ulps outside [0, 1]; boundaries that are
        # certain (the ends, every chunk start) are exactly 1.
        np.clip(marg, 0.0, 1.0, out=marg)
        raw = np.frombuffer(data, dtype=np.uint8)
        starts = np.flatnonzero((raw[:-1] == 10) & (raw[1:] != 10)) + 1
        marg[starts] = 1.0
        marg[0] = marg[-1] = 1.0
        return marg

    # -- k distinct samples ------------------------------------------------------
    def sample_distinct(self, text, k: int, alpha: float = 1.0, *, key=None) -> list[tuple[list[bytes], float, float]]:
        """``k`` distinct segmentations drawn without replacement, as
        ``(pieces, log_prob, inclusion)`` in the order drawn.

        >>> tok.sample_distinct("tokenizer", 3, alpha=0.1, key=0)    # doctest: +SKIP
        [([b't', b'oke', b'n', b'i', b'z', b'e', b'r'], -5.12..., 0.0158...), ...]

        The draws are successive sampling: the first with probability
        p = exp(alpha * score) / Z, each next one with probability proportional to p among
        the segmentations not drawn yet (the distribution of the k largest of
        log p + Gumbel noise). Exact: the mass still available under every branch of the
        lattice is summed afresh (no subtraction of probabilities), so nothing is lost to
        cancellation even when one segmentation holds nearly all the mass.

        ``log_prob`` is log p. ``inclusion`` is the probability that the segmentation is
        among the k, *given the threshold* kappa (the (k+1)-th largest perturbed log p,
        drawn alongside): q = 1 - exp(-exp(log p - kappa)). Then sum(p / q * f(pieces))
        over the k is an unbiased estimate of E_p[f] (priority sampling; Kool, van Hoof and
        Welling, 2019). When the text has at most k segmentations all are returned, with
        q = 1. ``key`` makes the result reproducible, as for ``tokenize``.
        """
        alpha = self._check_query_alpha(alpha)
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be >= 1, not {k}")
        data = self.to_bytes(text)
        seed_word, key_word = self.words(key)
        return distinct.sample_distinct(self.lattice, data, k, alpha, seed_word, key_word, self._logprobs)
