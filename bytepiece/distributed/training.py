"""Training with the Dask engine: ``DaskTrainer``, the helpers behind
``Trainer(engine="dask")``, and training in steps through count files.

``DaskTrainer`` is a ``Trainer`` whose engine is a configured :class:`DaskEngine`; its
extra methods count one stage over some files into :class:`~.counts.Counts`, and
finish training from merged counts. Finishing runs the trainer's own stages on the
counts (:class:`SavedCounts` is a count source like a corpus being read), after
checking that the counts were made with this trainer's options and, for piece counts,
with the n-gram model of these n-gram counts.
"""

from __future__ import annotations

from typing import Any

from ..progress import Progress
from ..training import Trainer, TrainerError, TrainerOptions, kernels, ngrams, pieces
from .cluster import DASK_OPTIONS, with_default_client
from .counts import Counts, load_counts, model_digest, ngram_settings, piece_settings, sample_pairs
from .engine import DaskEngine, FileBlocks


class DaskTrainer(Trainer):
    """:class:`~bytepiece.trainer.Trainer` whose counting stages run on a Dask cluster.

    Takes every Trainer option, plus where to run (one of ``client``,
    ``address``, ``scheduler_file``, ``local_workers``; with none, the stages
    run in this process, block by block, which is what the count files need on
    a machine without a cluster), ``blocksize`` (bytes a task reads; with
    :meth:`train`, characters of documents the driver sends per task),
    ``split_every`` (tables per merge task) and ``storage_options`` (fsspec
    options for URLs). The model is byte-identical to ``Trainer.train_files``
    (or ``Trainer.train`` for documents). ``stats["stage_seconds"]`` times each stage.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        # (the Dask options are DaskEngine's: they are taken out and given to it)
        where = {name: kwargs.pop(name) for name in DASK_OPTIONS if name in kwargs}
        if where.get("blocksize", 1) < 1:
            raise TrainerError(f"blocksize must be positive, not {where['blocksize']!r}")
        kwargs["engine"] = DaskEngine(**where)
        super().__init__(*args, **kwargs)

    def count_ngrams(self, paths, errors: str = "strict") -> Counts:
        """Stage 1 over some files: the n-gram counts (save them, merge them later)."""
        return count_ngrams(paths, self, errors)

    def count_pieces(self, paths, ngrams: Counts, errors: str = "strict") -> Counts:
        """Stage 2 over some files, tagging with the model of the merged n-gram counts of
        the *whole* corpus (``ngrams``): the piece counts."""
        return count_pieces(paths, ngrams, self, errors)

    def train_from_counts(self, ngrams: Counts, pieces: Counts, workers: int = 1) -> None:
        """Finish training (pruning and EM, here) from merged counts of both stages."""
        train_from_counts(self, ngrams, pieces, workers)


def _engine_of(trainer: Trainer | None, options: dict[str, Any]) -> tuple[TrainerOptions, DaskEngine]:
    """(the trainer's options, its Dask engine with the call's options); a plain Trainer's
    engine is a new DaskEngine (in this process without a place to run)."""
    if trainer is None:
        trainer = Trainer(verbose=False)
    configured = trainer.options.engine
    engine = configured if isinstance(configured, DaskEngine) else DaskEngine()
    return trainer.options, engine.with_options(options)


def count_ngrams(paths, trainer: Trainer | None = None, errors: str = "strict", **where: Any) -> Counts:
    """Stage 1 (n-gram counts) over some files with ``trainer``'s options (a default
    Trainer if None); ``where``: client=, address=, ... as :class:`DaskTrainer`, or
    nothing to count in this process."""
    options, engine = _engine_of(trainer, where)
    corpus = FileBlocks(paths, errors, engine.blocksize, engine.storage_options)
    settings = ngrams.settings_of(options)
    with engine.running() as runner:
        part = runner.reduce(ngrams.job(settings), corpus, 1, Progress(False, "count n-grams"))
    table = part.table if part is not None else kernels.new_ngram_table(settings.order, settings.budget)
    return Counts("ngrams", ngram_settings(options, errors), table, sources=corpus.sources, nbytes=table.total)


def count_pieces(paths, ngrams: Counts, trainer: Trainer | None = None, errors: str = "strict", **where: Any) -> Counts:
    """Stage 2 (piece counts) over some files, with the merged n-gram counts of the whole corpus."""
    options, engine = _engine_of(trainer, where)
    model = _model_of(options, ngrams)
    corpus = FileBlocks(paths, errors, engine.blocksize, engine.storage_options)
    with engine.running() as runner:
        part = runner.reduce(pieces.job(pieces.settings_of(options), model), corpus, 1, Progress(False, "count pieces"))
    if part is None:  # no blocks
        pairs = kernels.new_piece_table() if options.pair_length else None
        part = pieces.PiecePart(kernels.new_piece_table(), pairs, None, 0)
    settings = piece_settings(options, errors, model_digest(model))
    return Counts("pieces", settings, part.pieces, part.pairs, sample_pairs(part.sample), corpus.sources, part.nbytes)


def train_from_counts(trainer: Trainer, ngrams, pieces, workers: int = 1) -> Trainer:
    """Finish ``trainer`` (pruning and EM) from merged counts (Counts or file paths);
    afterwards ``trainer.pieces`` is set and ``trainer.save`` works."""
    ngrams = ngrams if isinstance(ngrams, Counts) else load_counts(ngrams)
    pieces = pieces if isinstance(pieces, Counts) else load_counts(pieces)
    _check_ngrams(trainer.options, ngrams)
    if pieces.stage != "pieces":
        raise ValueError("pieces must be piece counts")
    trainer.train_counts(SavedCounts(trainer.options, ngrams, pieces), workers)
    return trainer


def train_files_on_dask(trainer: Trainer, paths, workers: int = 1, errors: str = "strict", **where: Any) -> Trainer:
    """``trainer.train_files(paths)`` with the counting on a Dask cluster (``where``:
    client=, address=, scheduler_file=, local_workers=, blocksize=, split_every=,
    storage_options=); the target of ``Trainer.train_files`` with ``engine="dask"``.
    Without a place to run, the default Client of this session (the last one
    created) is used; there must be one."""
    trainer.train_files(paths, workers, errors, **with_default_client(where))
    return trainer


def train_texts_on_dask(trainer: Trainer, texts, workers: int = 1, **where: Any) -> Trainer:
    """``trainer.train(texts)`` with the counting on a Dask cluster: the documents (any
    re-iterable of str) are read here and sent to the workers a block at a time (see
    :meth:`DaskTrainer.train`); ``where`` and the default Client as in
    :func:`train_files_on_dask` (``blocksize``: characters per block). The target of
    ``Trainer.train`` with ``engine="dask"``."""
    trainer.train(texts, workers, **with_default_client(where))
    return trainer


def _check_ngrams(options: TrainerOptions, ngrams: Counts) -> None:
    if ngrams.stage != "ngrams":
        raise ValueError("expected n-gram counts")
    mine = ngram_settings(options, ngrams.settings.get("errors", "strict"))
    if ngrams.settings != mine:
        raise ValueError(f"the n-gram counts were made with other settings: {ngrams.settings} != {mine}")


def _model_of(options: TrainerOptions, ngrams: Counts):
    """The n-gram model that tags the pieces (None with the n-gram EM seed: no tagging)."""
    _check_ngrams(options, ngrams)
    return kernels.ngram_model_from_table(ngrams.table, options.min_count) if options.tagging else None


class SavedCounts:
    """Counts saved earlier, as the training stages read them (a count source)."""

    total_bytes: int | None = None
    sample_with_ngrams = False

    def __init__(self, options: TrainerOptions, ngrams: Counts, pieces: Counts):
        self.options = options
        self.ngrams = ngrams
        self.pieces = pieces

    def describe(self, workers: int) -> str:
        return "saved counts"

    def count_ngrams(self, settings, workers, progress):
        # (the caller's table: left intact, never released)
        return ngrams.NgramPart(self.ngrams.table, self.ngrams.nbytes, None), False

    def count_pieces(self, settings, model, workers, progress):
        counts = self.pieces
        digest = model_digest(model)
        if counts.settings.get("model") != digest:
            raise ValueError(
                "the piece counts were made with another n-gram model than the one of "
                "these n-gram counts (count pieces with the merged n-gram counts of the whole corpus)"
            )
        expected = piece_settings(self.options, counts.settings.get("errors"), digest)
        if counts.settings != expected:
            raise ValueError(f"the piece counts were made with other settings: {counts.settings} != {expected}")
        return counts.part()


__all__ = [
    "DaskTrainer",
    "count_ngrams",
    "count_pieces",
    "train_from_counts",
    "train_files_on_dask",
    "train_texts_on_dask",
]
