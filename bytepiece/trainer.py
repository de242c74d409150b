"""Training a vocabulary: BytePiece 0.6.3's n-gram algorithm, then Unigram EM.

>>> trainer = Trainer(order=6, max_vocab_size=8000)          # doctest: +SKIP
>>> trainer.train(texts, workers=2)                          # doctest: +SKIP
>>> trainer.save("my.model")                                 # doctest: +SKIP

Stages (DESIGN.md, "Training"):

1. count byte n-grams (map: a block of documents -> NgramTable; reduce: merge);
2. tag every chunk with the n-gram Viterbi and count the pieces (map: block ->
   PieceTable; reduce: merge); a hash-chosen sample of chunks is kept for EM;
3. prune as 0.6.3 does (re-segmenting dropped pieces, dropping wasted ones,
   cutting to size) -- with ``em=False`` that is the result, 0.6.3's algorithm;
4. with EM (the default), the EM's candidates are the most frequent byte n-grams
   (whole characters) and the 256 bytes; stages 2 and 3 then only draw the EM's
   sample (no tagging, no pruning: ``em_seed="ngrams"``, the default), or, with
   ``em_seed="tagged"``, the vocabulary of stage 3 cut to a seed size
   (``em_seed_factor`` x the target) joins the candidates; then Unigram EM over the
   byte lattice of a sample
   of the corpus alternates E-steps (expected piece counts by
   forward-backward), pruning (drop the pieces whose removal costs the least
   likelihood) and, in the first rounds, growing (add frequent concatenations
   of adjacent pieces of the current Viterbi segmentation, which is how pieces
   longer than the n-gram order appear), down to the target size.

The map steps run over ``workers`` threads (or processes); all reductions are sums of
integers, or sums of floats in a fixed block order, so the model file is the
same whatever ``workers`` is.
"""

from __future__ import annotations

import bisect
import collections
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from ._core import chunk_keys as _chunk_keys_core
from ._core import em as _em
from ._core import ngram_model as _ngram_model
from ._core import ngram_table as _ngram_table
from ._core import piece_table as _piece_table
from ._core import splitter as _splitter
from ._core.batch import encode_flat
from ._core.lattice import Lattice
from ._core.pair_counts import PairCounts
from .corpus import (
    CorpusError,
    EmptyCorpusError,
    FileSource,
    TextSource,
    chunk_block,
    iter_blocks,
)
from .keys import blake2b
from .model import save_model

__all__ = ["Trainer", "TrainerError", "EmptyCorpusError", "convert_to_bytepiece"]

NUM_SPECIAL = 3
MIN_VOCAB_SIZE = 256 + NUM_SPECIAL
#: EM sums expected counts over this many fixed parts of the sample (a fixed
#: summation order, whatever the number of threads).
EM_PARTS = 16
#: The script floor raises a script's weight to at most this many times its share.
SCRIPT_MAX_BOOST = 3.0
MAX_PIECE_LENGTH = 36  # 0.6.3's default
EM_MAX_PIECE_LENGTH = 24  # the default with EM
#: Pair counts for growing add up chunk weights in fixed point (integers: the same sums
#: in any order, so on any number of threads): weight x 2**PAIR_WEIGHT_BITS, rounded.
PAIR_WEIGHT_BITS = 16


class TrainerError(ValueError):
    """Bad trainer options."""


# ---------------------------------------------------------------------------
# Progress on stderr


