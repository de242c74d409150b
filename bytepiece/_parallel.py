"""Helper threads for batches: a pool kept between calls, and how a batch is cut up.

Why it is built this way: the core segments without the GIL, so threads of this
process are what a batch runs on. Starting a thread per batch costs a round trip
through the scheduler (``Thread.start`` waits until the new thread runs), which is a
noticeable share of a batch of thousands of short lines, so helper threads are kept
between batches, each sleeping on a queue. The pool is capped (a few times the
usable cores: more threads than cores only add memory and switching, since the
segmenting does not wait on anything) and a helper idle for ``IDLE_SECONDS`` exits,
so that a batch asking for a thousand threads leaves neither a thousand threads nor
their stacks behind. A forked child has none of its parent's threads: it starts
with a new, empty pool. The pool is made, and threading and queue imported, when a
batch first needs helpers: import bytepiece loads this module, and a process that
encodes a line at a time never starts a thread.
"""

from __future__ import annotations

import _thread
import os
from collections.abc import Callable, Sequence

from .keys import exact_integer

#: Batches smaller than this many bytes per thread are not worth a thread.
MIN_BYTES_PER_THREAD = 1 << 16
#: The smallest block of texts handed to one thread.
BLOCK_TEXTS = 64


#: The most helper threads the pool holds: this many per usable core, at least MIN_HELPERS.
HELPERS_PER_CORE = 2
MIN_HELPERS = 4
#: A helper with no task for this long exits (the next batch starts a new one).
IDLE_SECONDS = 30.0


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def max_helpers() -> int:
    return max(MIN_HELPERS, HELPERS_PER_CORE * usable_cores())


class HelperPool:
    """Daemon threads kept between batches, each running the tasks put on one queue.

    The pool grows to the most helpers a batch asked for, up to :func:`max_helpers`;
    a task asked of more helpers than that runs on fewer (every task here lets the
    caller go on without it). A helper that has waited ``IDLE_SECONDS`` for a task
    exits."""

    def __init__(self) -> None:
        import queue

        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = _thread.allocate_lock()
        self._size = 0

    @property
    def size(self) -> int:
        """Helper threads alive (or starting)."""
        return self._size

    def _serve(self) -> None:
        import queue

        while True:
            try:
                task = self._tasks.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:  # (submit puts its tasks under the lock: none is stranded)
                    if self._tasks.empty():
                        self._size -= 1
                        return
                continue
            try:
                task()
            except BaseException:  # a task reports its own errors; keep the helper alive
                pass
            del task  # (release what the task holds before waiting again)

    def submit(self, task: Callable[[], object], helpers: int) -> None:
        """Run task() on `helpers` threads of the pool (at most max_helpers(); soon; the
        caller does not wait)."""
        import threading

        helpers = min(helpers, max_helpers())
        if helpers <= 0:
            return
        with self._lock:
            while self._size < helpers:
                threading.Thread(target=self._serve, name="bytepiece-helper", daemon=True).start()
                self._size += 1
            for _ in range(helpers):
                self._tasks.put(task)


_pool: HelperPool | None = None  # (made by the first batch that needs helpers)
_pool_lock = _thread.allocate_lock()


def submit(task: Callable[[], object], helpers: int) -> None:
    """Run task() on `helpers` threads of this process's pool (soon; the caller does not wait)."""
    pool = _pool
    if pool is None:
        pool = _make_pool()
    pool.submit(task, helpers)


def _make_pool() -> HelperPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = HelperPool()
        return _pool


def run_parallel(run_block: Callable[..., None], blocks: Sequence[tuple], threads: int) -> None:
    """run_block(*block) for every block, on this thread and threads - 1 helpers; returns
    when every block that was started has finished; re-raises the first error."""
    import threading

    errors: list = []
    done = threading.Condition()
    state = {"next": 0, "running": 0}

    def claim():
        with done:
            i = state["next"]
            if errors or i >= len(blocks):
                return None
            state["next"] = i + 1
            state["running"] += 1
            return blocks[i]

    def worker() -> None:
        while True:
            block = claim()
            if block is None:
                return
            try:
                run_block(*block)
            except BaseException as error:  # re-raised in the calling thread
                errors.append(error)
            finally:
                with done:
                    state["running"] -= 1
                    done.notify_all()

    # A helper that wakes after the blocks are all claimed finds nothing to do, so only
    # blocks in progress are waited for, never a helper that has not started.
    submit(worker, threads - 1)
    worker()
    with done:
        while state["running"]:
            done.wait()
    if errors:
        raise errors[0]


def blocks(n: int, threads: int) -> list[tuple[int, int, int]]:
    """(index, lo, hi) blocks of n texts for the threads to take one at a time.

    Every block costs a hand-over of the GIL, so blocks are few and large; on several
    threads they shrink as the batch goes on (each a 1/(2 * threads) share of the texts
    left, at least BLOCK_TEXTS), so that the last ones are small and no thread is left
    working alone on a large one at the end. One thread takes quarters (bounding the
    memory of a block)."""
    out: list[tuple[int, int, int]] = []
    lo = 0
    while lo < n:
        if threads > 1:
            size = max(BLOCK_TEXTS, -(-(n - lo) // (2 * threads)))
        else:
            size = max(BLOCK_TEXTS, -(-n // 4))
        out.append((len(out), lo, min(lo + size, n)))
        lo += size
    return out


def thread_count(num_threads: int | None, texts: Sequence) -> int:
    """The threads a batch of texts runs on: num_threads when given, else as many cores as
    the batch has MIN_BYTES_PER_THREAD for."""
    if num_threads is not None:
        try:
            count = exact_integer(num_threads)  # (numpy integers too; not 1.5, nor "2")
        except TypeError as error:
            raise TypeError(f"num_threads must be an integer, not {error}") from None
        if count < 1:
            raise ValueError(f"num_threads must be >= 1, not {count}")
        # (more threads than the pool has helpers, plus this one, would only wait)
        return min(count, max_helpers() + 1)
    cores = usable_cores()
    size = sum(len(t) for t in texts)
    return max(1, min(cores, size // MIN_BYTES_PER_THREAD))


def _new_pool_in_child() -> None:
    global _pool, _pool_lock
    _pool = None  # the parent's helper threads do not exist in the child
    _pool_lock = _thread.allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_pool_in_child)
