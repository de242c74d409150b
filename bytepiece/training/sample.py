"""The EM sample: which chunks of the corpus the EM sees, and how it weighs them.

- **Bottom-k by hash.** The sample is the chunks with the smallest hashes (BLAKE2b of
  their bytes), up to a byte budget: uniform, deterministic, and independent of how
  the corpus is cut into blocks or spread over workers, because the bottom of a union
  of bottom samples is the bottom of the whole. Each block sends its own bottom sample
  (a :class:`SampleCollector`); collectors merge by keeping the bottom of the union.
- **Parts.** The EM segments each distinct chunk once per pass, weighted by its
  multiplicity (repeated lines are common in code), and sums expected counts over
  ``EM_PARTS`` fixed, contiguous parts of the sample, in list order: the same floats
  whatever the number of threads.
- **Script weights.** Each chunk belongs to the script most of its characters are in;
  a script's weight raises minority scripts to a floor of the sample (see
  ``EmOptions.script_floor`` and ``balance``).
"""

from __future__ import annotations

import collections
from typing import NamedTuple

import numpy as np

from ..keys import blake2b
from . import kernels

#: EM sums expected counts over this many fixed parts of the sample (a fixed
#: summation order, whatever the number of threads).
EM_PARTS = 16
#: The script floor raises a script's weight to at most this many times its share.
SCRIPT_MAX_BOOST = 3.0


def chunk_key(chunk: bytes) -> int:
    """The sample key of a chunk (kernels.chunk_keys computes the same for a list, in C)."""
    return int.from_bytes(blake2b(chunk, digest_size=8).digest(), "little")


def trim_order(keys: np.ndarray, lengths: np.ndarray, budget: int) -> np.ndarray:
    """The indices of the sample kept, in hash order (stable): the prefix that fits in
    budget bytes."""
    return bottom(keys, lengths, budget, None)[0]


def bottom(keys: np.ndarray, lengths: np.ndarray, budget: int, cutoff: int | None) -> tuple[np.ndarray, int | None]:
    """(the indices kept, in hash order (stable): the prefix that fits in budget bytes of
    the chunks with keys at most the cutoff; the new cutoff). The first chunk left out
    does not fit, and the chunks ranked before it only get more as chunks are added: no
    chunk ranked after it is ever kept, so its key is the cutoff. Without one, dropping
    that chunk would let a later, smaller chunk ranked after it in (a union of blocks
    would keep what the whole corpus does not). Chunks with equal keys are copies of one
    chunk: those held when the cutoff is learned rank before the chunk left out (kept
    here: at most the cutoff), those added afterwards rank after it (dropped on arrival:
    below the cutoff only)."""
    ranked = np.argsort(keys, kind="stable")
    if cutoff is not None:
        ranked = ranked[: int(np.searchsorted(keys[ranked], np.uint64(cutoff), side="right"))]
    kept = int(np.searchsorted(np.cumsum(lengths[ranked]), budget, side="right"))
    if kept < len(ranked):
        cutoff = int(keys[ranked[kept]])
    return ranked[:kept], cutoff


def _arrivals(collector: SampleCollector, cutoff: int | None) -> tuple[list[np.ndarray], list[bytes], list[np.ndarray]]:
    """(keys, chunks, lengths) of a collector's chunks that may join a sample whose cutoff
    is known: those below it."""
    if cutoff is None:
        return collector.keys, collector.chunks, collector.lengths
    keys_out, chunks_out, lengths_out = [], [], []
    for keys, lengths, first in zip(collector.keys, collector.lengths, _starts(collector.lengths)):
        below = np.flatnonzero(keys < np.uint64(cutoff))
        keys_out.append(keys[below])
        lengths_out.append(lengths[below])
        chunks_out.extend([collector.chunks[first + i] for i in below.tolist()])
    return keys_out, chunks_out, lengths_out


def _min_cutoff(*cutoffs: int | None) -> int | None:
    known = [c for c in cutoffs if c is not None]
    return min(known) if known else None


