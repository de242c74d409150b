"""Weighted Viterbi piece counts: the candidate engines on the trainer's real workloads.

    python benchmarks/bench_split_counts.py                  # bundled corpora, 5 repeats
    python benchmarks/bench_split_counts.py --repeats 9 --workers 1,2

0.6.3's pruning (bytepiece/training/prune.py) re-segments texts with the unigram model
of a vocabulary and adds each text's count to the pieces of its Viterbi split. The
workloads, all from a 0.6.3-mode run (``em=False``) on the bundled corpora:

- ``dropped``: the pieces too rare or too long (after tagging the corpus) split with
  the model of the others: some hundred thousand long, rare texts;
- ``vocabulary``: the vocabulary split by itself, one pass of "drop wasted pieces";
- ``size cut``: the pieces beyond the target size split with the first ones.

The engines (each time includes building its trie):

- ``viterbi_counts``: ``Lattice.viterbi_counts``, float64 sums in C, nothing else made;
- ``flat_bincount``: ``batch.encode_flat`` (the splits as one id array, in slices of
  8192 texts) summed with ``np.bincount``;
- ``encode_lists``: ``batch.encode_lists`` (a list per text) summed in Python.

(A fourth engine, a second trie with its own Viterbi and int64 sums, was measured
against these and removed: benchmarks/README.md has its figures.)

With several workers each engine counts slices of the texts on threads (all four
release the GIL) and the slices' sums add up. Every engine's counts must be equal; the
table shows the median time of each and its spread (min-max) over the repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bytepiece._core import em  # noqa: E402
from bytepiece._core.batch import encode_flat, encode_lists  # noqa: E402
from bytepiece._core.lattice import Lattice  # noqa: E402
from bytepiece.progress import Progress  # noqa: E402
from bytepiece.training import Trainer, ngrams, pieces  # noqa: E402
from bytepiece.training.engines import LocalEngine, map_in_threads  # noqa: E402
from bytepiece.training.options import NUM_SPECIAL  # noqa: E402

SLICE = 8192


def _logp(counts) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    return np.log(c) - np.log(float(sum(counts)))


def _slices(texts, workers: int) -> list[int]:
    step = SLICE if workers <= 1 else max(SLICE, -(-len(texts) // (4 * workers)))
    return [step, *range(0, len(texts), step)]


def viterbi_counts(keys, logp, texts, weights, workers):
    lattice = Lattice(keys, logp, np.arange(len(keys)))
    w = np.asarray(weights, dtype=np.float64)
    if workers <= 1:
        out = np.zeros(len(keys))
        em.viterbi_counts(lattice, texts, w, out)
        return np.rint(out).astype(np.int64)
    step, *starts = _slices(texts, workers)

    def run(lo):
        out = np.zeros(len(keys))
        em.viterbi_counts(lattice, texts[lo : lo + step], w[lo : lo + step], out)
        return out

    return np.rint(sum(map_in_threads(run, starts, workers))).astype(np.int64)


def flat_bincount(keys, logp, texts, weights, workers):
    lattice = Lattice(keys, logp, np.arange(len(keys)))
    w = np.asarray(weights, dtype=np.float64)
    n = len(keys)

    def run(lo):
        ids, offsets, _ = encode_flat(lattice, texts[lo : lo + SLICE], chunked=False)
        return np.bincount(ids, weights=np.repeat(w[lo : lo + SLICE], np.diff(offsets)), minlength=n)

    return np.rint(sum(map_in_threads(run, range(0, len(texts), SLICE), workers))).astype(np.int64)


def encode_lists_engine(keys, logp, texts, weights, workers):
    lattice = Lattice(keys, logp, np.arange(len(keys)))
    step, *starts = _slices(texts, workers)

    def run(lo):
        out = [0] * len(keys)
        for count, ids in zip(weights[lo : lo + step], encode_lists(lattice, texts[lo : lo + step], chunked=False)):
            for i in ids:
                out[i] += count
        return np.array(out, dtype=np.int64)

    return sum(map_in_threads(run, starts, workers))


ENGINES = {"viterbi_counts": viterbi_counts, "flat_bincount": flat_bincount, "encode_lists": encode_lists_engine}


def workloads(files: list[str], size: int):
    """(name, keys, logp, texts, weights) of the three workloads of a 0.6.3-mode run."""
    options = Trainer(max_vocab_size=size, em=False, verbose=False).options
    engine = LocalEngine("thread")
    corpus = engine.corpus_of_files(files, "strict", options.block_chars)
    quiet = Progress(False, "")
    part = engine.reduce(ngrams.job(ngrams.settings_of(options)), corpus, 2, quiet)
    model = ngrams.finish(part.table, options, 2, True, quiet).model
    del part
    counted = engine.reduce(pieces.job(pieces.settings_of(options), model), corpus, 2, quiet)
    keep, (dropped, dropped_counts) = counted.pieces.partition(options.min_count, int(options.max_piece_length))
    keys = list(keep)
    yield "dropped", keys, _logp(list(keep.values())), dropped, dropped_counts
    received = viterbi_counts(keys, _logp(list(keep.values())), dropped, dropped_counts, 1)
    for i in np.flatnonzero(received).tolist():
        keep[keys[i]] += int(received[i])
    yield "vocabulary", keys, _logp(list(keep.values())), keys, np.fromiter(keep.values(), dtype=np.int64)
    ordered = sorted(keep.items(), key=lambda t: (len(t[0]) > 1, -t[1], -len(t[0]), t[0]))
    head, rest = ordered[: size - NUM_SPECIAL], ordered[size - NUM_SPECIAL :]
    rest_counts = np.array([v for _, v in rest], dtype=np.int64)
    yield "size cut", [k for k, _ in head], _logp([v for _, v in head]), [k for k, _ in rest], rest_counts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", nargs="+", default=None, help="training files (default: corpora/*.train.txt)")
    ap.add_argument("--vocab-size", type=int, default=16000, help="the size cut's target (default 16000)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of " + ",".join(ENGINES))
    args = ap.parse_args(argv)
    corpora = os.path.join(REPO, "corpora")
    files = args.train or sorted(os.path.join(corpora, f) for f in os.listdir(corpora) if f.endswith(".train.txt"))
    engines = [ENGINES[name] for name in args.engines.split(",")]
    rows = []
    for name, keys, logp, texts, weights in workloads(files, args.vocab_size):
        size = sum(map(len, texts)) / 1e6
        print(f"{name}: {len(texts)} texts ({size:.2f} MB) over {len(keys)} pieces", file=sys.stderr)
        for workers in [int(w) for w in args.workers.split(",")]:
            times: dict[str, list[float]] = {e.__name__: [] for e in engines}
            reference = None
            for _ in range(args.repeats):
                for engine in engines:  # (in turn: a drift of the machine touches them all)
                    start = time.perf_counter()
                    counts = engine(keys, logp, texts, weights, workers)
                    times[engine.__name__].append(time.perf_counter() - start)
                    if reference is None:
                        reference = counts
                    elif not np.array_equal(counts, reference):
                        raise SystemExit(f"{engine.__name__} counts differ on {name}")
            for engine, ts in times.items():
                rows.append((name, workers, engine, statistics.median(ts), min(ts), max(ts)))
    print("| workload | workers | engine | median ms | min-max ms |")
    print("|---|---|---|---|---|")
    for name, workers, engine, median, low, high in rows:
        print(f"| {name} | {workers} | {engine} | {median * 1e3:.1f} | {low * 1e3:.1f}-{high * 1e3:.1f} |")


if __name__ == "__main__":
    main()