class _Progress:
    def __init__(self, verbose: bool, stage: str, total: int | None = None, every: float = 2.0):
        self.verbose = verbose
        self.stage = stage
        self.total = total
        self.every = every
        self.start = time.perf_counter()
        self.last = self.start
        self.done_bytes = 0

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"[bytepiece] {self.stage}: {message}", file=sys.stderr, flush=True)

    def advance(self, nbytes: int, extra: Callable[[], str] = lambda: "") -> None:
        self.done_bytes += nbytes
        now = time.perf_counter()
        if not self.verbose or now - self.last < self.every:
            return
        self.last = now
        self.log(self._status(now) + extra())

    def _status(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done_bytes / elapsed
        text = f"{self.done_bytes / 1e6:.1f} MB, {rate / 1e6:.1f} MB/s"
        if self.total:
            left = max(self.total - self.done_bytes, 0)
            text += f", {100 * min(self.done_bytes / self.total, 1):.0f}%, ETA {left / max(rate, 1):.0f}s"
        return text

    def finish(self, extra: str = "") -> None:
        now = time.perf_counter()
        status = f" ({self._status(now)})" if self.done_bytes else ""
        self.log(f"done in {now - self.start:.1f}s{status}{extra}")


# ---------------------------------------------------------------------------
# Memory


def _load_libc():
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # not glibc: nothing to do
        return None


_LIBC = _load_libc() if sys.platform.startswith("linux") else None
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD = 1 << 20


def _return_free_memory() -> None:
    """Hand memory freed by a stage back to the operating system. glibc keeps freed
    blocks of its heaps (one per thread) for reuse, so without this the peak of one
    stage stays resident through the next."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _map_big_blocks() -> None:
    """Give every allocation of MMAP_THRESHOLD bytes or more its own mapping, returned
    to the operating system when freed. glibc starts with such a threshold (128 KB) but
    raises it to the size of each mapped block freed, up to 32 MB; after the first big
    table is freed, the tables and arrays of a stage then land in the heaps and stay
    resident after it (bundled corpora, beside the mapped tables of _bigmem.pxd: peak
    PSS 97 -> 87 MB). Fixing the
    threshold is process-wide (glibc has no way back to the sliding one); a threshold
    set with MALLOC_MMAP_THRESHOLD_ in the environment is left alone."""
    if _LIBC is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


# ---------------------------------------------------------------------------
# Map functions (module level: they run in worker processes). The per-run
# settings reach them through _STATE, set before the pool forks.

_STATE: dict = {}


def _map_count_ngrams(block):
    chunks = chunk_block(block, _STATE["isolate_digits"])
    table = _ngram_table.count_ngrams_block(chunks, _STATE["order"], _STATE["budget"])
    # (the EM sample too, when no piece stage will read the corpus again)
    sample = _bottom_sample(chunks, _STATE["sample_bytes"]) if _STATE.get("sample_bytes") else None
    return table, sum(map(len, chunks)), sample


def _map_count_pieces(block):
    chunks = chunk_block(block, _STATE["isolate_digits"])
    if _STATE["model"] is None:  # (the n-gram EM seed: no tagging, only the sample)
        pieces = pairs = None
    else:
        pieces, pairs = _ngram_model.count_pieces_block(
            chunks, _STATE["model"], _STATE["ensure_unicode"], _STATE["pair_length"] or 1
        )
    sample = _bottom_sample(chunks, _STATE["sample_bytes"]) if _STATE["sample_bytes"] else None
    return pieces, (pairs if _STATE["pair_length"] else None), sample, sum(map(len, chunks))


def _chunk_key(chunk: bytes) -> int:
    return int.from_bytes(blake2b(chunk, digest_size=8).digest(), "little")


def _bottom_sample(chunks: list[bytes], budget: int):
    """The chunks with the smallest hashes, up to budget bytes: a uniform sample that
    does not depend on how the corpus was cut into blocks. Returns (hashes, chunks,
    lengths)."""
    keys = _chunk_keys_core.chunk_keys(chunks)  # _chunk_key of each, in C without the GIL
    # (the lengths travel with the sample: read here, while the new chunks are in the
    # cache, a pass over them costs a fifth of what it costs once they are not)
    return _trim_sample(keys, chunks, budget, np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks)))


def _trim_order(keys: np.ndarray, lengths: np.ndarray, budget: int) -> np.ndarray:
    """The indices of the sample kept, in hash order (stable): the prefix that fits in
    budget bytes."""
    order = np.argsort(keys, kind="stable")
    return order[: int(np.searchsorted(np.cumsum(lengths[order]), budget, side="right"))]


def _trim_sample(keys: np.ndarray, chunks: list[bytes], budget: int, lengths: np.ndarray):
    """Sort by hash (stable) and keep the prefix that fits in budget bytes; returns
    (hashes, chunks, lengths) of what is kept."""
    order = _trim_order(keys, lengths, budget)
    return keys[order], [chunks[i] for i in order.tolist()], lengths[order]


class _Sample:
    """The EM sample drawn block by block: the chunks with the smallest hashes, up to
    `budget` bytes in all (each block sends its own bottom sample; the union is cut
    back to the budget whenever it holds twice that)."""

    def __init__(self, budget: int):
        self.budget = budget
        self.keys = [np.zeros(0, dtype=np.uint64)]
        self.lengths = [np.zeros(0, dtype=np.int64)]
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, block_sample) -> None:
        if not block_sample:
            return
        keys, chunks, lengths = block_sample
        self.keys.append(keys)
        self.lengths.append(lengths)
        self.chunks.extend(chunks)
        self.size += int(lengths.sum())
        if self.size > 2 * self.budget:
            keys, self.chunks, lengths = self._trimmed()
            self.keys, self.lengths = [keys], [lengths]
            self.size = int(lengths.sum())

    def _trimmed(self):
        return _trim_sample(np.concatenate(self.keys), self.chunks, self.budget, np.concatenate(self.lengths))

    def result(self) -> list[bytes]:
        """The sample, in hash order; the collector is spent."""
        chunks, order, _, _ = self.keyed_result()
        return [chunks[i] for i in order.tolist()]

    def keyed_result(self) -> tuple[list[bytes], np.ndarray, np.ndarray, np.ndarray]:
        """(chunks, order, hashes, lengths): the sample is chunks[order[0]], chunks[order[1]],
        ... (hash order), and hashes and lengths are theirs, in that order. The sorted list
        itself is not made (a pass over the chunk objects, most of them out of the cache
        by now). The collector is spent."""
        keys, lengths = np.concatenate(self.keys), np.concatenate(self.lengths)
        chunks, order = self.chunks, _trim_order(keys, lengths, self.budget)
        self.keys, self.lengths, self.chunks = [], [], []
        return chunks, order, keys[order], lengths[order]


def _map_blocks(func, blocks: Iterable, workers: int, engine: str = "process") -> Iterator:
    """func over blocks, results in block order; at most workers + 1 blocks in flight.

    engine "process": a fork pool (the map functions and their tables pickle);
    engine "thread": threads of this process (the Cython loops release the GIL)."""
    if workers <= 1:
        for block in blocks:
            yield func(block)
        return
    if engine == "thread":
        executor = ThreadPoolExecutor(workers)
        submit = lambda block: executor.submit(func, block)  # noqa: E731
        result = lambda fut: fut.result()  # noqa: E731
    else:
        import multiprocessing  # (only this engine needs it: a lighter import otherwise)

        executor = multiprocessing.get_context("fork").Pool(workers)
        submit = lambda block: executor.apply_async(func, (block,))  # noqa: E731
        result = lambda fut: fut.get()  # noqa: E731
    try:
        pending: collections.deque = collections.deque()
        for block in blocks:
            pending.append(submit(block))
            while len(pending) > workers:
                yield result(pending.popleft())
        while pending:
            yield result(pending.popleft())
    finally:
        if engine == "thread":
            executor.shutdown(wait=True, cancel_futures=True)
        else:
            executor.terminate()
            executor.join()


# ---------------------------------------------------------------------------


class Trainer:
    """BytePiece's unsupervised Unigram trainer, with a Unigram EM refinement.

    The first six arguments are BytePiece 0.6.3's. ``em=False`` reproduces
    0.6.3's algorithm. ``max_piece_length`` (bytes) defaults to 0.6.3's 36 without
    EM and to 24 with it (longer pieces measurably fit the training text rather
    than held-out text: see benchmarks/README.md). The other ``em_*`` options tune
    the EM stage:

    - ``em_seed``: "ngrams" (the default): the EM starts from the n-gram candidates
      and the 256 bytes, and the n-gram model, 0.6.3's tagging and its pruning are
      skipped; "tagged": 0.6.3's pruned vocabulary joins them (the previous default:
      slower, and it compresses held-out text less well; see benchmarks/README.md);
    - ``em_seed_factor`` (tagged seed): the 0.6.3 stage keeps this many times the target size;
    - ``em_pairs`` (tagged seed): also propose concatenations of adjacent tagged pieces
      (at most this many times the seed size; 0 turns it off);
    - ``em_ngrams``: also propose the most frequent byte n-grams (whole UTF-8
      characters, ranked by count x length; at most this many times the target size);
    - ``em_shrink``: each pruning round keeps this fraction of the pieces;
    - ``em_grow`` / ``em_grow_rounds``: in each of the first rounds, add this
      fraction of the target size as new candidates: the most frequent
      concatenations of adjacent pieces in the current Viterbi segmentation
      (this is how pieces longer than the n-gram order appear);
    - ``em_estimated_rounds``: after each of the first this many grow rounds (never
      the last), the pruning uses the counts the grow pass estimates (each piece's
      count in its Viterbi segmentation, less what the new concatenations take from
      their parts) instead of an E-step's: a pass less per round, at no measurable
      cost in compression (see benchmarks/README.md); 0 = an E-step after every round;
    - ``em_keep_chars``: a whole multi-byte character (up to 4 bytes) whose
      expected count is at least this is never pruned, like SentencePiece's
      required characters (large alphabets that are a minority of a mixed
      corpus keep their characters; 0 = off);
    - ``em_script_floor``: script-balanced EM for mixed corpora. Each chunk of the
      sample belongs to the script most of its characters are in (ASCII, Han and kana,
      Hangul, Cyrillic, Arabic, ...); a script with less than this share of the
      sample's bytes weighs as if it had this share (but at most 3 times its own
      share: a trace of a script stays a trace), and the others shrink in
      proportion, so a minority script (Chinese among English and code) gets the
      pieces it needs, while scripts above the floor keep the plain likelihood.
      0 = off; a corpus in one script is unaffected;
    - ``em_balance``: tempered script shares before the floor: a script with share p
      weighs as p**em_balance (renormalised), as multilingual models sample their
      languages (XLM-R, mT5). 1 = off (the default);
    - ``em_iterations`` / ``em_final_iterations``: EM iterations per round / at the end;
    - ``em_hard`` (default True): Viterbi (hard) counts instead of expected counts in
      the rounds that still grow the vocabulary (a Viterbi pass costs less than a
      forward-backward one); the E-steps after the last grow round, whose counts
      become the model's, are always forward-backward, as are the final iterations;
    - ``em_round_fraction``: the pruning rounds look at this fixed fraction of
      the sample only (faster; the final iterations see all of it);
    - ``em_grow_fraction``: the grow rounds count adjacent pieces in this fraction of
      the rounds' sample (evenly spread parts of it, so every script keeps its share);
    - ``em_first_fraction`` (default 0.5): the first E-step, over every candidate, looks
      at this fraction of the rounds' sample (evenly spread parts): its counts only decide
      the first, coarsest pruning;
    - ``em_sample_bytes``: EM runs on a sample of the corpus this big (chunks
      chosen by a hash of their bytes, so the sample is uniform and deterministic).

    ``ngram_memory`` caps the n-gram table (bytes; 0 = no cap); rare n-grams are
    dropped when it is hit, and a message says so. ``block_chars`` sizes the
    blocks the work is split into. ``engine`` runs the map steps on
    ``workers`` threads ("thread", the default: one process, the counting loops run
    without the GIL, tables merge in place and nothing is pickled or duplicated) or
    processes ("process": a fork pool; only cutting the text into chunks holds
    the GIL, so processes pay off only with many workers), or on a Dask cluster
    ("dask": ``train``/``train_files`` then take ``client=``, ``address=``,
    ``scheduler_file=`` or ``local_workers=``; the counting runs on the cluster's
    workers and the model is byte-identical to a local run; docs/distributed.md).
    ``verbose=False`` silences progress.

    >>> t = Trainer(max_vocab_size=300, min_count=1, verbose=False)
    >>> t.train(["hello world\\n"] * 20)
    >>> len(t.pieces[0]) <= 297
    True
    """

    def __init__(
        self,
        order: int = 6,
        max_vocab_size: int | Sequence[int] = 10000,
        max_piece_length: int | None = None,
        min_count: int = 2,
        isolate_digits: bool = False,
        ensure_unicode: bool = True,
        *,
        em: bool = True,
        em_seed: str = "ngrams",
        em_seed_factor: float = 4.0,
        em_pairs: float = 0.0,
        em_ngrams: float = 4.0,
        em_shrink: float = 0.3,
        em_grow: float = 0.5,
        em_grow_rounds: int = 4,
        em_estimated_rounds: int = 2,
        em_keep_chars: float = 5,
        em_script_floor: float = 0.25,
        em_balance: float = 1.0,
        em_hard: bool = True,
        em_round_fraction: float = 1.0,
        em_grow_fraction: float = 1.0,
        em_first_fraction: float = 0.5,
        em_iterations: int = 1,
        em_final_iterations: int = 0,
        em_sample_bytes: int = 64_000_000,
        ngram_memory: int = 4_000_000_000,
        block_chars: int = 1_000_000,
        engine: str = "thread",
        verbose: bool = True,
    ):
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise TrainerError(f"order must be an integer >= 1, not {order!r}")
        if order > _ngram_table.MAX_ORDER:
            raise TrainerError(
                f"order must be at most {_ngram_table.MAX_ORDER} (n-grams are packed in 64 bits), not {order}"
            )
        sizes = list(max_vocab_size) if isinstance(max_vocab_size, (list, tuple)) else [max_vocab_size]
        if not sizes:
            raise TrainerError("max_vocab_size is an empty list")
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_VOCAB_SIZE:
                raise TrainerError(
                    f"max_vocab_size must be an integer >= {MIN_VOCAB_SIZE} (256 bytes + 3 special ids), not {size!r}"
                )
        if not (isinstance(min_count, (int, np.integer)) and min_count >= 1):
            raise TrainerError(f"min_count must be an integer >= 1, not {min_count!r}")
        if max_piece_length is None:
            max_piece_length = EM_MAX_PIECE_LENGTH if em else MAX_PIECE_LENGTH
        if not (max_piece_length >= 1):
            raise TrainerError(f"max_piece_length must be >= 1, not {max_piece_length!r}")
        if not 0 < em_shrink < 1:
            raise TrainerError(f"em_shrink must be in (0, 1), not {em_shrink!r}")
        if em_seed not in ("ngrams", "tagged"):
            raise TrainerError(f"em_seed must be 'ngrams' or 'tagged', not {em_seed!r}")
        if em_seed_factor < 1:
            raise TrainerError(f"em_seed_factor must be >= 1, not {em_seed_factor!r}")
        if em_pairs < 0 or em_ngrams < 0:
            raise TrainerError(f"em_pairs and em_ngrams must be >= 0, not {em_pairs!r}, {em_ngrams!r}")
        if (
            isinstance(em_estimated_rounds, bool)
            or not isinstance(em_estimated_rounds, (int, np.integer))
            or em_estimated_rounds < 0
        ):
            raise TrainerError(f"em_estimated_rounds must be an integer >= 0, not {em_estimated_rounds!r}")
        if em_iterations < 1 or em_final_iterations < 0:
            raise TrainerError("em_iterations must be >= 1 and em_final_iterations >= 0")
        if not 0 < em_balance <= 1:
            raise TrainerError(f"em_balance must be in (0, 1], not {em_balance!r}")
        if not 0 <= em_script_floor <= 0.5:
            raise TrainerError(f"em_script_floor must be in [0, 0.5], not {em_script_floor!r}")
        if not (0 < em_round_fraction <= 1 and 0 < em_grow_fraction <= 1 and 0 < em_first_fraction <= 1):
            raise TrainerError(
                f"em_round_fraction, em_grow_fraction and em_first_fraction must be in (0, 1], "
                f"not {em_round_fraction!r}, {em_grow_fraction!r}, {em_first_fraction!r}"
            )
        if em_sample_bytes < 1:
            raise TrainerError(f"em_sample_bytes must be positive, not {em_sample_bytes!r}")
        if engine not in ("process", "thread", "dask"):
            raise TrainerError(f"engine must be 'process', 'thread' or 'dask', not {engine!r}")
        if ngram_memory < 0:
            raise TrainerError(f"ngram_memory must be >= 0 (0 = unbounded), not {ngram_memory!r}")
        self.order = order
        self.max_piece_length = max_piece_length
        self.min_count = int(min_count)
        self.isolate_digits = isolate_digits
        self.ensure_unicode = ensure_unicode
        self.max_vocab_size = sorted((int(s) for s in sizes), reverse=True)
        self._single_size = not isinstance(max_vocab_size, (list, tuple))
        self.em = em
        self.em_seed = em_seed
        self.em_seed_factor = em_seed_factor
        self.em_pairs = em_pairs
        self.em_ngrams = em_ngrams
        self.em_shrink = em_shrink
        self.em_grow = em_grow
        self.em_keep_chars = em_keep_chars
        self.em_balance = em_balance
        self.em_script_floor = em_script_floor
        self.em_hard = em_hard
        self.em_round_fraction = em_round_fraction
        self.em_grow_fraction = em_grow_fraction
        self.em_first_fraction = em_first_fraction
        self.em_grow_rounds = int(em_grow_rounds)
        self.em_estimated_rounds = int(em_estimated_rounds)
        self.em_iterations = em_iterations
        self.em_final_iterations = em_final_iterations
        self.em_sample_bytes = int(em_sample_bytes)
        self.ngram_memory = int(ngram_memory)
        self.block_chars = int(block_chars)
        self.engine = engine
        self.verbose = verbose
        self.pieces: list[dict[bytes, int]] = []
        self.stats: dict = {}

    # -- public API ------------------------------------------------------------
    def train(self, texts: Iterable[str], workers: int = 1, batch_size: int = 1000, **dask) -> None:
        """Train on documents: any re-iterable of str (never held in memory; read once, or
        twice with ``em=False`` or ``em_seed="tagged"``, which tag the corpus in a second pass).

        ``batch_size`` is accepted for 0.6.3 compatibility; work is cut into
        blocks of ``block_chars`` characters instead.
        With ``engine="dask"`` or any Dask option (``client``, ``address``,
        ``scheduler_file``, ``local_workers``, ``blocksize``: characters per
        block, ``split_every``) the counting runs on a Dask cluster: the texts are
        read here and sent to the workers a block at a time, a bounded number in
        flight (:mod:`bytepiece.distributed`); the model is the same.

        >>> Trainer(engine="dask").train(texts, client=client)    # doctest: +SKIP
        """
        source = TextSource(texts)
        if iter(texts) is texts:
            raise TypeError(
                "texts must be re-iterable (a list, or an object whose __iter__ "
                "starts over): it may be read twice; a generator can be read only once"
            )
        if dask or self.engine == "dask":
            from .distributed import train_texts_on_dask

            train_texts_on_dask(self, texts, workers, **dask)
            return
        self._train(source, workers)

    def train_files(self, paths, workers: int = 1, errors: str = "strict", **dask) -> None:
        """Train on files and folders (every file under a folder), streaming.

        ``errors``: "strict" (invalid UTF-8 raises an error naming the file and
        byte offset), "replace" (U+FFFD), or "bytes" (train on the raw bytes).
        With ``engine="dask"`` or any Dask option (``client``, ``address``,
        ``scheduler_file``, ``local_workers``, ``blocksize``, ``split_every``,
        ``storage_options``) the counting runs on a Dask cluster whose workers
        read the files (:mod:`bytepiece.distributed`); the model is the same.
        """
        if dask or self.engine == "dask":
            from .distributed import train_files_on_dask

            train_files_on_dask(self, paths, workers, errors, **dask)
            return
        self._train(FileSource(paths, errors), workers)

    def save(self, path) -> None:
        """Write the model(s) in BytePiece 0.6.3's JSON format, atomically. With
        several sizes, one file per size: ``path.SIZE``."""
        if not self.pieces:
            raise TrainerError("nothing to save: train first")
        path = os.fspath(path)
        if len(self.pieces) == 1:
            paths = [path]
        else:
            paths = [f"{path}.{size}" for size in self.max_vocab_size]
        for pieces, p in zip(self.pieces, paths):
            save_model(p, pieces)

    # -- the pipeline ------------------------------------------------------------
    def _train(self, source, workers: int) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise TrainerError(f"workers must be an integer >= 1, not {workers!r}")
        t0 = time.perf_counter()
        self.stats = {"workers": workers}
        # (what one stage leaves for the next: nothing from an earlier, interrupted run)
        self._early_sample = self._em_groups = self._ngram_candidates = None
        _map_big_blocks()
        model = self._count_ngrams(source, workers)
        _return_free_memory()
        pieces, pairs, sample = self._count_pieces(source, model, workers)
        del model
        _return_free_memory()
        if not self.em:
            self.pieces = self._prune_pieces(pieces, self.max_vocab_size, workers)
        else:
            if self._tagging:
                seed_size = int(self.em_seed_factor * self.max_vocab_size[0])
                seed = self._prune_pieces(pieces, [seed_size], workers)[0]
            else:
                seed = dict(self._byte_counts)  # the n-gram candidates join in _em
            del pieces
            _return_free_memory()
            self.pieces = self._em(seed, pairs, sample, workers)
        self.stats["seconds"] = time.perf_counter() - t0
        _Progress(self.verbose, "train").log(
            "finished in {:.1f}s: {}".format(
                self.stats["seconds"], ", ".join(f"{len(p) + NUM_SPECIAL} pieces" for p in self.pieces)
            )
        )

    def _set_state(self, **extra) -> None:
        _STATE.clear()
        _STATE.update(
            order=self.order,
            isolate_digits=self.isolate_digits,
            ensure_unicode=self.ensure_unicode,
            budget=self._budget_entries(),
            **extra,
        )

    @property
    def _tagging(self) -> bool:
        """Whether the piece stage tags the corpus with the n-gram model (0.6.3's
        algorithm, and the tagged EM seed); otherwise it only draws the EM's sample."""
        return not self.em or self.em_seed == "tagged"

    def _budget_entries(self) -> int:
        # A slot is 16 bytes and tables stay at most 70% full after doubling, so
        # a table of n entries takes up to about 16 * n / 0.35 bytes.
        return int(self.ngram_memory * 0.35 / 16) if self.ngram_memory else 0

    def _count_ngrams(self, source, workers: int):
        progress = _Progress(self.verbose, "count n-grams", source.total_bytes)
        progress.log(f"order {self.order}, {workers} worker(s), {source.describe()}")
        # Without tagging, the piece stage would only draw the EM sample: draw it here
        # instead, and the corpus is read once.
        sample = _Sample(self.em_sample_bytes) if (self.em and not self._tagging) else None
        self._set_state(sample_bytes=sample.budget if sample else 0)
        table = None
        blocks = iter_blocks(source, self.block_chars)
        for block_table, nbytes, block_sample in _map_blocks(_map_count_ngrams, blocks, workers, self.engine):
            if table is None:
                table = block_table
            else:
                table.merge(block_table)
            if sample is not None:
                sample.add(block_sample)
            del block_table, block_sample
            # (not len(table): that would expand a compact table mid-stream)
            progress.advance(nbytes, lambda: f", {table.nbytes / 1e6:.0f} MB table")
        if table is None or table.total == 0:
            raise EmptyCorpusError("the corpus is empty: no text to train on")
        if sample is not None:
            # The sample and the EM's view of it (dedup, script weights, parts) do not
            # depend on the candidates: with workers, they are made on a helper thread
            # while the candidates are picked (mostly without the GIL, on 1.3 of the 2 cores).
            if workers > 1:
                helper = ThreadPoolExecutor(1)
                self._early_sample = helper.submit(self._sample_parts, sample)
                helper.shutdown(wait=False)
            else:
                self._early_sample = Future()
                self._early_sample.set_result(self._sample_parts(sample))
        return self._finish_ngrams(table, progress, workers, release=True)  # the table is ours

    def _sample_parts(self, sample: _Sample) -> tuple[int, int, list[Group]]:
        """(chunks, bytes, parts) of the EM sample, from the collector."""
        chunks, order, keys, lengths = sample.keyed_result()
        distinct = _distinct_runs(chunks, order, keys, lengths)
        if distinct is None:
            chunks, distinct = [chunks[i] for i in order.tolist()], None
        return (
            len(order),
            int(lengths.sum()),
            _em_parts(chunks, self.em_balance, EM_PARTS, self.em_script_floor, distinct),
        )

    def _finish_ngrams(self, table, progress: _Progress, workers: int = 1, release: bool = False):
        """The end of the n-gram stage, given the merged table (whatever engine made it):
        statistics, EM candidates, and the n-gram model (built on `workers` threads: the
        same model whatever their number). release=True frees the table's counts as the
        model is built (the caller's table is then spent)."""
        limit = int(self.em_ngrams * self.max_vocab_size[0]) if (self.em and self.em_ngrams > 0) else 0
        # (single bytes: the n-gram seed's counts; read before release empties the table)
        self._byte_counts = {bytes([i]): max(int(table.get(bytes([i]))), 1) for i in range(256)}
        if self._tagging:
            model, (keys, counts) = _ngram_model.finish_ngrams(table, self.min_count, limit, workers, release)
        else:  # no tagging, so no n-gram model: only the candidates, in the EM's order
            model, (keys, counts) = (
                None,
                _ngram_table.ngram_candidates(table, self.min_count, limit, workers, release, bytes_order=True),
            )
        self.stats["corpus_bytes"] = table.total
        self.stats["ngrams"] = len(table)
        self.stats["ngram_budget_hit"] = table.pruned_below > 0
        progress.finish(f"; {len(table)} distinct n-grams")
        if table.pruned_below:
            progress.log(
                f"memory budget hit (ngram_memory={self.ngram_memory} bytes): n-grams seen fewer than "
                f"{table.pruned_below} times in a block were dropped, so counts are approximate"
            )
        self._ngram_candidates = (keys, counts)  # (list of bytes, int64 array)
        return model

    def _count_pieces(self, source, model, workers: int):
        early = getattr(self, "_early_sample", None)
        self._early_sample = None
        if early is not None and model is None:  # drawn with the n-grams: nothing to read
            count, nbytes, groups = early.result()
            self._em_groups = (nbytes, groups)  # (for _em: the sample itself is not needed)
            _Progress(self.verbose, "EM sample").log(f"{count} chunks, drawn while counting n-grams")
            return None, {}, None
        progress = _Progress(
            self.verbose, "count pieces" if self._tagging else "draw the EM sample", self.stats["corpus_bytes"]
        )
        pair_length = min(int(self.max_piece_length), 255) if (self._tagging and self.em and self.em_pairs > 0) else 0
        sample = _Sample(self.em_sample_bytes if self.em else 0)
        self._set_state(model=model, pair_length=pair_length, sample_bytes=sample.budget)
        pieces = pairs = None
        blocks = iter_blocks(source, self.block_chars)
        for block_pieces, block_pairs, block_sample, nbytes in _map_blocks(
            _map_count_pieces, blocks, workers, self.engine
        ):
            if block_pieces is not None:
                pieces = block_pieces if pieces is None else pieces.merge(block_pieces)
            if block_pairs is not None:
                pairs = block_pairs if pairs is None else pairs.merge(block_pairs)
            sample.add(block_sample)
            del block_pieces, block_pairs, block_sample
            progress.advance(nbytes, lambda: f", {len(pieces)} distinct pieces" if pieces is not None else "")
        _STATE.clear()
        if pieces is None and model is not None:
            raise EmptyCorpusError("the corpus is empty: no text to train on")
        return self._finish_pieces(pieces, pairs, sample.result(), progress)

    def _finish_pieces(self, pieces, pairs, sample: list[bytes], progress: _Progress):
        """The end of the piece stage, given the merged tables (whatever engine made them)
        and the final EM sample: the PieceTable of pieces, {pair: count}, sample."""
        progress.finish(f"; {len(pieces)} distinct pieces" if self._tagging else "; EM sample only")
        pair_counts = pairs.to_dict(self.min_count) if pairs is not None else {}
        del pairs
        return pieces, pair_counts, sample

    # -- 0.6.3's pruning -----------------------------------------------------------
    def _split(self, keep: dict[bytes, int], drop, workers: int = 1, lattice: bool | None = None) -> dict[bytes, int]:
        """0.6.3's split_pieces: re-segment each dropped piece with the unigram model of
        `keep` and give it the piece's count; returns {piece: count received}. drop is
        a PieceTable, or (pieces, counts); lattice picks the engine (_segment_counts)."""
        keys = list(keep)
        counts = np.fromiter(keep.values(), dtype=np.float64, count=len(keys))
        log_total = np.log(sum(keep.values()))
        received = _segment_counts(keys, np.log(counts) - log_total, drop, workers, lattice)
        return dict(zip([keys[i] for i in np.flatnonzero(received).tolist()], received[received != 0].tolist()))

    def _drop_wasted(self, keep: dict[bytes, int], workers: int, progress: _Progress) -> dict[bytes, int]:
        while True:
            n = len(keep)
            keep = self._split(keep, (list(keep), list(keep.values())), workers)
            if len(keep) == n:
                return keep

    def _prune_pieces(self, pieces, sizes: Sequence[int], workers: int) -> list[dict[bytes, int]]:
        """pieces: the PieceTable of the piece stage, or {piece: count}."""
        progress = _Progress(self.verbose, "prune pieces")
        if isinstance(pieces, _piece_table.PieceTable):
            max_length = self.max_piece_length
            max_length = int(max_length) if max_length < 2**62 else 2**62
            keep, drop = pieces.partition(self.min_count, max_length)
            total = len(keep) + len(drop[0])
            for i in range(256):
                if pieces.get(bytes([i])) == 0:
                    total += 1
        else:
            for i in range(256):
                pieces.setdefault(bytes([i]), 1)
            keep, dropped = {}, []
            for k, v in pieces.items():
                if len(k) == 1 or (len(k) <= self.max_piece_length and v >= self.min_count):
                    keep[k] = v
                else:
                    dropped.append((k, v))
            drop = ([k for k, _ in dropped], [v for _, v in dropped])
            total = len(pieces)
            del dropped
        progress.log(f"{total} pieces: keep {len(keep)}, re-segment {len(drop[0])}")
        # the dropped pieces of a PieceTable: several MB of long rare ones, for the Lattice
        for k, v in self._split(keep, drop, workers, lattice=isinstance(pieces, _piece_table.PieceTable)).items():
            keep[k] += v
        del drop
        keep = self._drop_wasted(keep, workers, progress)
        progress.log(f"{len(keep)} pieces after dropping wasted ones")
        final = []
        for size in sizes:
            if len(keep) <= size - NUM_SPECIAL:
                final.append(keep)
                continue
            ordered = sorted(keep.items(), key=lambda t: (len(t[0]) > 1, -t[1], -len(t[0]), t[0]))
            keep = dict(ordered[: size - NUM_SPECIAL])
            rest = ordered[size - NUM_SPECIAL :]
            for k, v in self._split(keep, ([k for k, _ in rest], [v for _, v in rest]), workers).items():
                keep[k] += v
            keep = self._drop_wasted(keep, workers, progress)
            progress.log(f"size {size}: {len(keep)} pieces")
            final.append(keep)
        progress.finish()
        return final

    # -- EM ------------------------------------------------------------------------
    def _em(
        self, seed: dict[bytes, int], pairs: dict[bytes, int], sample: list[bytes] | None, workers: int
    ) -> list[dict[bytes, int]]:
        """The EM stage over `sample` (None: the parts drawn with the n-grams, _em_groups)."""
        progress = _Progress(self.verbose, "EM")
        early, self._em_groups = getattr(self, "_em_groups", None), None
        sample_bytes = early[0] if early is not None else sum(map(len, sample))
        corpus_bytes = self.stats["corpus_bytes"]
        progress.log(
            f"sample of {sample_bytes / 1e6:.1f} MB ({100 * sample_bytes / max(corpus_bytes, 1):.0f}% "
            f"of the corpus), seed of {len(seed)} pieces"
        )
        self.stats["em_sample_bytes"] = sample_bytes
        vocab = dict(seed)
        if pairs and self.em_pairs > 0:
            limit = int(self.em_pairs * len(seed))
            cands = [
                (c, p)
                for p, c in pairs.items()
                if c >= self.min_count and p not in vocab and len(p) <= self.max_piece_length
            ]
            cands.sort(key=lambda t: (-t[0], t[1]))
            for c, p in cands[:limit]:
                vocab[p] = c
            progress.log(f"+ {min(limit, len(cands))} candidate pairs of adjacent pieces")
        keys, key_counts = getattr(self, "_ngram_candidates", None) or ([], np.zeros(0, dtype=np.int64))
        self._ngram_candidates = None
        # The EM keeps its pieces in bytes order throughout.
        if len(vocab) == 256 and all(len(p) == 1 for p in vocab) and not self._tagging:
            # (the n-gram seed: the single bytes, and candidates of 2 bytes or more that
            # _finish_ngrams asked for in bytes order; each single byte goes before them)
            pieces, counts = _with_single_bytes(keys, key_counts, vocab)
            if keys:
                progress.log(f"+ {len(keys)} candidate frequent n-grams")
        else:
            fresh = [i for i, k in enumerate(keys) if k not in vocab]  # (the seed's counts win)
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
            order = _piece_table.bytes_order(everything)
            pieces = [everything[i] for i in order.tolist()]
            counts = counts[order]
            del everything, order
        del vocab, keys, key_counts
        groups = early[1] if early is not None else _em_parts(sample, self.em_balance, EM_PARTS, self.em_script_floor)
        # pruning rounds may look at a fixed part of the sample only; the final iterations see all of it
        round_groups = _spread(groups, self.em_round_fraction)
        grow_groups = _spread(round_groups, self.em_grow_fraction)
        first_groups = _spread(round_groups, self.em_first_fraction)
        # (counts are for all the groups: a fraction of them scales its counts up)
        parts = (round_groups, grow_groups, first_groups)
        whole = _group_bytes(groups) if any(part is not groups for part in parts) else 1.0  # (once)
        scale, grow_scale, first_scale = (
            1.0 if part is groups else whole / max(_group_bytes(part), 1) for part in parts
        )
        results = []
        it = grown = 0
        estimated = False  # the counts are the last grow pass's estimates: no E-step
        for size in self.max_vocab_size:
            target = size - NUM_SPECIAL
            while True:
                for _ in range(0 if estimated else self.em_iterations):
                    it += 1
                    # (hard counts while the vocabulary still grows; the counts of the
                    # last E-step become the model's: those are always expected counts)
                    hard = self.em_hard and grown < self.em_grow_rounds
                    # (the first E-step, over every candidate, only decides the first pruning:
                    # it may look at a part of the sample)
                    part, part_scale = (first_groups, first_scale) if it == 1 else (round_groups, scale)
                    counts, ll = self._em_step(pieces, counts, part, workers, hard)
                    counts *= part_scale
                    progress.log(
                        f"iteration {it}: {len(pieces)} pieces, log-likelihood {ll:.6g} "
                        f"({-ll / max(sample_bytes, 1) / math.log(2):.4f} bits/byte)"
                    )
                estimated = False
                if len(pieces) > target:
                    pieces, counts = self._em_prune(
                        pieces, counts, max(target, int(len(pieces) * self.em_shrink)), workers
                    )
                if grown < self.em_grow_rounds:
                    grown += 1
                    before = len(pieces)
                    pieces, counts = self._em_grow(
                        pieces, counts, grow_groups, int(self.em_grow * target), workers, grow_scale
                    )
                    # (never after the last grow round: the counts of its E-step become the model's)
                    estimated = grown <= self.em_estimated_rounds and grown < self.em_grow_rounds
                    progress.log(
                        f"grow round {grown}: + {len(pieces) - before} concatenations of adjacent pieces"
                        + ("; their counts estimated by the grow pass, no E-step" if estimated else "")
                    )
                elif len(pieces) <= target:
                    # No E-step after the last pruning: the kept pieces' counts from the step
                    # before it are their estimates (one more step measurably changes nothing
                    # on the bundled corpora at 8k, 16k and 32k, and costs a pass).
                    break
            for _ in range(self.em_final_iterations):
                it += 1
                counts, ll = self._em_step(pieces, counts, groups, workers)
                progress.log(f"iteration {it} (final): {len(pieces)} pieces, log-likelihood {ll:.6g}")
            final = np.maximum(np.rint(counts), 1).astype(np.int64)
            results.append({p: int(c) for p, c in zip(pieces, final)})
        self._em_cache = self._lengths_cache = None
        self._pair_table_size = 0
        progress.finish()
        return results

    def _lengths(self, pieces: list[bytes]) -> np.ndarray:
        """The byte lengths of a list of EM pieces (int64; computed once per list: the
        E-step, the pruning and the grow round each need them)."""
        cached = getattr(self, "_lengths_cache", None)
        if cached is not None and cached[0] is pieces:
            return cached[1]
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        lengths.flags.writeable = False
        self._lengths_cache = (pieces, lengths)
        return lengths

    def _em_lattice(self, pieces: list[bytes], logp: np.ndarray) -> Lattice:
        """A lattice of pieces with log-probabilities logp; the trie is built once per list
        of pieces (the E-step and the pruning after it share one)."""
        cached = getattr(self, "_em_cache", None)
        if cached is not None and cached[0] is pieces:
            return cached[1].with_logprobs(logp)
        lattice = Lattice(pieces, logp, np.arange(len(pieces)))
        self._em_cache = (pieces, lattice)
        return lattice

    def _em_step(self, pieces: list[bytes], counts: np.ndarray, groups: list[Group], workers: int, hard: bool = False):
        """One EM iteration: expected counts (forward-backward; or, with hard=True, the
        counts of the Viterbi segmentation) and the log-likelihood (or Viterbi score),
        each group's weighted by its weight."""
        logp = _logprobs(self._lengths(pieces), counts)
        lattice = self._em_lattice(pieces, logp)
        n = len(pieces)

        def run(group):
            texts, weights = group.texts, group.weights
            if hard:
                acc = np.zeros(n, dtype=np.float64)
                _em.viterbi_counts(lattice, texts, weights, acc)
                ll = float((acc * logp).sum())  # (no BLAS call: see _group_bytes)
            else:
                acc = np.zeros(n, dtype=np.float64)
                ll = _em.expected_counts(lattice, texts, acc, alpha=1.0, weights=weights)
            return acc, ll

        expected = np.zeros(n, dtype=np.float64)
        ll = 0.0
        # Summed in group order (the same floats whatever `workers` is) as the results
        # arrive: there can be many groups, and each result is as long as the vocabulary.
        if workers > 1 and len(groups) > 1:
            with ThreadPoolExecutor(workers) as ex:
                for acc, part_ll in ex.map(run, groups):
                    expected += acc
                    ll += part_ll
        else:
            for group in groups:
                acc, part_ll = run(group)
                expected += acc
                ll += part_ll
        _return_free_memory()
        return expected, ll

    def _em_grow(
        self, pieces: list[bytes], counts: np.ndarray, groups: list[Group], k: int, workers: int, scale: float = 1.0
    ):
        """Add the k most frequent (by group weight) concatenations of two adjacent pieces in
        the Viterbi segmentation of the groups (longer candidates; EM keeps the useful ones),
        each with its count times scale (the groups' share of the sample, inverted)."""
        n = len(pieces)
        lattice = self._em_lattice(pieces, _logprobs(self._lengths(pieces), counts))
        # Pair tables per thread, each taking every `threads`-th group; integer weights make
        # the merged sums the same whatever the number of threads. Each thread keeps the
        # two halves of the pairs (pair_half) apart: the halves are merged and read on two
        # threads at once.
        threads = max(1, min(workers, len(groups)))
        # (each sized for as many pairs as the last round's merged half held: no doubling on
        # the way, and the largest then takes in the others without growing)
        expected = getattr(self, "_pair_table_size", 0)
        tables = [[PairCounts(n, expected), PairCounts(n, expected)] for _ in range(threads)]
        fixed = [np.rint(group.weights * (1 << PAIR_WEIGHT_BITS)).astype(np.int64) for group in groups]

        unis = [np.zeros(n, dtype=np.int64) for _ in range(threads)]

        def run(t):
            for g in range(t, len(groups), threads):
                _em.count_viterbi_pairs(
                    lattice, groups[g].texts, fixed[g], tables[t][0], unigrams=unis[t], odd=tables[t][1]
                )

        floor = max(self.min_count, 2)  # candidates seen fewer times are cut anyway

        def merged(half):
            parts = sorted((per_thread[half] for per_thread in tables), key=len)
            for per_thread in tables:
                per_thread[half] = None
            total = parts.pop()  # merge into the largest: it grows least
            while parts:
                total.merge(parts.pop())  # (each freed as soon as it is merged)
            # (unsorted: _most_frequent_first orders them completely)
            return len(total), total.arrays(floor << PAIR_WEIGHT_BITS, sort=False)

        if threads > 1:
            with ThreadPoolExecutor(threads) as ex:
                list(ex.map(run, range(threads)))
        else:
            run(0)
        halves = list(_map_threads(merged, (0, 1), min(workers, 2)))
        self._pair_table_size = max(size for size, _ in halves)
        keys = np.concatenate([arrays[0] for _, arrays in halves])
        fixed_freq = np.concatenate([arrays[1] for _, arrays in halves])
        del halves, tables, fixed
        _return_free_memory()
        # Most frequent first; ties by the (length, bytes) rank of the left piece, then of the
        # right one (shorter parts first: measurably better than bytes order on code).
        lengths = self._lengths(pieces)
        rank = np.empty(n, dtype=np.int64)
        rank[np.lexsort((np.arange(n), lengths))] = np.arange(n)  # (pieces are in bytes order)
        uni = unis.pop()
        while unis:
            uni += unis.pop()
        # The first k concatenations, in that order, that are not too long, do not start
        # inside a character (as 0.6.3's ensure_unicode) and are new: the first two tests on
        # whole blocks of pairs, the last per pair.
        bad_start = None
        if self.ensure_unicode:
            first_byte = _first_bytes(lengths)
            bad_start = (first_byte >= 0x80) & (first_byte < 0xC0)
        known = set(pieces)
        new: list[bytes] = []
        chosen_a, chosen_b, chosen_f = [], [], []
        for block_keys, block_freq in _most_frequent_first(keys, fixed_freq, rank, n, 4 * k):
            a, b = np.divmod(block_keys, n)
            ok = lengths[a] + lengths[b] <= self.max_piece_length
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
        chosen_f = np.concatenate(chosen_f) if chosen_f else np.zeros(0, dtype=np.int64)
        # The counts of the grown vocabulary, estimated from this pass: each old piece's count
        # in the Viterbi segmentation, less what the new pieces take from it (an estimate for
        # the pruning when no E-step follows; the start of the next E-step otherwise).
        taken = np.zeros(n, dtype=np.int64)
        for parts in (chosen_a, chosen_b):
            if parts:
                np.add.at(taken, np.concatenate(parts), chosen_f)
        counts = np.maximum(uni - taken, 0) * (scale / float(1 << PAIR_WEIGHT_BITS))
        if not new:
            return pieces, counts
        grown = pieces + new
        order = _piece_table.bytes_order(grown)
        grown_counts = np.concatenate([counts, chosen_f * scale / float(1 << PAIR_WEIGHT_BITS)])
        return [grown[i] for i in order.tolist()], grown_counts[order]

    def _em_prune(self, pieces: list[bytes], counts: np.ndarray, keep_n: int, workers: int = 1):
        """Keep the single bytes and the keep_n - 256 multi-byte pieces whose removal
        would cost the most likelihood."""
        logp = _logprobs(self._lengths(pieces), counts)
        lattice = self._em_lattice(pieces, logp)
        step = -(-len(pieces) // max(1, workers))
        split = np.concatenate(
            list(
                _map_threads(
                    lambda lo: _em.split_scores(lattice, pieces[lo : lo + step]), range(0, len(pieces), step), workers
                )
            )
        )
        loss = counts * (logp - split)
        lengths = self._lengths(pieces)
        loss[lengths == 1] = math.inf
        keep_chars = self.em_keep_chars
        if keep_chars:
            # (the lead byte's character length must be the piece's: tested on arrays first)
            maybe = (lengths > 1) & (lengths <= 4) & (counts >= keep_chars)
            maybe &= _UTF8_LENGTH[_first_bytes(lengths)] == lengths
            for i in np.flatnonzero(maybe).tolist():
                if _is_one_char(pieces[i]):
                    loss[i] = math.inf  # whole characters stay, like SentencePiece's required characters
        kept = _most_costly(loss, counts, lengths, keep_n)
        return [pieces[i] for i in kept.tolist()], counts[kept]


def _most_costly(loss: np.ndarray, counts: np.ndarray, lengths: np.ndarray, keep_n: int) -> np.ndarray:
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


def _most_frequent_first(
    keys: np.ndarray, freq: np.ndarray, rank: np.ndarray, n: int, first: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """_em_grow's pairs in blocks (pair keys, freqs), most frequent first, ties by the rank
    of the left piece, then of the right one. The caller usually stops early, so only the
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


def _with_single_bytes(keys: list[bytes], counts: np.ndarray, singles: dict[bytes, int]):
    """(pieces, float64 counts): the 256 single bytes (with their counts in `singles`) and
    `keys` (in bytes order, each of two bytes or more, with `counts`), merged in bytes
    order: bytes([c]) just before the keys that start with c."""
    starts = [bisect.bisect_left(keys, bytes([c])) for c in range(256)] + [len(keys)]
    pieces: list[bytes] = []
    for c in range(256):
        pieces.append(bytes([c]))
        pieces.extend(keys[starts[c] : starts[c + 1]])
    merged = np.insert(
        np.asarray(counts, dtype=np.float64), starts[:256], [float(singles[bytes([c])]) for c in range(256)]
    )
    return pieces, merged


def _first_bytes(lengths: np.ndarray) -> np.ndarray:
    """The first byte of each of the EM's pieces, from their lengths alone: the pieces are
    in bytes order and include the 256 single bytes, so the pieces that start with byte c
    are bytes([c]) and those after it up to bytes([c + 1])."""
    return np.cumsum(lengths == 1) - 1


#: The length of a UTF-8 character from its first byte (0: not a first byte).
_UTF8_LENGTH = np.array([1] * 128 + [0] * 64 + [2] * 32 + [3] * 16 + [4] * 8 + [0] * 8, dtype=np.int64)


def _is_one_char(p: bytes) -> bool:
    try:
        return len(p.decode("utf-8")) == 1
    except UnicodeDecodeError:
        return False


def _logprobs(lengths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Log-probabilities of pieces of these lengths from their counts (single bytes count
    at least 1, longer pieces at least 1e-6)."""
    c = counts.copy()
    single = lengths == 1
    c[single] = np.maximum(c[single], 1.0)
    c[~single] = np.maximum(c[~single], 1e-6)
    return np.log(c) - np.log(c.sum())


class Group(NamedTuple):
    """A part of the EM sample: chunks, each with the weight of its counts, and the sum
    of weight x length (the part's mass in an E-step)."""

    texts: list[bytes]
    weights: np.ndarray
    mass: float


# Script of a character from its UTF-8 lead byte (continuation bytes: _NO_VOTE): 0 ASCII,
# 1 Latin-1 / Latin extended / IPA / Greek, 2 Cyrillic, 3 Armenian and Hebrew, 4 Arabic,
# Syriac, Thaana, NKo, 5 U+0800-0FFF (Indic, Thai, Lao, Tibetan), 6 U+1000-1FFF (Myanmar,
# Georgian, Ethiopic, ...), 7 symbols, punctuation, private use, 4-byte characters (emoji),
# 8 CJK (kana, CJK symbols, Han), 9 Yi and Hangul.
_NO_VOTE = 10
_SCRIPT_OF_LEAD = np.full(256, 7, dtype=np.int64)
_SCRIPT_OF_LEAD[0x00:0x80] = 0
_SCRIPT_OF_LEAD[0x80:0xC0] = _NO_VOTE
_SCRIPT_OF_LEAD[0xC0:0xD0] = 1
_SCRIPT_OF_LEAD[0xD0:0xD5] = 2
_SCRIPT_OF_LEAD[0xD5:0xD8] = 3
_SCRIPT_OF_LEAD[0xD8:0xE0] = 4
_SCRIPT_OF_LEAD[0xE0] = 5
_SCRIPT_OF_LEAD[0xE1] = 6
_SCRIPT_OF_LEAD[0xE3:0xEA] = 8
_SCRIPT_OF_LEAD[0xEA:0xEE] = 9


def _scripts(sample: list[bytes]) -> np.ndarray:
    """The script (see _SCRIPT_OF_LEAD) most characters of each chunk are in; ties go to
    the lower number (one pass over the bytes in C, without the GIL)."""
    return _chunk_keys_core.chunk_scripts(sample, _SCRIPT_OF_LEAD, _NO_VOTE)


def _script_targets(share: np.ndarray, balance: float, floor: float) -> np.ndarray:
    """The weight share of each script, from its byte share: tempered (p**balance,
    renormalised), then every script present raised to at least `floor`, the others
    scaled down in proportion (repeated until none of them falls below it; all equal
    when the floor cannot be met)."""
    present = share > 0
    target = np.zeros_like(share)
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


def _script_weights(
    sample: list[bytes],
    balance: float,
    multiplicity: np.ndarray | None = None,
    floor: float = 0.0,
    lengths: np.ndarray | None = None,
) -> np.ndarray:
    """Per chunk: the weight that makes each script's share of the sample bytes count as
    its _script_targets share (1.0 everywhere when nothing is balanced, or there is one
    script). With `multiplicity`, chunk i stands for multiplicity[i] copies of itself;
    `lengths`, when given, are the chunks' lengths."""
    weights = np.ones(len(sample), dtype=np.float64)
    if (balance == 1.0 and floor <= 0) or not sample:
        return weights
    script = _scripts(sample)
    lengths = (
        np.fromiter(map(len, sample), dtype=np.float64, count=len(sample))
        if lengths is None
        else lengths.astype(np.float64)
    )
    if multiplicity is not None:
        lengths *= multiplicity
    share = np.bincount(script, weights=lengths, minlength=_NO_VOTE)
    share /= max(share.sum(), 1.0)
    present = share > 0
    if present.sum() <= 1:
        return weights
    target = _script_targets(share, balance, floor)
    per_script = np.ones_like(share)
    per_script[present] = target[present] / share[present]
    return per_script[script]


def _em_parts(
    sample: list[bytes],
    balance: float,
    k: int,
    floor: float = 0.0,
    distinct: tuple[list[bytes], np.ndarray, np.ndarray] | None = None,
) -> list[Group]:
    """The EM's view of its sample: the distinct chunks (first-occurrence order), each
    weighing its multiplicity times its script's weight (_script_weights), cut into k
    parts (_make_parts). A chunk found m times is segmented once per pass (repeated
    lines are common in code). `distinct`, when given, is _distinct_runs's answer for the
    sample (which is then not read)."""
    if distinct is None:
        counted = collections.Counter(sample)  # (counted in C; keeps first-occurrence order)
        chunks = list(counted)
        multiplicity = np.fromiter(counted.values(), dtype=np.float64, count=len(chunks))
        del counted
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
    else:
        chunks, multiplicity, lengths = distinct
    weights = _script_weights(chunks, balance, multiplicity, floor, lengths) * multiplicity
    return _make_parts(chunks, weights, k, lengths)


def _distinct_runs(chunks: list[bytes], order: np.ndarray, keys: np.ndarray, lengths: np.ndarray):
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


def _make_parts(chunks: list[bytes], weights: np.ndarray, k: int, lengths: np.ndarray | None = None) -> list[Group]:
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


def _spread(groups: list[Group], fraction: float) -> list[Group]:
    """About fraction of the groups, evenly spread over the list (the parts are contiguous
    runs of the sample, and a corpus often comes one language after another)."""
    m = max(1, int(round(len(groups) * fraction)))
    return groups if m >= len(groups) else [groups[i * len(groups) // m] for i in range(m)]


def _group_bytes(groups: list[Group]) -> float:
    """The weighted bytes of the groups: their mass in the E-step."""
    return float(sum(group.mass for group in groups))


def _segment_counts(
    pieces: list[bytes], logp: np.ndarray, texts, workers: int = 1, lattice: bool | None = None
) -> np.ndarray:
    """sum over texts of weight x (number of times each piece is in its Viterbi split
    with the unigram model pieces/logp), as int64 by piece index. texts is a PieceTable
    (weights: its counts) or (list of bytes, weights).

    Two engines, same splits: the Lattice (slower to build, faster per byte; the default
    for a PieceTable) for the pieces dropped by the first cut, several MB of long rare
    ones, and a PieceSplitter (the default for a list) for the re-segmentation of a
    vocabulary by itself. Slices of texts are split on `workers` threads; the counts are
    sums of integers, so the result does not depend on how they are cut."""
    if isinstance(texts, _piece_table.PieceTable):
        texts = texts.pieces_and_counts()
        lattice = True if lattice is None else lattice
    texts, weights = texts
    weights = np.asarray(weights, dtype=np.int64)
    n = len(pieces)
    if not len(texts):
        return np.zeros(n, dtype=np.int64)
    if lattice:
        lat = Lattice(pieces, logp, np.arange(n))
        step = 8192  # slices: the token arrays of all dropped pieces at once are big

        def run(lo):
            ids, offsets, _ = encode_flat(lat, texts[lo : lo + step], chunked=False)
            w = np.repeat(weights[lo : lo + step].astype(np.float64), np.diff(offsets))
            return np.bincount(ids, weights=w, minlength=n)  # integers: exact in float64

        total = np.zeros(n, dtype=np.float64)
        for part in _map_threads(run, range(0, len(texts), step), workers):
            total += part
        return np.rint(total).astype(np.int64)
    splitter = _splitter.PieceSplitter(pieces, logp)
    step = max(4096, -(-len(texts) // (4 * workers)))
    out = np.zeros(n, dtype=np.int64)
    for part in _map_threads(
        lambda lo: splitter.counts(texts[lo : lo + step], weights[lo : lo + step]), range(0, len(texts), step), workers
    ):
        out += part
    return out


def _map_threads(func, items, workers: int) -> Iterator:
    """func over items on `workers` threads (for functions that release the GIL), results in
    order, at most workers + 1 of them held at a time (each can be as long as the vocabulary)."""
    return _map_blocks(func, items, workers, "thread")


def convert_to_bytepiece(pieces, path) -> None:
    """Turn {piece (str or bytes): count} from any tokenizer into a BytePiece model
    at ``path``, as 0.6.3's function of the same name: all 256 bytes are added, and
    pieces whose best segmentation is not themselves give their counts to their parts."""
    pieces = {k if isinstance(k, bytes) else k.encode("utf-8"): v for k, v in pieces.items()}
    trainer = Trainer(max_vocab_size=len(pieces) + MIN_VOCAB_SIZE, min_count=1, em=False, verbose=False)
    trainer.max_piece_length = math.inf
    trainer.pieces = trainer._prune_pieces(pieces, trainer.max_vocab_size, 1)
    trainer.save(path)