class SampleCollector:
    """A bottom-k sample being drawn: chunks with their hashes (uint64) and lengths
    (int64), up to ``budget`` bytes once trimmed, and a cutoff (see :func:`bottom`): no
    chunk with a key at or above it is ever kept, so such chunks are dropped on arrival.
    Adding another collector keeps the union, cut back to the budget whenever it holds
    twice that; the result is the bottom of everything added, however it was cut into
    collectors."""

    def __init__(
        self,
        budget: int,
        keys: np.ndarray | None = None,
        chunks: list[bytes] | None = None,
        lengths: np.ndarray | None = None,
        cutoff: int | None = None,
    ):
        self.budget = int(budget)
        self.keys = [np.zeros(0, dtype=np.uint64) if keys is None else keys]
        self.lengths = [np.zeros(0, dtype=np.int64) if lengths is None else lengths]
        self.chunks: list[bytes] = [] if chunks is None else chunks
        self.size = int(self.lengths[0].sum())
        self.cutoff = cutoff

    @classmethod
    def of_chunks(cls, chunks: list[bytes], budget: int) -> SampleCollector:
        """The bottom sample of one block's chunks."""
        keys = kernels.chunk_keys(chunks)
        # (the lengths travel with the sample: read here, while the chunks are still in the
        # cache, not in a later pass over them)
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        order, cutoff = bottom(keys, lengths, budget, None)
        return cls(budget, keys[order], [chunks[i] for i in order.tolist()], lengths[order], cutoff)

    @classmethod
    def of_pairs(cls, pairs: list[tuple[int, bytes]], budget: int) -> SampleCollector:
        """A collector holding (hash, chunk) pairs (as saved in a counts file)."""
        keys = np.fromiter((k for k, _ in pairs), dtype=np.uint64, count=len(pairs))
        chunks = [c for _, c in pairs]
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        return cls(budget, keys, chunks, lengths)

    @classmethod
    def union(cls, samples: list[SampleCollector], budget: int) -> SampleCollector:
        """A new collector holding the bottom of the union of samples, trimmed to the
        budget; the samples are left as they are."""
        keys_parts: list[np.ndarray] = []
        chunks: list[bytes] = []
        lengths_parts: list[np.ndarray] = []
        cutoff = None
        for sample in samples:  # (in order: each one's chunks arrive after the others')
            keys, more, lengths = _arrivals(sample, cutoff)
            keys_parts.extend(keys)
            chunks.extend(more)
            lengths_parts.extend(lengths)
            cutoff = _min_cutoff(cutoff, sample.cutoff)
        all_keys = np.concatenate(keys_parts or [np.zeros(0, dtype=np.uint64)])
        all_lengths = np.concatenate(lengths_parts or [np.zeros(0, dtype=np.int64)])
        order, cutoff = bottom(all_keys, all_lengths, budget, cutoff)
        return cls(budget, all_keys[order], [chunks[i] for i in order.tolist()], all_lengths[order], cutoff)

    def add(self, other: SampleCollector | None) -> None:
        """Add another collector's chunks (it is spent)."""
        if other is None:
            return
        keys, chunks, lengths = _arrivals(other, self.cutoff)
        self.keys.extend(keys)
        self.lengths.extend(lengths)
        self.chunks.extend(chunks)
        self.size += sum(int(part.sum()) for part in lengths)
        self.cutoff = _min_cutoff(self.cutoff, other.cutoff)
        if self.size > 2 * self.budget:
            all_keys, all_chunks, all_lengths = _concatenated([self])
            order, self.cutoff = bottom(all_keys, all_lengths, self.budget, self.cutoff)
            self.keys, self.lengths = [all_keys[order]], [all_lengths[order]]
            self.chunks = [all_chunks[i] for i in order.tolist()]
            self.size = int(self.lengths[0].sum())

    def pairs(self) -> list[tuple[int, bytes]]:
        """The sample as (hash, chunk) pairs in hash order."""
        keys, chunks, lengths = _concatenated([self])
        order, _ = bottom(keys, lengths, self.budget, self.cutoff)
        return [(k, chunks[i]) for k, i in zip(keys[order].tolist(), order.tolist())]

    def keyed_result(self) -> tuple[list[bytes], np.ndarray, np.ndarray, np.ndarray]:
        """(chunks, order, hashes, lengths): the sample is chunks[order[0]], chunks[order[1]],
        ... (hash order), and hashes and lengths are theirs, in that order. The sorted list
        itself is not made (a pass over the chunk objects, most of them out of the cache
        by now). The collector is spent."""
        keys, chunks, lengths = _concatenated([self])
        order, _ = bottom(keys, lengths, self.budget, self.cutoff)
        self.keys, self.lengths, self.chunks = [], [], []
        return chunks, order, keys[order], lengths[order]

    def result(self) -> list[bytes]:
        """The sample, in hash order; the collector is spent."""
        chunks, order, _, _ = self.keyed_result()
        return [chunks[i] for i in order.tolist()]


def _starts(lengths: list[np.ndarray]) -> list[int]:
    """Where each of a collector's key arrays starts in its list of chunks."""
    starts, at = [], 0
    for part in lengths:
        starts.append(at)
        at += len(part)
    return starts


