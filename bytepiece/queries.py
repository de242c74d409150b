"""Exact answers about the whole segmentation lattice of a text: the Tokenizer's
nbest, score, log_prob, log_partition, entropy, boundary_marginals, piece_marginals,
expected_counts and lattice, which it holds as a LatticeQueries object (the draws,
``sample`` and ``sample_distinct``, are in :mod:`bytepiece.sampling`).

The sampler draws a segmentation with probability ``exp(alpha * score) / Z``. The same
lattice gives, exactly and in one or two passes over the text, the quantities around
that distribution (the compiled ``bytepiece._core`` does the passes): the n best
segmentations, the log-probability of a given segmentation, log Z, the entropy, the
probability that a piece boundary falls at each byte or that a piece stands at each
place, the expected count of every piece; and the lattice itself, every edge with its
score.

All answers are per the model's chunking (text is cut after each run of newlines,
and no piece crosses a cut), exactly as ``tokenize`` segments, and under the boundary
constraints given (:mod:`bytepiece.constraints`), which restrict the lattice itself.
:mod:`bytepiece.reference` computes the same things by brute force; the tests check
one against the other.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from . import _parallel, constraints
from ._core import em as _em
from ._core import queries as _queries
from ._core.lattice import Lattice
from ._numpy import is_integer, np
from .constraints import Pattern, Positions
from .encoding import check_count, check_sampling_alpha, not_a_text
from .model import FIRST_PIECE_ID

Piece = bytes | bytearray | str | int

#: Texts per block of expected_counts (a fixed size, so that sums do not depend on threads).
COUNT_BLOCK = 64


@functools.cache
def edge_fields(value: str) -> np.dtype:
    """The fields of an array of edges with one float each: piece_marginals' ("prob",
    the edge's probability) and lattice()'s ("logp", its piece's log-probability)."""
    return np.dtype([("start", np.int32), ("end", np.int32), ("id", np.int32), (value, np.float64)])


#: nbest counts a text's segmentations first when asked for more paths than this.
_NBEST_COUNT_FROM = 1024


class LatticeQueries:
    """Exact lattice queries over one tokenizer's lattice.

    ``lattice`` is the compiled lattice; ``to_bytes`` turns a text into the bytes it
    segments (the tokenizer's normalisation); ``id_bytes`` maps ids to piece bytes;
    ``logprobs`` are the pieces' log-probabilities, in the lattice's order."""

    def __init__(
        self,
        lattice: Lattice,
        to_bytes: Callable[[Any], bytes],
        id_bytes: Sequence[bytes],
        logprobs: Sequence[float],
    ):
        self._lattice = lattice
        self.to_bytes = to_bytes
        self.id_bytes = id_bytes
        self._logprobs = logprobs

    # -- helpers -------------------------------------------------------------
    def _masks(self, text, required, forbidden, regex) -> tuple[bytes, Any, Any]:
        """(the text's bytes, cuts, banned): the bytes a query segments and the masks of
        its boundary constraints (None where there are none)."""
        data = self.to_bytes(text)
        cuts, banned = constraints.masks(data, required, forbidden, regex)
        return data, cuts, banned

    def _log_partition(self, data: bytes, alpha: float, cuts, banned) -> float:
        logz, _, _ = _queries.entropy(self._lattice, data, alpha, cuts=cuts, banned=banned)
        constraints.check_reachable(self._lattice, data, cuts, banned, logz)
        return float(logz)

    def _piece_bytes(self, piece: Piece) -> bytes:
        if isinstance(piece, bytes):
            return piece
        if isinstance(piece, (bytearray, memoryview)):
            return bytes(piece)
        if isinstance(piece, str):
            return piece.encode("utf-8")
        if is_integer(piece) and not isinstance(piece, bool):
            table = self.id_bytes
            if 3 <= piece < len(table):
                return table[piece]
            raise ValueError(f"id {piece} is not a piece id (3 .. {len(table) - 1})")
        raise TypeError(f"a piece must be bytes, str or an id, not {type(piece).__name__}")

    # -- queries ---------------------------------------------------------------
    # (The queries' parameter lists repeat on purpose: each public method spells out its
    # own signature, as help() and the Tokenizer's forwarded methods show it.)
    def nbest(
        self,
        text,
        n: int = 5,
        *,
        required_boundaries: Positions | None = None,
        forbidden_boundaries: Positions | None = None,
        boundary_regex: Pattern | None = None,
    ) -> list[tuple[list[bytes], float]]:
        """The ``n`` best segmentations of ``text`` as ``(pieces, score)``, best first.

        >>> tok.nbest("tokenizer", 2)
        [([b'token', b'ize', b'r'], -26.63...), ([b'token', b'iz', b'er'], -27.38...)]

        Exact (k-best Viterbi keeps the n best partial paths at every position, so no
        top-n path is ever pruned); fewer than ``n`` when the text has fewer
        segmentations. The score is the sum of the pieces' log-probabilities. Ties are
        ordered as Viterbi breaks them (the longer last piece first, recursively), so
        ``nbest(text, 1)[0][0] == tokenize(text)``.
        """
        n = check_count(n, "n")
        data, cuts, banned = self._masks(text, required_boundaries, forbidden_boundaries, boundary_regex)
        if n > _NBEST_COUNT_FROM:
            # No position has more partial paths than the text has segmentations (each
            # extends to its own one with single bytes), so a larger n only costs memory:
            # the k-best tables hold n paths per position.
            logz, _, _ = _queries.entropy(self._lattice, data, 0.0)  # (alpha 0: log of the count)
            if logz < math.log(n):
                n = min(n, int(math.exp(logz) * (1 + 1e-9)) + 1)
        out = []
        try:
            ranked = _queries.nbest(self._lattice, data, n, cuts=cuts, banned=banned)
        except MemoryError:
            need = (len(data) + 1) * n * 20 / 1e9
            raise MemoryError(
                f"nbest: {n} paths at each of {len(data) + 1} positions need about {need:.3g} GB; ask for fewer"
            ) from None
        for _, ends, score in ranked:
            bounds = [0] + ends.tolist()
            out.append(([data[a:b] for a, b in zip(bounds, bounds[1:])], float(score)))
        if data and not out:
            constraints.check_reachable(self._lattice, data, cuts, banned, -math.inf)
        return out

    def score(self, text, pieces: Sequence[Piece]) -> float:
        """The score (sum of log-probabilities) of one segmentation of ``text``.

        >>> tok.score("tokenizer", [b"token", b"ize", b"r"])
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
        score, _ = _queries.path_score(self._lattice, data, ends)
        return float(score)

    def log_prob(
        self,
        text,
        pieces: Sequence[Piece],
        alpha: float = 1.0,
        *,
        required_boundaries: Positions | None = None,
        forbidden_boundaries: Positions | None = None,
        boundary_regex: Pattern | None = None,
    ) -> float:
        """log P(pieces) under the sampling distribution exp(alpha * score) / Z.

        >>> tok.log_prob("tokenizer", [b"token", b"ize", b"r"], alpha=0.1)
        -3.39...
        >>> pieces = tok.tokenize("tokenizer", alpha=0.1, key=0)
        >>> pieces, tok.log_prob("tokenizer", pieces, alpha=0.1)
        ([b't', b'oke', b'n', b'ize', b'r'], -4.25...)

        Works for any segmentation, e.g. one drawn by ``tokenize(text, alpha)``;
        ``-inf`` for one the model cannot produce (a piece across a chunk boundary) or
        that breaks the boundary constraints given (then Z sums over the segmentations
        that keep them).
        """
        alpha = check_sampling_alpha(alpha)
        score = self.score(text, pieces)
        if score == -math.inf:
            return -math.inf
        data, cuts, banned = self._masks(text, required_boundaries, forbidden_boundaries, boundary_regex)
        if cuts is not None or banned is not None:
            ends = np.cumsum([len(self._piece_bytes(p)) for p in pieces])
            starts = ends - [len(self._piece_bytes(p)) for p in pieces]
            if not _keeps(starts, ends, cuts, banned):
                return -math.inf
        # log P <= 0; rounding in alpha * score and log Z (both large for a long text or a
        # large alpha) must not make it positive.
        return min(alpha * score - self._log_partition(data, alpha, cuts, banned), 0.0)

    def log_partition(
        self,
        text,
        alpha: float = 1.0,
        *,
        required_boundaries: Positions | None = None,
        forbidden_boundaries: Positions | None = None,
        boundary_regex: Pattern | None = None,
    ) -> float:
        """log Z, Z = the sum of exp(alpha * score) over all segmentations of ``text``.

        >>> tok.log_partition("ab", alpha=0.0)
        0.6931...

        (``alpha=0`` gives the log of the number of segmentations: here ``ab`` and
        ``a b``.)
        """
        alpha = check_sampling_alpha(alpha)
        data, cuts, banned = self._masks(text, required_boundaries, forbidden_boundaries, boundary_regex)
        return self._log_partition(data, alpha, cuts, banned)

    def entropy(
        self,
        text,
        alpha: float = 1.0,
        *,
        required_boundaries: Positions | None = None,
        forbidden_boundaries: Positions | None = None,
        boundary_regex: Pattern | None = None,
    ) -> float:
        """Entropy in nats of the segmentation distribution exp(alpha * score) / Z.

        >>> tok.entropy("tokenizer", alpha=0.1)
        4.44...

        Equal to ``log Z - alpha * E[score]``; computed by a forward recursion with no
        cancellation, so it stays accurate (and >= 0) when the distribution is nearly
        deterministic. ``alpha=0`` gives ``log_partition(text, 0)``.
        """
        alpha = check_sampling_alpha(alpha)
        data, cuts, banned = self._masks(text, required_boundaries, forbidden_boundaries, boundary_regex)
        logz, ent, _ = _queries.entropy(self._lattice, data, alpha, cuts=cuts, banned=banned)
        constraints.check_reachable(self._lattice, data, cuts, banned, logz)
        return max(float(ent), 0.0)

    def boundary_marginals(
        self,
        text,
        alpha: float = 1.0,
        *,
        required_boundaries: Positions | None = None,
        forbidden_boundaries: Positions | None = None,
        boundary_regex: Pattern | None = None,
    ) -> np.ndarray:
        """For each byte position i = 0 .. len(bytes): P(a piece boundary falls at i).

        >>> tok.boundary_marginals("ab", alpha=1.0)
        array([1.        , 0.09802398, 1.        ])

        Positions are in the UTF-8 bytes of the (NFC-normalised) text; the first and
        last entries are always 1, and so is every chunk boundary.
        """
        alpha = check_sampling_alpha(alpha)
        data, cuts, banned = self._masks(text, required_boundaries, forbidden_boundaries, boundary_regex)
        logz, marg = _queries.boundary_marginals(self._lattice, data, alpha, cuts=cuts, banned=banned)
        constraints.check_reachable(self._lattice, data, cuts, banned, logz)
        # Rounding can leave a probability a few ulps outside [0, 1]; boundaries that are
        # certain (the ends, every chunk start, every required one) are exactly 1, and
        # forbidden ones exactly 0.
        np.clip(marg, 0.0, 1.0, out=marg)
        raw = np.frombuffer(data, dtype=np.uint8)
        starts = np.flatnonzero((raw[:-1] == 10) & (raw[1:] != 10)) + 1
        marg[starts] = 1.0
        marg[0] = marg[-1] = 1.0
        if cuts is not None:
            marg[cuts == 1] = 1.0
        if banned is not None:
            marg[banned == 1] = 0.0
        return marg

    # -- pieces: posteriors, expected counts, the lattice ----------------------------------
    def piece_marginals(
        self,
        text,
        alpha: float = 1.0,
        *,
        required_boundaries: Positions | None = None,
        forbidden_boundaries: Positions | None = None,
        boundary_regex: Pattern | None = None,
    ) -> np.ndarray:
        """Every piece occurrence (edge of the lattice) with probability above 0 that a
        segmentation drawn from exp(alpha * score) / Z has that piece there: a numpy
        structured array with fields ``start``, ``end`` (byte positions), ``id`` and
        ``prob``, in the order of :meth:`lattice` (by end position; for each end, the
        shortest piece first).

        >>> tok.piece_marginals("ab", 1.0)
        array([(0, 1,  100, 0.09802398), (1, 2,  101, 0.09802398),
               (0, 2, 1248, 0.90197602)],
              dtype=[('start', '<i4'), ('end', '<i4'), ('id', '<i4'), ('prob', '<f8')])

        The probabilities of the edges that start (or end) at a position sum to its
        boundary marginal; summed by id they are the text's expected counts.
        """
        alpha = check_sampling_alpha(alpha)
        data, cuts, banned = self._masks(text, required_boundaries, forbidden_boundaries, boundary_regex)
        # The core finds each end position's edges shortest first, and sorts the edges by
        # end, keeping that order.
        logz, table = _queries.piece_marginal_table(
            self._lattice, data, alpha, edge_fields("prob"), FIRST_PIECE_ID, cuts=cuts, banned=banned
        )
        constraints.check_reachable(self._lattice, data, cuts, banned, logz)
        return table

    def expected_counts(self, texts, alpha: float = 1.0, *, num_threads: int | None = None) -> np.ndarray:
        """The expected number of times each id occurs in a segmentation of the texts drawn
        from exp(alpha * score) / Z (the E-step of Unigram training), summed over the
        texts: a float64 array indexed by id.

        >>> counts = tok.expected_counts(["a text", "another text"], alpha=0.5)

        Runs on several threads. The texts are summed in blocks of a fixed size, and the
        blocks in order, so the result does not depend on the number of threads, bit for
        bit."""
        alpha = check_sampling_alpha(alpha)
        if isinstance(texts, (str, bytes)):
            raise TypeError("expected_counts takes a sequence of texts")
        texts = list(texts)
        try:
            datas = [self.to_bytes(t) for t in texts]
        except TypeError:
            error = not_a_text(texts)  # (a text that is not one: its index is named)
            if error is None:
                raise
            raise error from None
        threads = _parallel.thread_count(num_threads, datas)
        blocks = [(i, lo, min(lo + COUNT_BLOCK, len(datas))) for i, lo in enumerate(range(0, len(datas), COUNT_BLOCK))]
        size = len(self.id_bytes)
        parts: list = [None] * len(blocks)

        def run_block(index: int, lo: int, hi: int) -> None:
            counts = np.zeros(size, dtype=np.float64)
            _em.expected_counts(self._lattice, datas[lo:hi], counts, alpha=alpha, chunked=True)
            parts[index] = counts

        _parallel.run_parallel(run_block, blocks, threads)
        total = np.zeros(size, dtype=np.float64)
        for part in parts:
            total += part
        return total

    def lattice(
        self,
        text,
        *,
        required_boundaries: Positions | None = None,
        forbidden_boundaries: Positions | None = None,
        boundary_regex: Pattern | None = None,
    ) -> np.ndarray:
        """The lattice of ``text``: every place a piece of the vocabulary may stand, as a
        numpy structured array with fields ``start``, ``end`` (byte positions), ``id`` and
        ``logp`` (the piece's log-probability), by end position and, for each end, the
        shortest piece first. A segmentation's score is the
        sum of its edges' ``logp``; ``score`` scores one given as ids.

        >>> tok.lattice("ab")
        array([(0, 1,  100, -4.66910122), (1, 2,  101, -6.55887783),
               (0, 2, 1248, -9.00860323)],
              dtype=[('start', '<i4'), ('end', '<i4'), ('id', '<i4'), ('logp', '<f8')])
        """
        data, cuts, banned = self._masks(text, required_boundaries, forbidden_boundaries, boundary_regex)
        starts, ends, values = _queries.edges(self._lattice, data, cuts=cuts, banned=banned)
        out = np.empty(len(starts), dtype=edge_fields("logp"))
        out["start"], out["end"], out["id"] = starts, ends, values + FIRST_PIECE_ID
        out["logp"] = np.asarray(self._logprobs)[values]
        return out


def _keeps(starts: np.ndarray, ends: np.ndarray, cuts, banned) -> bool:
    """Whether pieces from starts to ends keep the constraints: none crosses a required
    boundary, none starts or ends at a forbidden one."""
    if banned is not None and (banned[starts].any() or banned[ends].any()):
        return False
    if cuts is not None:
        before = np.concatenate([[0], np.cumsum(cuts)])  # required boundaries at positions < i
        inside = before[ends] - before[starts + 1]  # at positions start+1 .. end-1
        if inside.any():
            return False
    return True
