"""Stage 3 with EM: Unigram EM over the byte lattice of the EM sample, down to each
target size.

The candidates are the seed (the 256 bytes, or 0.6.3's pruned vocabulary with the
tagged seed), concatenations of adjacent tagged pieces, and the most frequent byte
n-grams, none longer than max_piece_length but the single bytes; they are kept in bytes
order throughout. Each round is

- an **E-step** (:func:`e_step`): expected piece counts by forward-backward, or Viterbi
  counts while the vocabulary still grows, summed over the sample's parts in a fixed
  order, so the floats do not depend on the number of threads;
- a **pruning** (:func:`prune`): the pieces whose removal costs the least likelihood go,
  keeping a fraction of them (never single bytes, nor whole characters counted often);
- in the first rounds, a **grow** pass (:func:`grow`): the most frequent concatenations
  of adjacent pieces of the Viterbi segmentation join, which is how pieces longer than
  the n-gram order appear; its counts, integers in fixed point, may stand in for the
  next E-step.

:class:`EmState` holds what one run reuses from step to step (the lattice of the
current piece list, the pieces' lengths, the size of the last pair table); it belongs
to one call of :func:`run`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from ..progress import Progress
from . import kernels, memory
from .engines import map_in_threads
from .options import NUM_SPECIAL, TrainerOptions
from .sample import Group, SampleParts, group_bytes, spread


class EmResult(NamedTuple):
    pieces: list[dict[bytes, int]]  # one vocabulary per size, largest first
    sample_bytes: int


class EmState:
    """What one EM run reuses between steps: the lattice of the current list of pieces
    (its trie built once per list, its log-probabilities replaced per step), the lengths
    of those pieces, and how many pairs the largest of the last grow round's tables held."""

    def __init__(self) -> None:
        self._lattice_of: tuple[list[bytes], kernels.Lattice] | None = None
        self._lengths_of: tuple[list[bytes], np.ndarray] | None = None
        self.pair_table_size = 0

    def lengths(self, pieces: list[bytes]) -> np.ndarray:
        """The byte lengths of a list of EM pieces (int64, read-only; once per list)."""
        if self._lengths_of is not None and self._lengths_of[0] is pieces:
            return self._lengths_of[1]
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        lengths.flags.writeable = False
        self._lengths_of = (pieces, lengths)
        return lengths

    def lattice(self, pieces: list[bytes], logp: np.ndarray):
        """A lattice of pieces with log-probabilities logp (the E-step and the pruning
        after it share one trie)."""
        if self._lattice_of is not None and self._lattice_of[0] is pieces:
            return kernels.with_logprobs(self._lattice_of[1], logp)
        lattice = kernels.piece_lattice(pieces, logp)
        self._lattice_of = (pieces, lattice)
        return lattice