def _concatenated(samples: list[SampleCollector]) -> tuple[np.ndarray, list[bytes], np.ndarray]:
    keys = np.concatenate([k for s in samples for k in s.keys] or [np.zeros(0, dtype=np.uint64)])
    lengths = np.concatenate([n for s in samples for n in s.lengths] or [np.zeros(0, dtype=np.int64)])
    chunks = samples[0].chunks if len(samples) == 1 else [c for s in samples for c in s.chunks]
    return keys, chunks, lengths


# ---------------------------------------------------------------------------
# The EM's view of its sample: distinct chunks, weighted, in parts


class Group(NamedTuple):
    """A part of the EM sample: chunks, each with the weight of its counts, and the sum
    of weight x length (the part's mass in an E-step)."""

    texts: list[bytes]
    weights: np.ndarray
    mass: float


class SampleParts(NamedTuple):
    """The EM sample as the EM reads it: how many chunks and bytes it holds, and its parts."""

    num_chunks: int
    nbytes: int
    groups: list[Group]


def sample_parts(sample: SampleCollector, balance: float, floor: float) -> SampleParts:
    """The parts (em_parts) of a collector's sample; the collector is spent."""
    chunks, order, keys, lengths = sample.keyed_result()
    distinct = distinct_runs(chunks, order, keys, lengths)
    if distinct is None:
        chunks, distinct = [chunks[i] for i in order.tolist()], None
    return SampleParts(len(order), int(lengths.sum()), em_parts(chunks, balance, EM_PARTS, floor, distinct))


def em_parts(
    sample: list[bytes] | None,
    balance: float,
    k: int,
    floor: float = 0.0,
    distinct: tuple[list[bytes], np.ndarray, np.ndarray] | None = None,
) -> list[Group]:
    """The EM's view of its sample: the distinct chunks (first-occurrence order), each
    weighing its multiplicity times its script's weight (script_weights), cut into k
    parts (make_parts). A chunk found m times is segmented once per pass. `distinct`,
    when given, is distinct_runs's answer for the sample (which is then not read)."""
    if distinct is None:
        assert sample is not None
        counted = collections.Counter(sample)  # (counted in C; keeps first-occurrence order)
        chunks = list(counted)
        multiplicity = np.fromiter(counted.values(), dtype=np.float64, count=len(chunks))
        del counted
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
    else:
        chunks, multiplicity, lengths = distinct
    weights = script_weights(chunks, balance, multiplicity, floor, lengths) * multiplicity
    return make_parts(chunks, weights, k, lengths)


def distinct_runs(chunks: list[bytes], order: np.ndarray, keys: np.ndarray, lengths: np.ndarray):
    """What collections.Counter(sample) gives for the sample chunks[order[0]],
    chunks[order[1]], ..., sorted by its hashes `keys` (with `lengths` its lengths):
    equal chunks have equal hashes, so they are runs of equal keys. (The first chunk of
    each run, its run length as float64, its length.) None when the keys are not sorted,
    or two different chunks share a hash (the caller counts them itself then). Arrays
    instead of a pass over every chunk object."""
    if not len(order) == len(keys) == len(lengths):
        return None
    if len(keys) == 0:
        return [], np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
    if np.any(keys[1:] < keys[:-1]):
        return None
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    runs = np.diff(np.append(starts, len(keys)))
    repeated = np.flatnonzero(runs > 1)
    for s, r in zip(starts[repeated].tolist(), runs[repeated].tolist()):
        first = chunks[order[s]]
        for j in order[s + 1 : s + r].tolist():
            if chunks[j] != first:
                return None
    return [chunks[i] for i in order[starts].tolist()], runs.astype(np.float64), lengths[starts]


