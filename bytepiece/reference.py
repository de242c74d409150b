"""A small, readable pure-Python segmentation lattice: the oracle for the compiled core.

Nothing here is fast; everything here is meant to be obviously right, for short
inputs. The compiled lattice (``bytepiece._core``) answers the same
questions in one pass over the text; the tests compare the two.

The model is a vocabulary ``{piece bytes: log-probability}``. A segmentation of
``data`` is a sequence of pieces whose concatenation is ``data``; its *score*
is the sum of its pieces' log-probabilities. Under ``alpha >= 0`` a
segmentation has probability ``exp(alpha * score) / Z``.

As in BytePiece 0.6.3, text is cut into chunks that each end at a run of
newlines (the regex ``.*\\n+|.+``); no piece crosses a chunk start, and each
chunk's score is summed from 0 (so floating-point sums, and with them Viterbi
ties, come out exactly as 0.6.3's). A text's score is the sum of its chunks'
scores, added left to right.

>>> vocab = {bytes([b]): -4.0 for b in range(256)}
>>> vocab.update({b"ab": -3.0, b"abc": -5.0})
>>> lat = ReferenceLattice(vocab)
>>> sorted(lat.segmentations(b"abc"), key=lambda item: -item[1])
[((b'abc',), -5.0), ((b'ab', b'c'), -7.0), ((b'a', b'b', b'c'), -12.0)]
>>> round(lat.log_partition(b"abc", alpha=1.0), 4)
-4.8723
>>> lat.viterbi(b"abc")
[b'abc']
>>> lat.nbest(b"abc", 2)
[([b'abc'], -5.0), ([b'ab', b'c'], -7.0)]

Two more brute-force tools live here for the same reason (obviously right, slow):
:func:`enumerate_segmentations` lists every segmentation of a text as piece ids,
and :func:`chi_square` / :func:`chi_square_sf` compare sampled frequencies with
exact probabilities (``bytepiece sample --check`` uses both; no scipy needed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterator, Mapping, Sequence

Path = tuple[bytes, ...]

_CHUNK = re.compile(rb".*\n+|.+")  # '.' does not match b'\n'


def split_chunks(data: bytes, chunked: bool = True) -> list[bytes]:
    """The chunks of ``data``: each ends at a run of newlines (0.6.3's ``.*\\n+|.+``).

    >>> split_chunks(b"ab\\n\\ncd\\ne")
    [b'ab\\n\\n', b'cd\\n', b'e']
    """
    if not data:
        return []
    if not chunked:
        return [data]
    return _CHUNK.findall(data)


def logsumexp(values: Sequence[float]) -> float:
    """log(sum(exp(v))) without overflow; -inf for no values."""
    values = list(values)
    if not values:
        return -math.inf
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


class ReferenceLattice:
    """Brute-force answers about the segmentations of short byte strings.

    ``vocab`` maps piece bytes to log-probabilities. For the answers to cover
    every input, include all 256 single bytes (as real models do).
    """

    def __init__(self, vocab: Mapping[bytes, float], chunked: bool = True):
        self.vocab: dict[bytes, float] = {bytes(p): float(lp) for p, lp in vocab.items()}
        if any(len(p) == 0 for p in self.vocab):
            raise ValueError("pieces must not be empty")
        self.chunked = chunked
        self.max_len = max((len(p) for p in self.vocab), default=0)

    # -- the lattice -------------------------------------------------------
    def edges_ending_at(self, chunk: bytes, e: int) -> list[int]:
        """Start positions s (shortest piece first) such that chunk[s:e] is a piece."""
        return [s for s in range(e - 1, max(e - self.max_len, 0) - 1, -1) if chunk[s:e] in self.vocab]

    def chunk_score(self, pieces: Sequence[bytes]) -> float:
        """The score of one chunk's pieces, summed left to right from 0."""
        score = 0.0
        for piece in pieces:
            score = score + self.vocab[piece]
        return score

    def score(self, data: bytes, pieces: Sequence[bytes]) -> float:
        """The score of a segmentation of ``data``: chunk scores added left to right.

        Raises ValueError unless ``pieces`` is a segmentation of ``data``.
        """
        total = 0.0
        for chunk_pieces in self._split_path(data, pieces):
            total = total + self.chunk_score(chunk_pieces)
        return total

    def _split_path(self, data: bytes, pieces: Sequence[bytes]) -> list[list[bytes]]:
        """``pieces`` cut at the chunk boundaries of ``data``; checks it is a segmentation."""
        if b"".join(pieces) != data:
            raise ValueError("the pieces do not concatenate to the text")
        out: list[list[bytes]] = []
        it = iter(pieces)
        for chunk in split_chunks(data, self.chunked):
            got: list[bytes] = []
            length = 0
            while length < len(chunk):
                piece = next(it)
                if piece not in self.vocab:
                    raise ValueError(f"{piece!r} is not a piece")
                got.append(piece)
                length += len(piece)
            if length != len(chunk):
                raise ValueError("a piece crosses a chunk boundary")
            out.append(got)
        return out

    # -- enumeration -------------------------------------------------------
    def chunk_segmentations(self, chunk: bytes) -> list[Path]:
        """Every segmentation of one chunk (no order promised)."""
        paths: list[list[Path]] = [[] for _ in range(len(chunk) + 1)]
        paths[0] = [()]
        for e in range(1, len(chunk) + 1):
            for s in self.edges_ending_at(chunk, e):
                paths[e].extend(p + (chunk[s:e],) for p in paths[s])
        return paths[len(chunk)]

    def segmentations(self, data: bytes) -> Iterator[tuple[Path, float]]:
        """Every segmentation of ``data`` with its score."""
        chunks = split_chunks(data, self.chunked)
        combos: list[tuple[Path, float]] = [((), 0.0)]
        for chunk in chunks:
            options = [(p, self.chunk_score(p)) for p in self.chunk_segmentations(chunk)]
            combos = [(a + b, sa + sb) for a, sa in combos for b, sb in options]
        return iter(combos)

    def distribution(self, data: bytes, alpha: float) -> dict[Path, float]:
        """Every segmentation with its exact probability exp(alpha * score) / Z."""
        items = list(self.segmentations(data))
        logz = logsumexp([alpha * s for _, s in items])
        return {p: math.exp(alpha * s - logz) for p, s in items}

    # -- exact quantities --------------------------------------------------
    def log_partition(self, data: bytes, alpha: float) -> float:
        """log Z by the forward algorithm (a sum over chunks)."""
        total = 0.0
        for chunk in split_chunks(data, self.chunked):
            forward = [0.0] + [-math.inf] * len(chunk)
            for e in range(1, len(chunk) + 1):
                forward[e] = logsumexp(
                    [forward[s] + alpha * self.vocab[chunk[s:e]] for s in self.edges_ending_at(chunk, e)]
                )
            total += forward[len(chunk)]
        return total

    def log_partition_enumerated(self, data: bytes, alpha: float) -> float:
        """log Z as a sum over the enumerated segmentations."""
        return logsumexp([alpha * s for _, s in self.segmentations(data)])

    def log_prob(self, data: bytes, pieces: Sequence[bytes], alpha: float) -> float:
        """log P(pieces) = alpha * score - log Z."""
        return alpha * self.score(data, pieces) - self.log_partition(data, alpha)

    def entropy(self, data: bytes, alpha: float) -> float:
        """Entropy (nats) of the segmentation distribution, from the enumeration."""
        return -math.fsum(p * math.log(p) for p in self.distribution(data, alpha).values() if p > 0)

    def boundary_marginals(self, data: bytes, alpha: float) -> list[float]:
        """For i = 0 .. len(data): the probability that a piece boundary falls at byte i."""
        out = [0.0] * (len(data) + 1)
        for path, p in self.distribution(data, alpha).items():
            i = 0
            out[0] += p
            for piece in path:
                i += len(piece)
                out[i] += p
        return out

    # -- Viterbi and n-best ------------------------------------------------
    def viterbi(self, data: bytes) -> list[bytes]:
        """The best segmentation with 0.6.3's tie rule: at every position, among the
        edges that reach the best score, the longest piece wins."""
        out: list[bytes] = []
        for chunk in split_chunks(data, self.chunked):
            best = [0.0] + [-math.inf] * len(chunk)
            back = [0] * (len(chunk) + 1)
            for e in range(1, len(chunk) + 1):
                for s in self.edges_ending_at(chunk, e):  # shortest first
                    c = best[s] + self.vocab[chunk[s:e]]
                    if c >= best[e]:  # so the longest wins a tie
                        best[e], back[e] = c, s
            pieces: list[bytes] = []
            e = len(chunk)
            while e > 0:
                pieces.append(chunk[back[e] : e])
                e = back[e]
            out.extend(reversed(pieces))
        return out

    def argmax_enumerated(self, data: bytes) -> list[bytes]:
        """The best segmentation found by enumeration: per chunk, the highest score;
        ties go to the path whose last piece is longest, then the one before it, and so on
        (the order the Viterbi tie rule produces)."""
        out: list[bytes] = []
        for chunk in split_chunks(data, self.chunked):
            paths = self.chunk_segmentations(chunk)
            best = max(paths, key=lambda p: (self.chunk_score(p), [len(x) for x in reversed(p)]))
            out.extend(best)
        return out

    def ranked(self, data: bytes) -> list[tuple[list[bytes], float]]:
        """Every segmentation with its score, in n-best order (best first).

        The order: higher score first. Within a chunk, ties are ordered as Viterbi
        orders them, recursively: the longer last piece first, then the order of the
        prefixes before it. Across chunks: the text's score (chunk scores added left to
        right), then the order within the last chunk, then the order of the chunks
        before it. Under exact arithmetic the within-chunk rule is simply "the longer
        last piece, then the longer piece before it, ...".
        """
        combos: list[tuple[Path, float]] = [((), 0.0)]
        for chunk in split_chunks(data, self.chunked):
            options = self._ranked_chunk(chunk)
            keyed = [
                ((-(sa + sb), rb, ra), (a + b, sa + sb))
                for ra, (a, sa) in enumerate(combos)
                for rb, (b, sb) in enumerate(options)
            ]
            keyed.sort(key=lambda item: item[0])
            combos = [value for _, value in keyed]
        return [(list(p), s) for p, s in combos]

    def _ranked_chunk(self, chunk: bytes) -> list[tuple[Path, float]]:
        """All segmentations of a chunk in order, by the recursive rule, without pruning."""
        ranked: list[list[tuple[Path, float]]] = [[] for _ in range(len(chunk) + 1)]
        ranked[0] = [((), 0.0)]
        for e in range(1, len(chunk) + 1):
            keyed = []
            for s in self.edges_ending_at(chunk, e):
                lp = self.vocab[chunk[s:e]]
                for rank, (p, sc) in enumerate(ranked[s]):
                    c = sc + lp
                    keyed.append(((-c, -(e - s), rank), (p + (chunk[s:e],), c)))
            keyed.sort(key=lambda item: item[0])
            ranked[e] = [value for _, value in keyed]
        return ranked[len(chunk)]

    def nbest(self, data: bytes, n: int) -> list[tuple[list[bytes], float]]:
        """The n best segmentations with their scores (see :meth:`ranked` for ties)."""
        return self.ranked(data)[:n]

    # -- piece posteriors -----------------------------------------------------
    def piece_marginals(self, data: bytes, alpha: float) -> dict[tuple[int, int, bytes], float]:
        """{(start, end, piece): probability that a segmentation has that piece there},
        summed over the enumerated distribution (edges of probability 0 are left out)."""
        out: dict[tuple[int, int, bytes], float] = {}
        for path, p in self.distribution(data, alpha).items():
            i = 0
            for piece in path:
                edge = (i, i + len(piece), piece)
                out[edge] = out.get(edge, 0.0) + p
                i += len(piece)
        return {edge: p for edge, p in out.items() if p > 0}


def keeps_constraints(path: Sequence[bytes], required: Collection[int] = (), forbidden: Collection[int] = ()) -> bool:
    """Whether a segmentation keeps boundary constraints: no piece crosses a required
    position (one strictly inside it), no piece starts or ends at a forbidden one."""
    i = 0
    for piece in path:
        j = i + len(piece)
        if i in forbidden or j in forbidden or any(r in required for r in range(i + 1, j)):
            return False
        i = j
    return True


class ConstrainedReference(ReferenceLattice):
    """The oracle restricted to the segmentations that keep boundary constraints (byte
    positions where a boundary is required or forbidden; see bytepiece.constraints).
    Every answer is by enumeration of the allowed segmentations, for short texts."""

    def __init__(
        self,
        vocab: Mapping[bytes, float],
        required: Collection[int] = (),
        forbidden: Collection[int] = (),
        chunked: bool = True,
    ):
        super().__init__(vocab, chunked)
        self.required = frozenset(required)
        self.forbidden = frozenset(forbidden)

    def allows(self, path: Sequence[bytes]) -> bool:
        return keeps_constraints(path, self.required, self.forbidden)

    def segmentations(self, data: bytes) -> Iterator[tuple[Path, float]]:
        return (item for item in super().segmentations(data) if self.allows(item[0]))

    def ranked(self, data: bytes) -> list[tuple[list[bytes], float]]:
        return [item for item in super().ranked(data) if self.allows(item[0])]

    def log_partition(self, data: bytes, alpha: float) -> float:
        return self.log_partition_enumerated(data, alpha)

    def viterbi(self, data: bytes) -> list[bytes]:
        ranked = self.ranked(data)
        if not ranked:
            raise ValueError("the constraints leave no segmentation")
        return ranked[0][0]

    def argmax_enumerated(self, data: bytes) -> list[bytes]:
        return self.viterbi(data)


# ---------------------------------------------------------------------------
# Every segmentation as piece ids

ENUMERATION_LIMIT = 100_000
#: The most pieces a listing may hold in all (the segmentations' lengths added up).
ENUMERATION_PIECES = 5_000_000


def enumerate_segmentations(
    data: bytes,
    pieces: Mapping[bytes, int],
    max_len: int,
    limit: int | None = None,
    max_pieces: int | None = None,
) -> list[tuple[int, ...]]:
    """Every segmentation of ``data`` into pieces (as id tuples), in the lattice's chunks.

    ``pieces`` maps piece bytes to ids; ``max_len`` bounds the piece length looked up.
    The order is depth-first, shorter first piece first. Raises ValueError when there
    are more than ``limit`` segmentations (default :data:`ENUMERATION_LIMIT`) or when
    they hold more than ``max_pieces`` pieces in all (default
    :data:`ENUMERATION_PIECES`), both counted before any is listed. The work and the
    memory are those of the listing itself: each position's pieces are looked up once,
    and a segmentation costs its own length (prefixes are shared while it is built).

    >>> enumerate_segmentations(b"ab\\nc", {b"a": 1, b"b": 2, b"ab": 3, b"\\n": 4, b"c": 5, b"\\nc": 6}, 2)
    [(1, 2, 4, 5), (3, 4, 5)]
    """
    limit = ENUMERATION_LIMIT if limit is None else limit
    max_pieces = ENUMERATION_PIECES if max_pieces is None else max_pieces
    n = len(data)
    # Every prefix of a piece: the walk from a position stops at the first that is none.
    prefixes = {piece[:m] for piece in pieces if len(piece) <= max_len for m in range(1, len(piece) + 1)}
    # ends[s]: (id, end) of the pieces that start at s and stay inside its chunk
    ends: list[list[tuple[int, int]]] = []
    chunk_end = 0
    for chunk in split_chunks(data):
        chunk_start, chunk_end = chunk_end, chunk_end + len(chunk)
        for s in range(chunk_start, chunk_end):
            here = []
            for e in range(s + 1, min(chunk_end, s + max_len) + 1):
                head = data[s:e]
                if head not in prefixes:
                    break
                i = pieces.get(head)
                if i is not None:
                    here.append((i, e))
            ends.append(here)
    # From each position: how many ways to the end, and their pieces in all; both
    # saturate just above their limit, so that the numbers stay small.
    count_cap, pieces_cap = limit + 1, max_pieces + 1
    counts = [0] * (n + 1)
    lengths = [0] * (n + 1)
    counts[n] = 1
    for s in range(n - 1, -1, -1):
        c = total = 0
        for _, e in ends[s]:
            c += counts[e]
            total += lengths[e] + counts[e]
        counts[s] = min(c, count_cap)
        lengths[s] = min(total, pieces_cap)
    if counts[0] > limit:
        raise ValueError(f"the text has more than {limit} segmentations; at most {limit} can be enumerated")
    if lengths[0] > max_pieces:
        raise ValueError(
            f"its segmentations hold more than {max_pieces} pieces in all; at most {max_pieces} can be enumerated"
        )
    found: list[tuple[int, ...]] = []
    if counts[0] == 0:
        return found
    # Depth first without recursion: one shared path, and per depth the next piece to try.
    path: list[int] = []
    at: list[int] = [0]  # the position reached at each depth
    tried: list[int] = [0]  # how many of the pieces from that position are done
    while at:
        s = at[-1]
        if s == n:
            found.append(tuple(path))
        options = ends[s] if s < n else []
        j = tried[-1]
        while j < len(options) and counts[options[j][1]] == 0:
            j += 1  # (a piece after which the text cannot be finished)
        if j < len(options):
            tried[-1] = j + 1
            i, e = options[j]
            path.append(i)
            at.append(e)
            tried.append(0)
        else:
            at.pop()
            tried.pop()
            if path:
                path.pop()
    return found


# ---------------------------------------------------------------------------
# Chi-square statistics


def chi_square(cells: Sequence[tuple[float, int]], min_expected: float = 5.0) -> tuple[float, int, int]:
    """Pearson's statistic over (expected, observed) cells; cells expecting fewer than
    ``min_expected`` are pooled into one. Returns (statistic, degrees of freedom, pooled)."""
    kept = [(e, o) for e, o in cells if e >= min_expected]
    rare = [(e, o) for e, o in cells if e < min_expected]
    if rare:
        kept.append((math.fsum(e for e, _ in rare), sum(o for _, o in rare)))
    statistic = math.fsum((o - e) ** 2 / e for e, o in kept if e > 0)
    return statistic, max(len(kept) - 1, 0), len(rare)


def chi_square_sf(x: float, dof: int) -> float:
    """P(X >= x) for a chi-square variable with ``dof`` degrees of freedom."""
    if x <= 0:
        return 1.0
    return upper_gamma_regularized(dof / 2.0, x / 2.0)


def upper_gamma_regularized(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a): a power series below a + 1, a continued fraction above."""
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        k = a
        for _ in range(10_000):
            k += 1.0
            term *= x / k
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    # Lentz's method for the continued fraction of Gamma(a, x).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(1.0, math.exp(log_front) * h)
