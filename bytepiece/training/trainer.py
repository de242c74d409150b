"""``Trainer``: BytePiece 0.6.3's trainer interface over the training pipeline.

>>> trainer = Trainer(order=6, max_vocab_size=8000, verbose=False)
>>> trainer.train(texts, workers=2)
>>> trainer.save("my.model")

The class only holds what a run needs and what it produced: its options (checked on
construction: :class:`~bytepiece.training.options.TrainerOptions`), and afterwards
``pieces`` and ``stats``. The work is done by the stages
(:mod:`bytepiece.training.pipeline`) through an execution engine
(:mod:`bytepiece.training.engines`), chosen by the ``engine`` option or, for one call,
by engine options such as Dask's ``client=``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from ..atomic import check_output
from ..corpus import ERROR_MODES, FileSelection, reiterable_texts, select_files
from ..model import Vocabulary, save_model, vocabulary_from_counts
from .engines import Engine, engine_for_call
from .options import (
    TRAINER_ARGUMENTS,
    TrainerError,
    TrainerOptions,
    checked_workers,
    option_value,
    options_from_arguments,
    with_argument,
)
from .pipeline import CorpusCounts, CountSource, run_stages


class Trainer:
    """BytePiece's unsupervised Unigram trainer, with a Unigram EM refinement.

    The first six arguments are BytePiece 0.6.3's, and ``em=False`` reproduces 0.6.3's
    algorithm. What every argument does is explained with the options it becomes:
    :class:`~bytepiece.training.options.TrainerOptions` (``em`` is its ``use_em``) and,
    for the ``em_*`` arguments without their prefix,
    :class:`~bytepiece.training.options.EmOptions`. The arguments stay readable (and
    settable, checked again) as attributes: ``trainer.max_vocab_size``, ``trainer.em_shrink``...

    >>> t = Trainer(max_vocab_size=300, min_count=1, verbose=False)
    >>> t.train(["hello world\\n"] * 20)
    >>> len(t.pieces[0]) <= 297
    True
    """

    options: TrainerOptions
    #: one {piece: count} per size (largest first), once trained
    pieces: list[dict[bytes, int]]
    #: what the last run measured: corpus_bytes, ngrams, ngram_budget_hit, seconds, ...;
    #: after train_files also files (how many were read) and skipped_binary (the files
    #: in folders left out as binary)
    stats: dict

    # (The em_* parameters mirror EmOptions' fields, one for one and alike by shape, on
    # purpose: the public signature spells every option out.)
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
        normalization: str | None = None,
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
        ngram_memory: int | None = None,
        block_chars: int = 1_000_000,
        engine: str | Engine = "thread",
        verbose: bool = True,
    ):
        arguments = {name: value for name, value in locals().items() if name in TRAINER_ARGUMENTS}
        object.__setattr__(self, "options", options_from_arguments(arguments))
        self.pieces = []
        self.stats = {}

    # -- the arguments as attributes ------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # (only for names not found otherwise: the constructor's arguments)
        if name in TRAINER_ARGUMENTS and "options" in self.__dict__:
            return option_value(self.options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in TRAINER_ARGUMENTS:
            object.__setattr__(self, "options", with_argument(self.options, name, value))
        else:
            object.__setattr__(self, name, value)

    # -- public API ------------------------------------------------------------
    def train(self, texts: Iterable[str], workers: int = 1, batch_size: int = 1000, **engine_options: Any) -> None:
        """Train on documents: any re-iterable of str (never held in memory; read once, or
        twice with ``em=False`` or ``em_seed="tagged"``, which tag the corpus in a second pass).

        ``batch_size`` is accepted for 0.6.3 compatibility; work is cut into
        blocks of ``block_chars`` characters instead.
        With ``engine="dask"`` or any Dask option (``client``, ``address``,
        ``scheduler_file``, ``local_workers``, ``blocksize``: characters per
        block, ``split_every``) the counting runs on a Dask cluster: the texts are
        read here and sent to the workers a block at a time, a bounded number in
        flight (:mod:`bytepiece.distributed`); the model is the same.

        >>> Trainer(engine="dask", verbose=False).train(texts, client=client)
        """
        reiterable_texts(texts)  # (bad texts are refused before a cluster is looked for)
        engine = engine_for_call(self.options.engine, engine_options)
        self.train_corpus(engine, engine.corpus_of_texts(texts, self.options.block_chars), workers)

    def train_files(
        self,
        paths,
        workers: int = 1,
        errors: str = "strict",
        *,
        include: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        **engine_options: Any,
    ) -> None:
        """Train on files and folders, streaming.

        A file named in ``paths`` is always read. A folder gives every file under it
        except hidden ones (and those in hidden or ``__pycache__`` folders), files that
        look binary (a NUL byte in the first 8 KB, or a gzip, zip, PNG, JPEG, PDF...
        signature: skipped, and listed in ``stats["skipped_binary"]``), and, with
        ``include`` / ``exclude`` (fnmatch globs, one or a list), the files matching no
        ``include`` pattern or some ``exclude`` pattern. Patterns are matched against
        the path relative to the folder given and against the file name (see
        :func:`bytepiece.corpus.select_files`). A folder that yields no file is an
        error, raised before any work. ``stats["files"]`` counts the files read.

        >>> t = Trainer(max_vocab_size=8000, verbose=False)
        >>> t.train_files(["corpora/"], include="*.train.txt", exclude="zh.*")
        >>> t.stats["files"]
        2

        ``errors``: "strict" (invalid UTF-8 raises an error naming the file and
        byte offset), "replace" (U+FFFD), or "bytes" (train on the raw bytes).
        With ``engine="dask"`` or any Dask option (``client``, ``address``,
        ``scheduler_file``, ``local_workers``, ``blocksize``, ``split_every``,
        ``storage_options``) the counting runs on a Dask cluster whose workers
        read the files (:mod:`bytepiece.distributed`); the model is the same.
        URLs (``s3://...``) are listed by the cluster's engine as they are: the
        patterns apply to local folders only.
        """
        if errors not in ERROR_MODES:
            raise ValueError(f"errors must be one of {ERROR_MODES}, not {errors!r}")
        engine = engine_for_call(self.options.engine, engine_options)
        named, selection, urls = _select_local_files(paths, include, exclude)
        corpus = engine.corpus_of_files(named, errors, self.options.block_chars)
        self.train_corpus(engine, corpus, workers)
        files = len(selection.files)
        if urls:  # (their files are known to the engine's corpus only)
            files = len(getattr(corpus, "sources", selection.files + urls))
        self.stats.update(files=files, skipped_binary=list(selection.skipped_binary))

    def train_corpus(self, engine: Engine, corpus, workers: int) -> None:
        """Train on a corpus that ``engine`` made (``engine.corpus_of_texts`` /
        ``corpus_of_files``), counting with that engine."""
        workers = checked_workers(workers)
        with engine.running() as runner:
            self.train_counts(CorpusCounts(runner, corpus, engine.sample_with_ngrams), workers)

    def train_counts(self, source: CountSource, workers: int = 1) -> None:
        """Run the stages on the counts of ``source`` (a corpus being counted, or counts
        saved earlier: see :func:`bytepiece.distributed.train_from_counts`); ``workers``
        threads prune and run the EM here."""
        self.pieces, self.stats = run_stages(self.options, source, workers)

    def save(self, path) -> None:
        """Write the model(s) in BytePiece 0.6.3's JSON format, atomically, recording the
        training text's normalisation (a plain 0.6.3 file when it is NFC). With several
        sizes, one file per size: ``path.SIZE``; every one is checked (a folder in the
        way, no folder to hold it) before any is written, so that a bad one does not
        leave the others written."""
        if not self.pieces:
            raise TrainerError("nothing to save: train first")
        path = os.fspath(path)
        if len(self.pieces) == 1:
            paths = [path]
        else:
            paths = [f"{path}.{size}" for size in self.options.max_vocab_size]
        vocabularies = self.vocabularies
        for p in paths:
            check_output(p)
        for vocab, p in zip(vocabularies, paths):
            save_model(p, vocab)

    @property
    def vocabularies(self) -> list[Vocabulary]:
        """The trained models (largest first), numbered as 0.6.3 numbers pieces and
        recording the training text's normalisation: what ``save`` writes."""
        form = self.options.normalization
        return [vocabulary_from_counts(pieces).replace(normalization=form) for pieces in self.pieces]


def _is_url(path: str) -> bool:
    return "://" in path or "::" in path


def _select_local_files(paths, include, exclude) -> tuple[list[str], FileSelection, list[str]]:
    """(the paths with each local folder replaced by the files chosen in it, the
    selection of the local paths, the URLs left as they are)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    named: list[str] = []
    urls: list[str] = []
    selection = FileSelection()
    for p in paths:
        p = os.fsdecode(os.fspath(p))
        if _is_url(p):
            if include is not None or exclude is not None:
                raise TrainerError(f"{p}: include= and exclude= select files in local folders, not in URLs")
            named.append(p)
            urls.append(p)
            continue
        chosen = select_files([p], include, exclude)
        named.extend(chosen.files)
        selection.files.extend(chosen.files)
        selection.skipped_binary.extend(chosen.skipped_binary)
    return named, selection, urls