def make_parts(chunks: list[bytes], weights: np.ndarray, k: int, lengths: np.ndarray | None = None) -> list[Group]:
    """Cut chunks (each with its weight: the weight of its counts) into k contiguous parts
    of about equal bytes (`lengths`, when given, are the chunks' lengths). The parts come
    in a fixed order, so summing their counts in list order gives the same floats
    whatever the thread count."""
    if lengths is None:
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
    before = np.cumsum(lengths) - lengths  # bytes of the chunks before each one
    total = max(int(lengths.sum()), 1)
    part = np.minimum(k - 1, before * k // total)  # contiguous
    cuts = np.searchsorted(part, np.arange(k + 1))
    # (elementwise, not np.dot: a BLAS call wakes OpenBLAS's threads, which then spin for
    # a while on the cores the counting threads need)
    mass = weights * lengths
    return [
        Group(chunks[lo:hi], weights[lo:hi], float(mass[lo:hi].sum()))
        for lo, hi in zip(cuts[:-1].tolist(), cuts[1:].tolist())
        if hi > lo
    ]


def spread(groups: list[Group], fraction: float) -> list[Group]:
    """About fraction of the groups, evenly spread over the list (the parts are contiguous
    runs of the sample, and a corpus often comes one language after another)."""
    m = max(1, int(round(len(groups) * fraction)))
    return groups if m >= len(groups) else [groups[i * len(groups) // m] for i in range(m)]


def group_bytes(groups: list[Group]) -> float:
    """The weighted bytes of the groups: their mass in the E-step."""
    return float(sum(group.mass for group in groups))


# ---------------------------------------------------------------------------
# Script weights

# Script of a character from its UTF-8 lead byte (continuation bytes: NO_VOTE): 0 ASCII,
# 1 Latin-1 / Latin extended / IPA / Greek, 2 Cyrillic, 3 Armenian and Hebrew, 4 Arabic,
# Syriac, Thaana, NKo, 5 U+0800-0FFF (Indic, Thai, Lao, Tibetan), 6 U+1000-1FFF (Myanmar,
# Georgian, Ethiopic, ...), 7 symbols, punctuation, private use, 4-byte characters (emoji),
# 8 CJK (kana, CJK symbols, Han), 9 Yi and Hangul.
NO_VOTE = 10
SCRIPT_OF_LEAD = np.full(256, 7, dtype=np.int64)
SCRIPT_OF_LEAD[0x00:0x80] = 0
SCRIPT_OF_LEAD[0x80:0xC0] = NO_VOTE
SCRIPT_OF_LEAD[0xC0:0xD0] = 1
SCRIPT_OF_LEAD[0xD0:0xD5] = 2
SCRIPT_OF_LEAD[0xD5:0xD8] = 3
SCRIPT_OF_LEAD[0xD8:0xE0] = 4
SCRIPT_OF_LEAD[0xE0] = 5
SCRIPT_OF_LEAD[0xE1] = 6
SCRIPT_OF_LEAD[0xE3:0xEA] = 8
SCRIPT_OF_LEAD[0xEA:0xEE] = 9
SCRIPT_OF_LEAD.flags.writeable = False


def scripts(sample: list[bytes]) -> np.ndarray:
    """The script (see SCRIPT_OF_LEAD) most characters of each chunk are in; ties go to
    the lower number (one pass over the bytes in C, without the GIL)."""
    return kernels.chunk_scripts(sample, SCRIPT_OF_LEAD, NO_VOTE)


def script_targets(share: np.ndarray, balance: float, floor: float) -> np.ndarray:
    """The weight share of each script, from its byte share: tempered (p**balance,
    renormalised), then every script present raised to at least `floor`, the others
    scaled down in proportion (repeated until none of them falls below it; all equal
    when the floor cannot be met)."""
    present = share > 0
    target = np.zeros(len(share), dtype=np.float64)
    target[present] = share[present] ** balance
    target /= target.sum()
    if floor <= 0:
        return target
    # each script's own floor: `floor`, but at most SCRIPT_MAX_BOOST times its share
    own = np.minimum(floor, SCRIPT_MAX_BOOST * target)
    if own.sum() >= 1:
        return own / own.sum()
    low = present & (target < own)
    while True:
        rest = present & ~low
        scaled = np.where(low, own, target * (1 - own[low].sum()) / target[rest].sum())
        more = present & ~low & (scaled < own)
        if not more.any():
            return np.where(present, scaled, 0.0)
        low |= more


def script_weights(
    sample: list[bytes],
    balance: float,
    multiplicity: np.ndarray | None = None,
    floor: float = 0.0,
    lengths: np.ndarray | None = None,
) -> np.ndarray:
    """Per chunk: the weight that makes each script's share of the sample bytes count as
    its script_targets share (1.0 everywhere when nothing is balanced, or there is one
    script). With `multiplicity`, chunk i stands for multiplicity[i] copies of itself;
    `lengths`, when given, are the chunks' lengths."""
    weights = np.ones(len(sample), dtype=np.float64)
    if (balance == 1.0 and floor <= 0) or not sample:
        return weights
    script = scripts(sample)
    lengths = (
        np.fromiter(map(len, sample), dtype=np.float64, count=len(sample))
        if lengths is None
        else lengths.astype(np.float64)
    )
    if multiplicity is not None:
        lengths *= multiplicity
    share = np.bincount(script, weights=lengths, minlength=NO_VOTE).astype(np.float64)
    share /= max(share.sum(), 1.0)
    present = share > 0
    if present.sum() <= 1:
        return weights
    target = script_targets(share, balance, floor)
    per_script = np.ones_like(share)
    per_script[present] = target[present] / share[present]
    return per_script[script]
