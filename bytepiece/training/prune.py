"""BytePiece 0.6.3's pruning, and its ``convert_to_bytepiece``, on one engine for
weighted Viterbi piece counts.

0.6.3 prunes in three moves, each a re-segmentation: the pieces too rare or too long
give their counts to the pieces of their Viterbi split under the unigram model of the
others; "wasted" pieces (whose best split is not themselves) are dropped the same way,
until none is left; and each size cut re-segments the pieces beyond it.

Every re-segmentation is :func:`viterbi_piece_counts`: the lattice's
``viterbi_counts``, which adds each text's weight to the pieces of its split in C
without making the split. It was chosen over a second trie with its own Viterbi and
over flat encodings summed with ``np.bincount`` by benchmarks/bench_split_counts.py
(faster on both workloads: the dropped pieces of a run, and a vocabulary by itself).
Counts are float64 sums, exact for integer weights below 2**53; with one worker the
weights of each piece add up text after text, as Python's loop over the splits would.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..model import _check_total, _finite, save_model, vocabulary_from_counts
from ..progress import Progress
from . import kernels
from .engines import map_in_threads
from .options import NUM_SPECIAL, TrainerOptions

Count = int | float
#: Texts per slice when the counting is spread over threads.
SLICE_TEXTS = 8192


def viterbi_piece_counts(
    pieces: list[bytes], logp: np.ndarray, texts: list[bytes], weights: np.ndarray, workers: int = 1
) -> np.ndarray:
    """sum over texts of weight x (times each piece is in the text's Viterbi split, the
    text taken as one chunk) under the unigram model pieces/logp: float64, by piece
    index. On `workers` threads, slices of the texts count apart and their sums add up
    in slice order (exact for integer weights; use one worker for float weights whose
    sums must not depend on the slicing)."""
    n = len(pieces)
    lattice = kernels.piece_lattice(pieces, logp)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if workers <= 1 or len(texts) <= SLICE_TEXTS:
        out = np.zeros(n, dtype=np.float64)
        if len(texts):
            kernels.viterbi_counts(lattice, texts, weights, out)
        return out
    step = max(SLICE_TEXTS, -(-len(texts) // (4 * workers)))

    def count_slice(lo: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.float64)
        kernels.viterbi_counts(lattice, texts[lo : lo + step], weights[lo : lo + step], out)
        return out

    total = np.zeros(n, dtype=np.float64)
    for part in map_in_threads(count_slice, range(0, len(texts), step), workers):
        total += part
    return total


def resegment(
    keep: Mapping[bytes, Count], texts: Sequence[bytes], counts: Sequence[Count] | np.ndarray, workers: int = 1
) -> dict[bytes, Count]:
    """0.6.3's split_pieces: re-segment each text with the unigram model of `keep` and
    give its pieces the text's count. Returns {piece of keep: count received} (in keep's
    order; pieces that receive nothing are left out). A piece's count is an int when
    every count it received was one, a float otherwise, as Python's sums would be."""
    keys = list(keep)
    values = list(keep.values())
    logp = np.log(np.asarray(values, dtype=np.float64)) - np.log(sum(values))
    weights, floats = _weights(counts)
    texts = texts if isinstance(texts, list) else list(texts)
    sums = viterbi_piece_counts(keys, logp, texts, weights, workers)
    hit = np.flatnonzero(sums)
    if floats is None:
        received: list = np.rint(sums[hit]).astype(np.int64).tolist()
    elif floats.all():
        received = sums[hit].tolist()
    else:  # ints and floats: a piece that received a float holds a float
        touched = viterbi_piece_counts(keys, logp, texts, floats.astype(np.float64), workers)[hit]
        received = [s if t else int(round(s)) for s, t in zip(sums[hit].tolist(), touched.tolist())]
    return dict(zip([keys[i] for i in hit.tolist()], received))


def _weights(counts) -> tuple[np.ndarray, np.ndarray | None]:
    """(float64 weights, which of them are floats: None when none is)."""
    array = counts if isinstance(counts, np.ndarray) else np.asarray(counts)
    if array.dtype.kind in "iub":
        return array.astype(np.float64), None
    if array.dtype.kind == "f" and isinstance(counts, np.ndarray):
        return array, np.ones(len(array), dtype=bool)
    floats = np.fromiter((isinstance(c, float) for c in counts), dtype=bool, count=len(counts))
    return np.asarray(counts, dtype=np.float64), (floats if floats.any() else None)


