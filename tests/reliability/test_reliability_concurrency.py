"""Reliability, part 3: concurrency.

- 8 threads sharing one Tokenizer run thousands of mixed calls (Viterbi, keyed
  sampling with both samplers, batches with their own threads, lattice queries)
  and get exactly what a serial run with the same keys gets;
- unkeyed calls from 8 threads draw distinct call numbers: together they give
  the same multiset of samples as the same number of serial calls;
- forked and spawned worker processes give the serial results too;
- a process that forks while other threads are inside the core (GIL released,
  long texts, batches on several threads) gets a working child, never a
  deadlock: every child finishes within a deadline.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import random
import signal
import threading
import time
import warnings

import pytest
from conftest import REPO

from bytepiece import Tokenizer

THREADS = 8
CALLS = 3000


def _corpus_lines() -> list:
    lines = []
    for name in ("en.heldout.txt", "zh.heldout.txt", "code.heldout.txt"):
        lines += (REPO / "corpora" / name).read_text(encoding="utf-8").splitlines(keepends=True)[:400]
    return [line for line in lines if line.strip()]


def _make_ops(n: int, seed: int = 0) -> list:
    """n calls of every kind, on texts from a few bytes to 100 KB (beyond the stack workspace)."""
    rng = random.Random(seed)
    lines = _corpus_lines()
    ops = []
    for i in range(n):
        size = rng.choice([1, 1, 1, 3, 20])
        text = "".join(rng.choice(lines) for _ in range(size))
        if rng.random() < 0.01:
            text = text * (100_000 // max(1, len(text)) + 1)
        if rng.random() < 0.1:
            text = text.encode("utf-8") + bytes([rng.randrange(256)])
        kind = rng.choice(
            ["viterbi", "sample", "sample", "legacy", "tokenize", "batch", "batch_threads", "nbest", "logz", "score"]
        )
        ops.append((kind, text, rng.choice([0.0, 0.1, 0.5, 2.0, 1e3]), (seed, i)))
    return ops


def _run_op(tok: Tokenizer, op):
    kind, text, alpha, key = op
    if kind == "viterbi":
        return tok.encode(text, add_eos=True)
    if kind == "sample":
        return tok.encode(text, alpha=alpha, key=key)
    if kind == "legacy":
        return tok.encode(text, alpha=alpha, key=key, sampler="legacy-v1")
    if kind == "tokenize":
        return tok.tokenize(text, alpha=alpha, key=key)
    if kind in ("batch", "batch_threads"):
        texts = [text, text[: len(text) // 2], text[len(text) // 3 :]] * 3
        keys = [(key, j) for j in range(len(texts))]
        return tok.encode_batch(texts, alpha=alpha, keys=keys, num_threads=3 if kind == "batch_threads" else 1)
    if kind == "nbest":
        return tok.nbest(text[:300], 3)
    if kind == "logz":
        return round(tok.log_partition(text[:2000], min(alpha, 5.0)), 6)
    pieces = tok.tokenize(text, alpha=alpha, key=key)
    return round(tok.score(text, pieces), 6)


@pytest.fixture(scope="module")
def shared(model_path):
    return Tokenizer(model_path, seed=2024)


@pytest.fixture(scope="module")
def ops():
    return _make_ops(CALLS)


@pytest.fixture(scope="module")
def serial(shared, ops):
    return [_run_op(shared, op) for op in ops]


def _threaded(tok, ops, threads=THREADS):
    results = [None] * len(ops)
    errors = []
    order = list(range(len(ops)))
    random.Random(5).shuffle(order)  # threads take the calls in another order than the serial run
    cursor = iter(order)
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker():
        try:
            start.wait()
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                results[i] = _run_op(tok, ops[i])
        except BaseException as error:  # reported below
            errors.append(error)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in pool), "a thread is stuck"
    assert not errors, errors[0]
    return results


@pytest.mark.slow
def test_eight_threads_sharing_one_tokenizer_equal_a_serial_run(shared, ops, serial):
    results = _threaded(shared, ops)
    mismatches = [i for i, (a, b) in enumerate(zip(results, serial)) if a != b]
    assert not mismatches, f"{len(mismatches)} of {len(ops)} calls differ, first {ops[mismatches[0]][:1]}"


def test_unkeyed_calls_from_threads_draw_distinct_call_numbers(model_path):
    text = "Unkeyed samples from many threads: each call draws the next call number."
    per_thread = 250
    threaded = Tokenizer(model_path, seed=77)
    results = collections.Counter()
    lock = threading.Lock()

    def worker():
        mine = [tuple(threaded.encode(text, alpha=0.3)) for _ in range(per_thread)]
        mine += [tuple(ids) for ids in threaded.encode_batch([text] * 10, alpha=0.3)]
        with lock:
            results.update(mine)

    pool = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    serial_tok = Tokenizer(model_path, seed=77)
    expected = collections.Counter(
        tuple(serial_tok.encode(text, alpha=0.3)) for _ in range(THREADS * (per_thread + 10))
    )
    assert results == expected


# ---------------------------------------------------------------------------
# Processes

_WORKER_TOK = None


def _init_worker(tok):
    global _WORKER_TOK
    _WORKER_TOK = tok


def _worker_op(op):
    return _run_op(_WORKER_TOK, op)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_worker_processes_equal_the_serial_run(method, shared, ops, serial):
    subset = ops[::6] if method == "fork" else ops[::15]
    expected = serial[::6] if method == "fork" else serial[::15]
    ctx = multiprocessing.get_context(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads alive (3.12+)
        with ctx.Pool(2, initializer=_init_worker, initargs=(shared,)) as pool:
            got = pool.map(_worker_op, subset, chunksize=8)
    assert got == expected


def _busy(tok, stop, texts):
    while not stop.is_set():
        tok.encode(texts[0])  # one long call, GIL released
        tok.encode_batch(texts[1:], alpha=0.1, keys=range(len(texts) - 1), num_threads=2)
        tok.encode(texts[0], alpha=0.2, key=1)


@pytest.mark.slow
def test_fork_while_other_threads_are_inside_the_core(shared):
    """Fork 30 times while 3 threads hammer the same tokenizer (long texts, batches
    with threads of their own). Each child encodes, samples and runs a threaded
    batch, checks the results and exits; all must finish within the deadline."""
    long_text = " ".join(_corpus_lines())[:3_000_000]
    texts = [long_text] + [line * 50 for line in _corpus_lines()[:64]]
    probe = "Children must be able to use the tokenizer right after fork."
    want_viterbi = shared.encode(probe)
    want_sample = shared.encode(probe, alpha=0.5, key=9)
    want_batch = shared.encode_batch([probe] * 200, alpha=0.5, keys=range(200), num_threads=1)
    stop = threading.Event()
    busy = [threading.Thread(target=_busy, args=(shared, stop, texts), daemon=True) for _ in range(3)]
    for t in busy:
        t.start()
    children = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for _ in range(30):
                time.sleep(random.uniform(0.0, 0.05))
                pid = os.fork()
                if pid == 0:  # child: only this thread exists
                    code = 1
                    try:
                        ok = (
                            shared.encode(probe) == want_viterbi
                            and shared.encode(probe, alpha=0.5, key=9) == want_sample
                            and shared.encode_batch([probe] * 200, alpha=0.5, keys=range(200), num_threads=2)
                            == want_batch
                            and len(shared.encode(long_text[:200_000])) > 0
                        )
                        code = 0 if ok else 3
                    finally:
                        os._exit(code)
                children.append(pid)
    finally:
        stop.set()
    deadline = time.monotonic() + 60
    statuses = {}
    while children and time.monotonic() < deadline:
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses[pid] = status
                children.remove(pid)
        time.sleep(0.02)
    for pid in children:  # stuck: a deadlock
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    for t in busy:
        t.join(timeout=60)
    assert not children, f"{len(children)} forked children deadlocked"
    assert all(os.waitstatus_to_exitcode(s) == 0 for s in statuses.values()), statuses