def logprobs(lengths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Log-probabilities of pieces of these lengths from their counts (single bytes count
    at least 1, longer pieces at least 1e-6)."""
    c = counts.copy()
    single = lengths == 1
    c[single] = np.maximum(c[single], 1.0)
    c[~single] = np.maximum(c[~single], 1e-6)
    return np.log(c) - np.log(c.sum())


# (run and initial_vocabulary share their first parameters on purpose: the second
# is the first step of the first)
def run(
    options: TrainerOptions,
    seed: dict[bytes, int | float],
    pairs: dict[bytes, int],
    candidates: tuple[list[bytes], np.ndarray],
    sample: SampleParts,
    corpus_bytes: int,
    workers: int,
) -> EmResult:
    """The EM stage: from the seed and the candidates, one vocabulary per size."""
    em = options.em
    progress = Progress(options.verbose, "EM")
    progress.log(
        f"sample of {sample.nbytes / 1e6:.1f} MB ({100 * sample.nbytes / max(corpus_bytes, 1):.0f}% "
        f"of the corpus), seed of {len(seed)} pieces"
    )
    pieces, counts = initial_vocabulary(options, seed, pairs, candidates, progress)
    groups = sample.groups
    # pruning rounds may look at a fixed part of the sample only; the final iterations see all of it
    round_groups = spread(groups, em.round_fraction)
    grow_groups = spread(round_groups, em.grow_fraction)
    first_groups = spread(round_groups, em.first_fraction)
    # (counts are for all the groups: a fraction of them scales its counts up)
    parts = (round_groups, grow_groups, first_groups)
    whole = group_bytes(groups) if any(part is not groups for part in parts) else 1.0  # (once)
    scale, grow_scale, first_scale = (1.0 if part is groups else whole / max(group_bytes(part), 1) for part in parts)
    state = EmState()
    results = []
    it = grown = 0
    estimated = False  # the counts are the last grow pass's estimates: no E-step
    for size in options.max_vocab_size:
        target = size - NUM_SPECIAL
        while True:
            for _ in range(0 if estimated else em.iterations):
                it += 1
                # (hard counts while the vocabulary still grows; the counts of the
                # last E-step become the model's: those are always expected counts)
                hard = em.hard and grown < em.grow_rounds
                # (the first E-step, over every candidate, only decides the first pruning:
                # it may look at a part of the sample)
                part, part_scale = (first_groups, first_scale) if it == 1 else (round_groups, scale)
                counts, ll = e_step(state, pieces, counts, part, workers, hard)
                counts *= part_scale
                progress.log(
                    f"iteration {it}: {len(pieces)} pieces, log-likelihood {ll:.6g} "
                    f"({-ll / max(sample.nbytes, 1) / math.log(2):.4f} bits/byte)"
                )
            estimated = False
            if len(pieces) > target:
                keep_n = max(target, int(len(pieces) * em.shrink))
                pieces, counts = prune(state, pieces, counts, keep_n, em.keep_chars, workers)
            if grown < em.grow_rounds:
                grown += 1
                before = len(pieces)
                pieces, counts = grow(
                    state, options, pieces, counts, grow_groups, int(em.grow * target), workers, grow_scale
                )
                # (never after the last grow round: the counts of its E-step become the model's)
                estimated = grown <= em.estimated_rounds and grown < em.grow_rounds
                progress.log(
                    f"grow round {grown}: + {len(pieces) - before} concatenations of adjacent pieces"
                    + ("; their counts estimated by the grow pass, no E-step" if estimated else "")
                )
            elif len(pieces) <= target:
                # No E-step after the last pruning: the kept pieces' counts from the step
                # before it are their estimates (one more step measurably changes nothing).
                break
        for _ in range(em.final_iterations):
            it += 1
            counts, ll = e_step(state, pieces, counts, groups, workers)
            progress.log(f"iteration {it} (final): {len(pieces)} pieces, log-likelihood {ll:.6g}")
        final = np.maximum(np.rint(counts), 1).astype(np.int64)
        results.append({p: int(c) for p, c in zip(pieces, final)})
    progress.finish()
    return EmResult(results, sample.nbytes)


def initial_vocabulary(
    options: TrainerOptions,
    seed: dict[bytes, int | float],
    pairs: dict[bytes, int],
    candidates: tuple[list[bytes], np.ndarray],
    progress: Progress,
) -> tuple[list[bytes], np.ndarray]:
    """The EM's first pieces, in bytes order, and their float64 counts: the seed, the
    most frequent pairs of adjacent tagged pieces (em_pairs), and the n-gram candidates
    (the seed's counts win)."""
    vocab = dict(seed)
    if pairs and options.em.pairs > 0:
        limit = int(options.em.pairs * len(seed))
        chosen = [
            (c, p)
            for p, c in pairs.items()
            if c >= options.min_count and p not in vocab and len(p) <= options.max_piece_length
        ]
        chosen.sort(key=lambda t: (-t[0], t[1]))
        for c, p in chosen[:limit]:
            vocab[p] = c
        progress.log(f"+ {min(limit, len(chosen))} candidate pairs of adjacent pieces")
    keys, key_counts = candidates
    keys, key_counts = short_enough(keys, key_counts, options.max_piece_length, progress)
    if len(vocab) == 256 and all(len(p) == 1 for p in vocab) and not options.tagging:
        # (the n-gram seed: the single bytes, and candidates of 2 bytes or more that the
        # n-gram stage gave in bytes order; each single byte goes before them)
        pieces, counts = with_single_bytes(keys, key_counts, vocab)
        if keys:
            progress.log(f"+ {len(keys)} candidate frequent n-grams")
        return pieces, counts
    fresh = [i for i, k in enumerate(keys) if k not in vocab]
    if keys:
        progress.log(f"+ {len(fresh)} candidate frequent n-grams")
    everything = list(vocab) + [keys[i] for i in fresh]
    counts = np.concatenate(
        [
            np.fromiter(vocab.values(), dtype=np.float64, count=len(vocab)),
            key_counts[np.asarray(fresh, dtype=np.int64)].astype(np.float64),
        ]
    )
    del fresh
    order = kernels.bytes_order(everything)
    return [everything[i] for i in order.tolist()], counts[order]


def short_enough(keys: list[bytes], counts: np.ndarray, max_length: float, progress: Progress):
    """The n-gram candidates no longer than max_length, in their order. The n-grams go up
    to `order` bytes, which max_length may be below: nothing else would stop them (the
    seed is pruned to the limit, pairs and grown pieces are checked against it), and the
    EM keeps any candidate that pays. The same lists when none is too long (the models
    of a limit that never binds do not change)."""
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    fits = lengths <= max_length
    if fits.all():
        return keys, counts
    # (picked by count x length before this cut: fewer than em_ngrams x the size are left)
    progress.log(f"- {len(keys) - int(fits.sum())} candidate n-grams longer than max_piece_length")
    kept = np.flatnonzero(fits)
    return [keys[i] for i in kept.tolist()], np.asarray(counts)[kept]


def with_single_bytes(keys: list[bytes], counts: np.ndarray, singles: dict[bytes, int | float]):
    """(pieces, float64 counts): the 256 single bytes (with their counts in `singles`) and
    `keys` (in bytes order, each of two bytes or more, with `counts`), merged in bytes
    order: bytes([c]) just before the keys that start with c."""
    import bisect

    starts = [bisect.bisect_left(keys, bytes([c])) for c in range(256)] + [len(keys)]
    pieces: list[bytes] = []
    for c in range(256):
        pieces.append(bytes([c]))
        pieces.extend(keys[starts[c] : starts[c + 1]])
    merged = np.insert(
        np.asarray(counts, dtype=np.float64), starts[:256], [float(singles[bytes([c])]) for c in range(256)]
    )
    return pieces, merged


def e_step(state: EmState, pieces: list[bytes], counts: np.ndarray, groups: list[Group], workers: int, hard=False):
    """One EM iteration: expected counts (forward-backward; or, with hard=True, the
    counts of the Viterbi segmentation) and the log-likelihood (or Viterbi score), each
    group's weighted by its weights."""
    logp = logprobs(state.lengths(pieces), counts)
    lattice = state.lattice(pieces, logp)
    n = len(pieces)

    def run_group(group: Group):
        acc = np.zeros(n, dtype=np.float64)
        if hard:
            kernels.viterbi_counts(lattice, group.texts, group.weights, acc)
            ll = float((acc * logp).sum())  # (no BLAS call: see make_parts)
        else:
            ll = kernels.expected_counts(lattice, group.texts, acc, group.weights)
        return acc, ll

    expected = np.zeros(n, dtype=np.float64)
    ll = 0.0
    # Summed in group order (the same floats whatever `workers` is) as the results
    # arrive: there can be many groups, and each result is as long as the vocabulary.
    if workers > 1 and len(groups) > 1:
        with ThreadPoolExecutor(workers) as ex:
            for acc, part_ll in ex.map(run_group, groups):
                expected += acc
                ll += part_ll
    else:
        for group in groups:
            acc, part_ll = run_group(group)
            expected += acc
            ll += part_ll
    memory.return_free_memory()
    return expected, ll


#: The length of a UTF-8 character from its first byte (0: not a first byte).
UTF8_LENGTH = np.array([1] * 128 + [0] * 64 + [2] * 32 + [3] * 16 + [4] * 8 + [0] * 8, dtype=np.int64)


def first_bytes(lengths: np.ndarray) -> np.ndarray:
    """The first byte of each of the EM's pieces, from their lengths alone: the pieces are
    in bytes order and include the 256 single bytes, so the pieces that start with byte c
    are bytes([c]) and those after it up to bytes([c + 1])."""
    return np.cumsum(lengths == 1) - 1


def is_one_char(piece: bytes) -> bool:
    try:
        return len(piece.decode("utf-8")) == 1
    except UnicodeDecodeError:
        return False


def prune(state: EmState, pieces: list[bytes], counts: np.ndarray, keep_n: int, keep_chars: float, workers: int = 1):
    """Keep the single bytes and the keep_n - 256 multi-byte pieces whose removal would
    cost the most likelihood; a whole character counted at least keep_chars times
    (keep_chars > 0) always stays."""
    lengths = state.lengths(pieces)
    logp = logprobs(lengths, counts)
    lattice = state.lattice(pieces, logp)
    step = -(-len(pieces) // max(1, workers))
    split = np.concatenate(
        list(
            map_in_threads(
                lambda lo: kernels.split_scores(lattice, pieces[lo : lo + step]), range(0, len(pieces), step), workers
            )
        )
    )
    loss = counts * (logp - split)
    loss[lengths == 1] = math.inf
    if keep_chars:
        # (the lead byte's character length must be the piece's: tested on arrays first)
        maybe = (lengths > 1) & (lengths <= 4) & (counts >= keep_chars)
        maybe &= UTF8_LENGTH[first_bytes(lengths)] == lengths
        for i in np.flatnonzero(maybe).tolist():
            if is_one_char(pieces[i]):
                loss[i] = math.inf  # whole characters stay, like SentencePiece's required characters
    kept = most_costly(loss, counts, lengths, keep_n)
    return [pieces[i] for i in kept.tolist()], counts[kept]


def most_costly(loss: np.ndarray, counts: np.ndarray, lengths: np.ndarray, keep_n: int) -> np.ndarray:
    """The indices (ascending) of the keep_n pieces the pruning keeps: the single bytes,
    then the most costly to lose, ties by count, then by index (bytes order: the pieces
    are sorted) -- the first keep_n of np.lexsort((index, -counts, -loss, lengths > 1)).
    Only the pieces tied at the cut are sorted."""
    single = lengths == 1
    rest = keep_n - int(single.sum())
    multi = np.flatnonzero(~single)
    if rest <= 0 or rest >= len(multi) or np.isnan(loss[multi]).any():
        order = np.lexsort((np.arange(len(loss)), -counts, -loss, ~single))
        return np.sort(order[:keep_n])
    multi_loss = loss[multi]
    cut = np.partition(multi_loss, len(multi) - rest)[len(multi) - rest]  # the rest-th highest loss
    above = multi[multi_loss > cut]
    tied = multi[multi_loss == cut]
    tied = tied[np.lexsort((tied, -counts[tied]))][: rest - len(above)]
    return np.sort(np.concatenate([np.flatnonzero(single), above, tied]))


#: Pair counts for growing add up chunk weights in fixed point (integers: the same sums
#: in any order, so on any number of threads): weight x 2**PAIR_WEIGHT_BITS, rounded.
PAIR_WEIGHT_BITS = 16


def grow(
    state: EmState,
    options: TrainerOptions,
    pieces: list[bytes],
    counts: np.ndarray,
    groups: list[Group],
    k: int,
    workers: int,
    scale: float = 1.0,
):
    """Add the k most frequent (by group weight) concatenations of two adjacent pieces in
    the Viterbi segmentation of the groups (longer candidates; EM keeps the useful ones),
    each with its count times scale (the groups' share of the sample, inverted). Returns
    (pieces, counts) in bytes order; the counts of the old pieces are their Viterbi
    counts less what the new pieces take from them."""
    n = len(pieces)
    lengths = state.lengths(pieces)
    lattice = state.lattice(pieces, logprobs(lengths, counts))
    # Pair tables per thread, each taking every `threads`-th group; integer weights make
    # the summed counts the same whatever the number of threads. Each thread keeps the
    # two halves of the pairs (pair_half) apart: the halves are summed and read on two
    # threads at once.
    threads = max(1, min(workers, len(groups)))
    # (each sized for as many pairs as the largest table of the last round held: no
    # doubling on the way)
    expected = state.pair_table_size
    tables = [[kernels.pair_table(n, expected), kernels.pair_table(n, expected)] for _ in range(threads)]
    fixed = [np.rint(group.weights * (1 << PAIR_WEIGHT_BITS)).astype(np.int64) for group in groups]
    unis = [np.zeros(n, dtype=np.int64) for _ in range(threads)]

    def count_pairs(t: int) -> None:
        for g in range(t, len(groups), threads):
            kernels.count_viterbi_pairs(lattice, groups[g].texts, fixed[g], tables[t][0], unis[t], tables[t][1])

    # (candidates seen fewer times are cut anyway; kernels.pair_sums takes any floor, one
    # past its int64 sums included)
    floor = max(options.min_count, 2)

    def summed(half: int):
        # (the threads' tables are summed pair by pair, not merged into one: a merge grows
        # the largest table while the others still exist; unsorted: most_frequent_first
        # orders them completely)
        parts = [per_thread[half] for per_thread in tables]
        for per_thread in tables:
            per_thread[half] = None
        keys, freq, _ = kernels.pair_sums(parts, floor << PAIR_WEIGHT_BITS)
        return keys, freq

    if threads > 1:
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(count_pairs, range(threads)))
    else:
        count_pairs(0)
    state.pair_table_size = max(len(table) for per_thread in tables for table in per_thread)
    halves = list(map_in_threads(summed, (0, 1), min(workers, 2)))
    keys = np.concatenate([half[0] for half in halves])
    fixed_freq = np.concatenate([half[1] for half in halves])
    del halves
    tables.clear()  # (the tables are gone already; the weights go too)
    fixed.clear()
    memory.return_free_memory()
    # Most frequent first; ties by the (length, bytes) rank of the left piece, then of the
    # right one (shorter parts first: measurably better than bytes order on code).
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), lengths))] = np.arange(n)  # (pieces are in bytes order)
    uni = unis.pop()
    while unis:
        uni += unis.pop()
    # The first k concatenations, in that order, that are not too long, do not start
    # inside a character (as 0.6.3's ensure_unicode) and are new: the first two tests on
    # whole blocks of pairs, the last per pair.
    bad_start = None
    if options.ensure_unicode:
        first_byte = first_bytes(lengths)
        bad_start = (first_byte >= 0x80) & (first_byte < 0xC0)
    known = set(pieces)
    new: list[bytes] = []
    chosen_a, chosen_b, chosen_f = [], [], []
    for block_keys, block_freq in most_frequent_first(keys, fixed_freq, rank, n, 4 * k):
        a, b = np.divmod(block_keys, n)
        ok = lengths[a] + lengths[b] <= options.max_piece_length
        if bad_start is not None:
            ok &= ~bad_start[a]
        idx = np.flatnonzero(ok)
        block_a, block_b = a[idx], b[idx]
        picked = []
        for i, ai, bi in zip(range(len(idx)), block_a.tolist(), block_b.tolist()):
            piece = pieces[ai] + pieces[bi]
            if piece not in known:
                known.add(piece)
                new.append(piece)
                picked.append(i)
                if len(new) >= k:
                    break
        chosen_a.append(block_a[picked])
        chosen_b.append(block_b[picked])
        chosen_f.append(block_freq[idx[picked]])
        if len(new) >= k:
            break
    new_freq = np.concatenate(chosen_f) if chosen_f else np.zeros(0, dtype=np.int64)
    # The counts of the grown vocabulary, estimated from this pass: each old piece's count
    # in the Viterbi segmentation, less what the new pieces take from it (an estimate for
    # the pruning when no E-step follows; the start of the next E-step otherwise).
    taken = np.zeros(n, dtype=np.int64)
    for halves_chosen in (chosen_a, chosen_b):
        if halves_chosen:
            np.add.at(taken, np.concatenate(halves_chosen), new_freq)
    counts = np.maximum(uni - taken, 0) * (scale / float(1 << PAIR_WEIGHT_BITS))
    if not new:
        return pieces, counts
    grown = pieces + new
    order = kernels.bytes_order(grown)
    grown_counts = np.concatenate([counts, new_freq * scale / float(1 << PAIR_WEIGHT_BITS)])
    return [grown[i] for i in order.tolist()], grown_counts[order]


def most_frequent_first(
    keys: np.ndarray, freq: np.ndarray, rank: np.ndarray, n: int, first: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """grow's pairs in blocks (pair keys, freqs), most frequent first, ties by the rank of
    the left piece, then of the right one. The caller usually stops early, so only the
    `first` most frequent (all pairs tied with the last of them included) are sorted up
    front, the first block; the rest, sorted only if the caller reads past them, follow."""

    def ranked(k):  # (the two ranks as one key: a lexsort of two keys, not three)
        return rank[k // n] * n + rank[k % n]

    if first < len(keys):
        bar = np.partition(freq, len(freq) - first)[len(freq) - first]
        top = np.flatnonzero(freq >= bar)
        order = top[np.lexsort((ranked(keys[top]), -freq[top]))]
        yield keys[order], freq[order]
        rest = np.flatnonzero(freq < bar)
        keys, freq = keys[rest], freq[rest]
    order = np.lexsort((ranked(keys), -freq))
    yield keys[order], freq[order]
