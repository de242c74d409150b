"""Where the counting stages run: the execution engines.

A counting stage is a :class:`CountingJob`: a function that counts one block of
documents into a *part* (tables, bytes read, a bottom-k sample) and a function that
merges parts. An :class:`Engine` turns a corpus into blocks and reduces the job over
them; the trainer asks its engine and never depends on how it works:

- :class:`LocalEngine` maps the count over the blocks on ``workers`` threads (the
  Cython loops release the GIL) or on a fork pool of processes, in block order with at
  most ``workers + 1`` blocks in flight, and folds each part into the first as it
  arrives (merging in place: the parts are its own);
- the Dask engine (``bytepiece.distributed.DaskEngine``) sends the blocks to a
  cluster and merges the parts in a tree of tasks there, never in place.

Both give the same counts: merging is integer addition and keeping the bottom of a
union of bottom-k samples, so neither the order nor the grouping of merges matters.
The job's functions are module-level functions with their settings bound by
``functools.partial``, so they pickle by reference for processes and clusters.

The Dask engine lives in an optional subpackage that imports this one; it is found
by module name when asked for (:func:`engine_for_call`), so the training package never
imports it.
"""

from __future__ import annotations

import collections
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any, NamedTuple

from ..corpus import FileSource, iter_blocks, reiterable_texts
from ..progress import Progress

#: Engines that live in optional subpackages: (module, class), imported when asked for.
ENGINE_PLUGINS = {"dask": ("bytepiece.distributed", "DaskEngine")}
LOCAL_KINDS = ("thread", "process")


class CountingJob(NamedTuple):
    """One counting stage, as an engine runs it."""

    #: "ngrams" or "pieces" (names the tasks on a cluster)
    name: str
    #: count_block(shared, documents) -> part; parts have an ``nbytes`` field
    count_block: Callable[[Any, list], Any]
    #: merge(parts, reuse_first) -> part; with reuse_first the first part may be changed
    #: and returned (a local fold), otherwise no part is changed (a task's inputs)
    merge: Callable[[list, bool], Any]
    #: status(merged part) -> progress text, such as ", 12 MB table"
    status: Callable[[Any], str]
    #: a read-only input of every count call (the n-gram model): sent to each worker once
    shared: Any = None


class Engine(ABC):
    """Runs counting jobs over a corpus (see the module docstring)."""

    name: str
    #: Whether the n-gram pass may draw the EM sample too, so that an EM run with the
    #: n-gram seed reads the corpus once; engines whose stages save their counts apart
    #: draw it in the piece pass.
    sample_with_ngrams: bool = True

    @abstractmethod
    def with_options(self, options: dict) -> Engine:
        """This engine with the options of one call (``Trainer.train(..., **options)``)."""

    @abstractmethod
    def corpus_of_texts(self, texts, block_chars: int):
        """A corpus (``blocks()``, ``total_bytes``, ``describe()``) of documents: any
        re-iterable of str, read anew on each pass."""

    @abstractmethod
    def corpus_of_files(self, paths, errors: str, block_chars: int):
        """A corpus of files and folders (see :class:`~bytepiece.corpus.FileSource`)."""

    @abstractmethod
    def running(self) -> AbstractContextManager[Runner]:
        """The engine ready to run jobs for the length of one training run."""


class Runner(ABC):
    """An engine while it runs (for Dask: connected to its cluster)."""

    @abstractmethod
    def reduce(self, job: CountingJob, corpus, workers: int, progress: Progress):
        """The merge of the parts of every block of the corpus (None if it has none)."""

    @abstractmethod
    def describe(self, workers: int) -> str:
        """Where the work runs, for the log ("2 worker(s)")."""


# ---------------------------------------------------------------------------
# Local


class LocalCorpus:
    """Documents (TextSource or FileSource) cut into blocks of about block_chars characters."""

    def __init__(self, source, block_chars: int):
        self.source = source
        self.block_chars = int(block_chars)
        self.total_bytes = source.total_bytes

    def blocks(self) -> Iterator[list]:
        return iter_blocks(self.source, self.block_chars)

    def describe(self) -> str:
        return self.source.describe()


