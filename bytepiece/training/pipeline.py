"""The training stages in order, each taking the previous one's results.

1. count byte n-grams (:mod:`~bytepiece.training.ngrams`); the n-gram model (when the
   corpus will be tagged) and the EM's candidates;
2. tag the corpus and count the pieces (:mod:`~bytepiece.training.pieces`), drawing
   the EM sample; with the EM's n-gram seed this pass only draws the sample, or is
   skipped when the engine drew it with the n-grams;
3. 0.6.3's pruning (:mod:`~bytepiece.training.prune`): the result with ``em=False``,
   the EM's seed with ``em_seed="tagged"``;
4. the EM (:mod:`~bytepiece.training.em`) over the sample (:mod:`~bytepiece.training.sample`).

The counts of stages 1 and 2 come from a *count source*: a corpus read by an engine
(:class:`CorpusCounts`), or counts saved earlier (``bytepiece.distributed``). Either way
the model is the same: every reduction is a sum of integers, or of floats in a fixed
order.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from ..corpus import EmptyCorpusError
from ..progress import Progress
from . import em, memory, ngrams, pieces, prune
from .engines import Runner
from .options import NUM_SPECIAL, TrainerOptions, checked_workers
from .sample import SampleCollector, SampleParts, sample_parts


class CountSource(Protocol):
    """Where the counts of stages 1 and 2 come from."""

    #: the corpus's size in bytes, when known (for progress)
    total_bytes: int | None
    #: whether the n-gram counts may come with the EM sample (one pass over the corpus)
    sample_with_ngrams: bool

    def describe(self, workers: int) -> str:
        """Where the counting runs and on what, for the log."""

    def count_ngrams(
        self, settings: ngrams.NgramSettings, workers: int, progress: Progress
    ) -> tuple[ngrams.NgramPart | None, bool]:
        """(the merged n-gram part or None, whether its table may be released)."""

    def count_pieces(
        self, settings: pieces.PieceSettings, model, workers: int, progress: Progress
    ) -> pieces.PiecePart | None:
        """The merged piece part (or None), tagged with `model` (None: only the sample)."""


class CorpusCounts:
    """The counts of a corpus, made by a running engine."""

    def __init__(self, runner: Runner, corpus, sample_with_ngrams: bool):
        self.runner = runner
        self.corpus = corpus
        self.sample_with_ngrams = sample_with_ngrams
        self.total_bytes = corpus.total_bytes

    def describe(self, workers: int) -> str:
        return f"{self.runner.describe(workers)}, {self.corpus.describe()}"

    def count_ngrams(self, settings, workers, progress):
        return self.runner.reduce(ngrams.job(settings), self.corpus, workers, progress), True

    def count_pieces(self, settings, model, workers, progress):
        return self.runner.reduce(pieces.job(settings, model), self.corpus, workers, progress)


def run_stages(options: TrainerOptions, source: CountSource, workers: int) -> tuple[list[dict], dict]:
    """(one vocabulary {piece: count} per size, largest first; statistics)."""
    workers = checked_workers(workers)
    start = stage_start = time.perf_counter()
    stage_seconds: dict[str, float] = {}
    stats: dict = {"workers": workers, "stage_seconds": stage_seconds}
    memory.map_big_blocks()

    # 1. n-grams (and, when nothing will be tagged, the EM sample in the same pass)
    progress = Progress(options.verbose, "count n-grams", source.total_bytes)
    progress.log(f"order {options.order}, {source.describe(workers)}")
    draw_now = options.use_em and not options.tagging and source.sample_with_ngrams
    part, owned = source.count_ngrams(
        ngrams.settings_of(options, options.sample_bytes if draw_now else 0), workers, progress
    )
    if part is None or part.table.total == 0:
        raise EmptyCorpusError("the corpus is empty: no text to train on")
    # (the sample's parts are made once the table is spent, not beside it: the stage's
    # peak is the table and the sample, and making the parts copies the sample's index)
    sample = part.sample
    table = part.table
    del part
    counted = ngrams.finish(table, options, workers, owned, progress)
    del table
    model, candidates, byte_counts = counted.model, counted.candidates, counted.byte_counts
    stats.update(corpus_bytes=counted.corpus_bytes, ngrams=counted.distinct, ngram_budget_hit=counted.budget_hit)
    del counted
    memory.return_free_memory()
    early = None if sample is None else _parts_in_background(sample, options, workers)
    del sample
    stage_seconds["count_ngrams"], stage_start = _lap(stage_start)

    # 2. pieces (or only the EM sample)
    em_sample: SampleParts | None = None
    collector: SampleCollector | None = None
    pair_counts: dict[bytes, int] = {}
    tagged = None
    if early is not None:
        em_sample = early.result()
        Progress(options.verbose, "EM sample").log(f"{em_sample.num_chunks} chunks, drawn while counting n-grams")
    else:
        label = "count pieces" if options.tagging else "draw the EM sample"
        progress = Progress(options.verbose, label, stats["corpus_bytes"])
        counted_pieces = source.count_pieces(pieces.settings_of(options), model, workers, progress)
        if model is not None and (counted_pieces is None or len(counted_pieces.pieces) == 0):
            raise EmptyCorpusError("the corpus is empty: no text to train on")
        tagged, pair_counts, collector = pieces.finish(counted_pieces, options, progress)
        del counted_pieces
    del model
    memory.return_free_memory()
    stage_seconds["count_pieces"], stage_start = _lap(stage_start)

    # 3. 0.6.3's pruning, and 4. the EM
    result: list[dict]
    if not options.use_em:
        result = prune.prune_pieces(tagged, options.max_vocab_size, options, workers, _pruning(options))
    else:
        if tagged is not None:
            seed_size = int(options.em.seed_factor * options.max_vocab_size[0])
            seed = prune.prune_pieces(tagged, [seed_size], options, workers, _pruning(options))[0]
        else:
            seed = dict(byte_counts)  # (the n-gram candidates join in the EM)
        del tagged
        memory.return_free_memory()
        if em_sample is None:
            assert collector is not None
            em_sample = sample_parts(collector, options.em.balance, options.em.script_floor)
        found = em.run(options, seed, pair_counts, candidates, em_sample, stats["corpus_bytes"], workers)
        stats["em_sample_bytes"] = found.sample_bytes
        result = found.pieces
    stage_seconds["prune_em"], _ = _lap(stage_start)
    stats["seconds"] = time.perf_counter() - start
    Progress(options.verbose, "train").log(
        "finished in {:.1f}s: {}{}".format(
            stats["seconds"],
            ", ".join(f"{len(p) + NUM_SPECIAL} pieces" for p in result),
            "; the n-gram memory budget was hit: counts were approximate" if stats["ngram_budget_hit"] else "",
        )
    )
    return result, stats


def _parts_in_background(sample: SampleCollector, options: TrainerOptions, workers: int) -> Future:
    """The EM's parts of the sample drawn with the n-grams. They do not depend on the
    candidates: with workers, they are made on a helper thread while the candidates are
    picked (mostly without the GIL)."""
    if workers > 1:
        helper = ThreadPoolExecutor(1)
        future = helper.submit(sample_parts, sample, options.em.balance, options.em.script_floor)
        helper.shutdown(wait=False)
        return future
    done: Future = Future()
    done.set_result(sample_parts(sample, options.em.balance, options.em.script_floor))
    return done


def _pruning(options: TrainerOptions) -> Progress:
    return Progress(options.verbose, "prune pieces")


def _lap(since: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now - since, now