def drop_wasted(keep: Mapping[bytes, Count], workers: int = 1) -> dict[bytes, Count]:
    """0.6.3's "drop wasted pieces" to a fixed point: every piece hands its count to the
    pieces of its own Viterbi split under the current counts; pieces that receive nothing
    go; repeat until the size stops changing."""
    keep = dict(keep)
    while True:
        n = len(keep)
        keep = resegment(keep, list(keep), list(keep.values()), workers)
        if len(keep) == n:
            return keep


def prune_pieces(
    table, sizes: Sequence[int], options: TrainerOptions, workers: int, progress: Progress
) -> list[dict[bytes, Count]]:
    """0.6.3's pruning of the piece stage's PieceTable, one vocabulary per size (largest
    first): the pieces below min_count or above max_piece_length re-segmented into the
    others, the wasted pieces dropped, then each size cut in turn."""
    max_length = options.max_piece_length
    max_length = int(max_length) if max_length < 2**62 else 2**62
    keep, (dropped, dropped_counts) = table.partition(kernels.count_floor(options.min_count), max_length)
    total = len(keep) + len(dropped) + sum(1 for i in range(256) if table.get(bytes([i])) == 0)
    progress.log(f"{total} pieces: keep {len(keep)}, re-segment {len(dropped)}")
    for piece, count in resegment(keep, dropped, dropped_counts, workers).items():
        keep[piece] += count
    del dropped, dropped_counts
    keep = drop_wasted(keep, workers)
    progress.log(f"{len(keep)} pieces after dropping wasted ones")
    final = []
    for size in sizes:
        if len(keep) <= size - NUM_SPECIAL:
            final.append(keep)
            continue
        ordered = sorted(keep.items(), key=lambda t: (len(t[0]) > 1, -t[1], -len(t[0]), t[0]))
        keep = dict(ordered[: size - NUM_SPECIAL])
        rest = ordered[size - NUM_SPECIAL :]
        rest_counts = np.fromiter((v for _, v in rest), dtype=np.int64, count=len(rest))
        for piece, count in resegment(keep, [k for k, _ in rest], rest_counts, workers).items():
            keep[piece] += count
        keep = drop_wasted(keep, workers)
        progress.log(f"size {size}: {len(keep)} pieces")
        final.append(keep)
    progress.finish()
    return final


def convert_to_bytepiece(pieces: Mapping[str | bytes, Count], path: str | os.PathLike) -> None:
    """Write a bytepiece model from ``{piece: count}`` (pieces str or bytes), as 0.6.3's
    ``convert_to_bytepiece`` does: missing single bytes get count 1, wasted pieces (whose
    best segmentation is not themselves) give their count to their parts, and ids follow
    (length, bytes).

    >>> convert_to_bytepiece({"hello": 10, "world": 7}, "hw.model")
    >>> from bytepiece import Tokenizer
    >>> Tokenizer("hw.model").tokenize("hello world")
    [b'hello', b' ', b'world']
    """
    table: dict[bytes, Count] = {}
    for key, count in pieces.items():
        piece = key if isinstance(key, bytes) else str(key).encode("utf-8")
        if not piece:
            raise ValueError("a piece must not be empty")
        if (
            isinstance(count, bool)
            or not isinstance(count, (int, float, np.integer, np.floating))
            or not (count > 0 and _finite(count))
        ):
            raise ValueError(f"piece {piece!r} has count {count!r}; counts must be finite numbers > 0")
        table[piece] = table.get(piece, 0) + (int(count) if isinstance(count, (int, np.integer)) else float(count))
    for b in range(256):
        table.setdefault(bytes([b]), 1)
    _check_total(list(table.values()), "<pieces>")  # (counts that each fit a float may add up to more)
    # 0.6.3 runs its trainer's pruning with min_count 1: a longer piece counted below 1
    # is split into the others first.
    keep = {k: v for k, v in table.items() if len(k) == 1 or v >= 1}
    drop = [(k, v) for k, v in table.items() if not (len(k) == 1 or v >= 1)]
    if drop:
        for piece, count in resegment(keep, [k for k, _ in drop], [v for _, v in drop]).items():
            keep[piece] += count
    save_model(path, vocabulary_from_counts(drop_wasted(keep)))