class LocalEngine(Engine, Runner):
    """The counting on ``workers`` threads ("thread") or forked processes ("process")."""

    def __init__(self, kind: str = "thread"):
        if kind not in LOCAL_KINDS:
            raise ValueError(f"a local engine runs on 'thread' or 'process', not {kind!r}")
        self.kind = kind
        self.name = kind

    def with_options(self, options: dict) -> Engine:
        # (a cluster option alone picks the Dask engine, as Trainer.train documents)
        return plugin_engine("dask").from_call_options(options) if options else self

    def corpus_of_texts(self, texts, block_chars: int) -> LocalCorpus:
        return LocalCorpus(reiterable_texts(texts), block_chars)

    def corpus_of_files(self, paths, errors: str, block_chars: int) -> LocalCorpus:
        return LocalCorpus(FileSource(paths, errors), block_chars)

    @contextmanager
    def running(self) -> Iterator[LocalEngine]:
        yield self

    def describe(self, workers: int) -> str:
        return f"{workers} worker(s)"

    def reduce(self, job: CountingJob, corpus, workers: int, progress: Progress):
        merged = None
        count = partial(job.count_block, job.shared)
        for part in map_in_order(count, corpus.blocks(), workers, self.kind):
            merged = part if merged is None else job.merge([merged, part], True)
            progress.advance(part.nbytes, partial(job.status, merged))
            del part  # (merged: its table is freed before the next one arrives)
        return merged


def map_in_order(func: Callable, items: Iterable, workers: int, kind: str = "thread") -> Iterator:
    """func over items, results in order; at most workers + 1 items in flight.

    kind "thread": threads of this process (for functions that release the GIL);
    kind "process": a fork pool. func reaches each forked worker once, through the
    pool's initializer (inherited by the fork, never pickled: it may hold an n-gram
    model); each task then sends only its item."""
    if workers <= 1:
        for item in items:
            yield func(item)
        return
    submit: Callable[[Any], Any]
    result: Callable[[Any], Any]
    if kind == "thread":
        executor = ThreadPoolExecutor(workers)
        submit = partial(executor.submit, func)
        result = _future_result
    else:
        import multiprocessing  # (only this kind needs it: a lighter import otherwise)

        pool = multiprocessing.get_context("fork").Pool(workers, initializer=_install_in_worker, initargs=(func,))
        submit = lambda item: pool.apply_async(_run_in_worker, (item,))
        result = _async_result
    try:
        pending: collections.deque = collections.deque()
        for item in items:
            pending.append(submit(item))
            while len(pending) > workers:
                yield result(pending.popleft())
        while pending:
            yield result(pending.popleft())
    finally:
        if kind == "thread":
            executor.shutdown(wait=True, cancel_futures=True)
        else:
            pool.terminate()
            pool.join()


def map_in_threads(func: Callable, items: Iterable, workers: int) -> Iterator:
    """func over items on ``workers`` threads (for functions that release the GIL), results
    in order, at most workers + 1 of them held at a time."""
    return map_in_order(func, items, workers, "thread")


def _future_result(future):
    return future.result()


def _async_result(async_result):
    return async_result.get()


class _WorkerFunction:
    """The function of a forked pool worker, set once by the pool's initializer."""

    func: Callable | None = None


def _install_in_worker(func: Callable) -> None:
    _WorkerFunction.func = func


def _run_in_worker(item):
    func = _WorkerFunction.func
    assert func is not None, "the pool initializer installs the block function"
    return func(item)


# ---------------------------------------------------------------------------
# Choosing an engine


def plugin_engine(name: str) -> Any:
    """The engine class of an optional subpackage (ENGINE_PLUGINS)."""
    module, attr = ENGINE_PLUGINS[name]
    return getattr(importlib.import_module(module), attr)


def engine_for_call(spec: str | Engine, options: dict) -> Engine:
    """The engine of one training call: ``spec`` is the trainer's ``engine`` option (a
    name or a configured engine), ``options`` the call's engine options (Dask's
    ``client=``, ``blocksize=``, ...; any of them picks Dask)."""
    if isinstance(spec, Engine):
        return spec.with_options(options)
    if options or spec in ENGINE_PLUGINS:
        return plugin_engine("dask").from_call_options(options)
    return LocalEngine(spec)
