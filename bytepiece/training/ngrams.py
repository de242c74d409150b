"""Stage 1: count the corpus's byte n-grams, then build the n-gram model and the EM's
candidates from the counts.

The counting is a :class:`~bytepiece.training.engines.CountingJob`: each block of
documents is cut into chunks and counted into an NgramTable (a compact table, capped at
``budget`` entries; the rarest n-grams are dropped when it is hit), and tables merge by
integer addition, so the counts do not depend on how the corpus was cut or spread.
When the EM will not tag the corpus (its n-gram seed), the same pass draws the EM
sample, so the corpus is read once.

:func:`finish` turns the merged table into what the later stages need: the n-gram
model (only when the corpus is tagged), the candidates, the counts of the 256 single
bytes, and the stage's statistics. It may release the table's counts as it goes, so
the table and the model are not held together.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np

from ..corpus import chunk_block
from ..progress import Progress
from . import kernels
from .engines import CountingJob
from .options import TrainerOptions
from .sample import SampleCollector


class NgramSettings(NamedTuple):
    """What counting a block depends on."""

    order: int
    isolate_digits: bool
    budget: int  # entries of the table (0: no cap)
    sample_bytes: int  # the EM sample drawn in the same pass (0: none)
    form: str = "NFC"  # the normalisation of the text


class NgramPart(NamedTuple):
    """The counts of some blocks: the table, the bytes read, and their EM sample (or None)."""

    table: kernels.NgramTable
    nbytes: int
    sample: SampleCollector | None


class NgramResult(NamedTuple):
    """The end of the n-gram stage."""

    model: kernels.NgramModel | None  # None when the corpus is not tagged
    candidates: tuple[list[bytes], np.ndarray]  # frequent n-grams (bytes order without tagging), int64 counts
    byte_counts: dict[bytes, int]  # each single byte's count (at least 1)
    corpus_bytes: int
    distinct: int  # distinct n-grams counted
    budget_hit: bool


def settings_of(options: TrainerOptions, sample_bytes: int = 0) -> NgramSettings:
    return NgramSettings(
        options.order, bool(options.isolate_digits), options.budget_entries, int(sample_bytes), options.normalization
    )


def count_block(settings: NgramSettings, shared: None, documents: list) -> NgramPart:
    """The NgramPart of one block of documents (str, or bytes in raw mode)."""
    chunks = chunk_block(documents, settings.isolate_digits, settings.form)
    table = kernels.count_ngrams_block(chunks, settings.order, settings.budget)
    sample = SampleCollector.of_chunks(chunks, settings.sample_bytes) if settings.sample_bytes else None
    return NgramPart(table, sum(map(len, chunks)), sample)


def merge_parts(settings: NgramSettings, parts: list[NgramPart], reuse_first: bool) -> NgramPart:
    """The sum of the parts' tables and the bottom of their samples. reuse_first merges
    into the first part's table and sample (a local fold); otherwise the parts are left
    as they are (a task's inputs on a cluster) and the table is a new one."""
    samples = [p.sample for p in parts if p.sample is not None]
    if reuse_first:
        table, sample = parts[0].table, parts[0].sample
        for part in parts[1:]:
            table.merge(part.table)
            if sample is not None:
                sample.add(part.sample)
    else:
        table = kernels.new_ngram_table(settings.order, settings.budget)
        for part in parts:
            table.merge(part.table)
        sample = SampleCollector.union(samples, settings.sample_bytes) if samples else None
    return NgramPart(table, sum(p.nbytes for p in parts), sample)


def table_status(part: NgramPart) -> str:
    # (not len(table): that would expand a compact table mid-stream)
    status = f", {part.table.nbytes / 1e6:.0f} MB table"
    if part.table.pruned_below:
        status += f", budget hit: n-grams seen < {part.table.pruned_below} times dropped, counts approximate"
    return status


def job(settings: NgramSettings) -> CountingJob:
    return CountingJob("ngrams", partial(count_block, settings), partial(merge_parts, settings), table_status)


def finish(table, options: TrainerOptions, workers: int, release: bool, progress: Progress) -> NgramResult:
    """The end of the n-gram stage, given the merged table (whatever engine made it): the
    candidates, and the n-gram model when the corpus is tagged (built on `workers`
    threads: the same model whatever their number). release=True frees the table's counts
    as the model is built (the caller's table is then spent)."""
    limit = options.candidate_limit
    # (single bytes: the n-gram seed's counts; read before release empties the table)
    byte_counts = {bytes([i]): max(int(table.get(bytes([i]))), 1) for i in range(256)}
    if options.tagging:
        model, candidates = kernels.finish_ngrams(table, options.min_count, limit, workers, release)
    else:  # no tagging, so no n-gram model: only the candidates, in the EM's order
        model = None
        candidates = kernels.ngram_candidates_in_bytes_order(table, options.min_count, limit, workers, release)
    progress.finish(f"; {len(table)} distinct n-grams")
    if table.pruned_below:
        progress.log(
            f"memory budget hit (ngram_memory={options.ngram_memory / 1e6:g} MB): n-grams seen fewer than "
            f"{table.pruned_below} times at a time were dropped (their counts folded into their "
            "prefixes), so counts are approximate"
        )
    return NgramResult(model, candidates, byte_counts, table.total, len(table), table.pruned_below > 0)
