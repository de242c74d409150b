"""The Dask engine: the trainer's counting jobs on a cluster's workers.

It implements the training engine interface (:mod:`bytepiece.training.engines`), so
``Trainer(engine="dask")`` and :class:`~bytepiece.distributed.DaskTrainer` run the same
stages as a local run and give a byte-identical model:

- Files are read by the workers: the driver sends byte ranges (:mod:`.blocks`).
  Documents (``Trainer.train(texts)``) cannot be, so the driver reads them, groups them
  into blocks with the local trainer's ``iter_blocks`` and scatters one block at a
  time; at most ``IN_FLIGHT_PER_THREAD`` map tasks per worker thread are unfinished, so
  the driver and the cluster hold a few blocks, never the corpus. A chunk never spans
  two documents, so the grouping changes no count.
- Each block goes through the stage's own count function, and the parts are merged in
  a tree of tasks (``split_every`` parts per task) on the workers, submitted as the
  map results come in; only the root comes back to the driver. Merging is integer
  addition and the bottom of a union of bottom-k samples, so the shape of the tree does
  not matter. A merge task never changes its inputs (they are other tasks' results).
- The n-gram model, the piece job's shared input, is scattered to every worker once.
- The two counting stages stay apart (the EM sample is drawn in the piece pass), so
  that each stage's counts can be saved and merged (:mod:`.counts`).

Without a place to run, the same tasks run here, block by block (what the count files
need on a machine without a cluster).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..corpus import ERROR_MODES, iter_blocks, reiterable_texts
from ..progress import Progress
from ..training.engines import CountingJob, Engine, Runner
from .blocks import DEFAULT_BLOCKSIZE, block_documents, list_blocks
from .cluster import PLACES, check_options, connect, names_no_place, with_default_client

#: Tables merged by one reduce task.
DEFAULT_SPLIT_EVERY = 8
#: Unfinished map tasks per worker thread (so per block held by the cluster) at any time.
IN_FLIGHT_PER_THREAD = 2


class TextBlocks:
    """Trainer.train's documents as blocks for the tasks: lists of str of about
    block_chars characters, grouped by the local trainer's own iter_blocks (a block is
    made only when a task is about to take it; the texts are read anew on each pass)."""

    errors = "strict"
    total_bytes = None
    sources: list[str] = []

    def __init__(self, texts, block_chars: int):
        self.source = reiterable_texts(texts)
        self.block_chars = int(block_chars)

    def blocks(self) -> Iterator[list]:
        return iter_blocks(self.source, self.block_chars)

    def describe(self) -> str:
        return f"{self.source.describe()} sent in blocks of {self.block_chars} characters"


class FileBlocks:
    """Files as byte ranges, read by the tasks."""

    def __init__(self, paths, errors: str, blocksize: int, storage_options: dict):
        if errors not in ERROR_MODES:
            raise ValueError(f"errors must be one of {ERROR_MODES}, not {errors!r}")
        self.errors = errors
        self.ranges = list_blocks(paths, blocksize, storage_options)
        self.total_bytes = sum(b[2] for b in self.ranges)
        self.sources = list(dict.fromkeys(b[0] for b in self.ranges))

    def blocks(self) -> list[tuple[str, int, int]]:
        return self.ranges

    def describe(self) -> str:
        return f"{len(self.sources)} file(s), {len(self.ranges)} block(s), {self.total_bytes / 1e6:.1f} MB"


class DaskEngine(Engine):
    """Counting on a Dask cluster: one of ``client``, ``address``, ``scheduler_file``,
    ``local_workers`` (with none, the tasks run in this process), ``blocksize`` (bytes a
    task reads; for documents, characters the driver sends per task), ``split_every``
    (parts per merge task) and ``storage_options`` (fsspec options for URLs)."""

    name = "dask"
    sample_with_ngrams = False

    def __init__(
        self,
        client=None,
        address: str | None = None,
        scheduler_file=None,
        local_workers: int | None = None,
        blocksize: int = DEFAULT_BLOCKSIZE,
        split_every: int = DEFAULT_SPLIT_EVERY,
        storage_options: dict | None = None,
    ):
        check_options({"blocksize": blocksize, "split_every": split_every})
        places = (client, address, scheduler_file, local_workers)
        self.places = dict(zip(PLACES, places))
        self.blocksize = int(blocksize)
        self.split_every = int(split_every)
        self.storage_options = dict(storage_options or {})

    @classmethod
    def from_call_options(cls, options: dict[str, Any]) -> DaskEngine:
        """The engine of ``Trainer.train(..., **options)`` with ``engine="dask"``: without a
        place to run, the session's default Client (there must be one)."""
        return cls().with_options(with_default_client(options))

    def with_options(self, options: dict[str, Any]) -> DaskEngine:
        """A copy with the options of one call: its place to run, if it names one, replaces
        this engine's; its block sizes and storage options replace this engine's."""
        check_options(options)
        if not options:
            return self
        places = self.places if names_no_place(options) else {k: options.get(k) for k in PLACES}
        return DaskEngine(
            **places,
            blocksize=options.get("blocksize") or self.blocksize,
            split_every=options.get("split_every") or self.split_every,
            storage_options=options.get("storage_options") or self.storage_options,
        )

    def corpus_of_texts(self, texts, block_chars: int) -> TextBlocks:
        return TextBlocks(texts, self.blocksize)  # (the blocks the driver sends are this engine's)

    def corpus_of_files(self, paths, errors: str, block_chars: int) -> FileBlocks:
        return FileBlocks(paths, errors, self.blocksize, self.storage_options)

    @contextmanager
    def running(self) -> Iterator[DaskRunner]:
        if names_no_place(self.places):
            yield DaskRunner(None, self)
            return
        client, close = connect(**self.places)
        try:
            yield DaskRunner(client, self)
        finally:
            close()


class DaskRunner(Runner):
    """A Dask engine connected to its cluster (client None: the tasks run here)."""

    def __init__(self, client, engine: DaskEngine):
        self.client = client
        self.engine = engine

    def describe(self, workers: int) -> str:
        if self.client is None:
            return "this process"
        return f"{len(self.client.scheduler_info()['workers'])} Dask worker(s)"

    def reduce(self, job: CountingJob, corpus, workers: int, progress: Progress):
        blocks = corpus.blocks()
        if isinstance(blocks, list) and not blocks:
            return None  # (no files: no model to send)
        scatter = self.client is not None and job.shared is not None
        shared = self.client.scatter(job.shared, broadcast=True, hash=False) if scatter else job.shared
        try:
            return map_reduce(
                self.client, blocks, job, shared, corpus.errors, self.engine.storage_options, self.engine.split_every
            )
        finally:
            if scatter:
                shared.release()


def count_task(count_block, errors: str, storage_options: dict, block, shared):
    """A map task: one block (documents, or a file range read here) counted into a part."""
    documents, _, _ = block_documents(block, errors, storage_options)
    return count_block(shared, documents)


def merge_task(merge, parts: list):
    """A reduce task: the parts merged into a new one (a task's inputs are not changed)."""
    return merge(parts, False)


def map_reduce(
    client,
    blocks,
    job: CountingJob,
    shared,
    errors: str,
    storage_options: dict,
    split_every: int = DEFAULT_SPLIT_EVERY,
    in_flight: int | None = None,
):
    """The merge of the job's parts of every block (None if there is none): on the
    cluster, or here, one block at a time, when client is None.

    ``blocks`` is any iterable, consumed as the tasks go: at most ``in_flight`` map tasks
    (by default IN_FLIGHT_PER_THREAD per worker thread) are unfinished at a time, so
    neither the driver nor the cluster holds more blocks than that. A block of documents
    (a list) is scattered to a worker and counted there; a file range is read by its
    task. Results merge on the workers as soon as ``split_every`` of them are at hand
    (a tree, each level holding fewer than that); only the root comes to the driver."""
    if client is None:
        merged = None
        for block in blocks:
            part = count_task(job.count_block, errors, storage_options, block, shared)
            merged = merge_task(job.merge, [part] if merged is None else [merged, part])
        return merged
    from distributed import wait

    def submit(func, *args, kind: str):
        # (keys named after the stage: "ngrams_task-...", "merge_pieces_task-...")
        return client.submit(func, *args, key=f"{kind}-{uuid.uuid4().hex}")

    k = max(2, int(split_every))
    limit = max(1, int(in_flight or IN_FLIGHT_PER_THREAD * sum(client.nthreads().values())))
    levels: list[list] = []  # levels[i]: results that each merge k**i blocks
    running: set = set()  # map tasks not finished yet
    rest: list = []

    def add(future, level: int = 0) -> None:
        while True:
            if level == len(levels):
                levels.append([])
            levels[level].append(future)
            if len(levels[level]) < k:
                return
            future = submit(merge_task, job.merge, levels[level], kind=f"merge_{job.name}_task")
            levels[level] = []
            level += 1

    try:
        for block in blocks:
            while len(running) >= limit:
                with client.as_current():  # (wait() asks for the default Client)
                    done = wait(running, return_when="FIRST_COMPLETED").done
                for f in done:
                    if f.status == "error":
                        f.result()  # a worker's error stops the run now, not at the end
                running -= done
            if isinstance(block, list):
                block = client.scatter([block], hash=False)[0]  # (a list would scatter item by item)
            future = submit(
                count_task, job.count_block, errors, storage_options, block, shared, kind=f"{job.name}_task"
            )
            del block  # the cluster has it; the driver keeps no block
            running.add(future)
            add(future)
        rest = [f for level in levels for f in level]
        levels.clear()
        running.clear()
        if not rest:
            return None
        while len(rest) > 1:
            rest = [
                submit(merge_task, job.merge, rest[i : i + k], kind=f"merge_{job.name}_task")
                for i in range(0, len(rest), k)
            ]
        return rest[0].result()
    finally:
        levels.clear()
        running.clear()
        rest = []  # dropping the futures releases them on the cluster
