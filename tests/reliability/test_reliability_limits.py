"""Reliability: work and memory that must not run away.

- the batch helper pool is capped and its idle helpers exit;
- sample_distinct grows linearly with k (and draws exactly what it always drew);
- `sample --check` enumerates in time and memory bounded by what it lists, and says
  plainly when a text is too long;
- decode streams one long line; encode and jsonl decode stop at a line-length limit
  with an error naming the file and line.
"""

from __future__ import annotations

import threading
import time

import pytest
from conftest import VENDORED_MODEL

from bytepiece import Tokenizer, _parallel


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(VENDORED_MODEL, seed=5)


# ---------------------------------------------------------------------------
# the helper pool


def _cap() -> int:
    return getattr(_parallel, "max_helpers", lambda: 8)()  # (8: what a version without one is held to)


def _new_threads(before: set) -> list:
    return [t for t in threading.enumerate() if t.ident not in before and t.name == "bytepiece-helper"]


def test_the_helper_pool_is_capped_and_idle_helpers_exit(tok, monkeypatch):
    monkeypatch.setattr(_parallel, "IDLE_SECONDS", 0.3, raising=False)
    monkeypatch.setattr(_parallel, "_pool", _parallel.HelperPool())  # a pool of this test's own
    before = {t.ident for t in threading.enumerate()}
    texts = [f"line {i}: some text to encode, with words and numbers {i * 7}\n" * 20 for i in range(400)]
    expected = tok.encode_batch(texts, num_threads=1)
    assert tok.encode_batch(texts, num_threads=300) == expected
    ids, rows = tok.encode_batch(texts, num_threads=1000, as_numpy=True)
    assert [ids[rows[i] : rows[i + 1]].tolist() for i in range(len(texts))] == expected
    started = _new_threads(before)
    assert 1 <= len(started) <= _cap(), len(started)
    deadline = time.monotonic() + 20
    while _new_threads(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _new_threads(before) == [], "idle helpers did not exit"
    # and the pool starts helpers again for the next batch
    assert tok.encode_batch(texts, num_threads=3) == expected


def test_a_capped_pool_still_runs_every_task(monkeypatch):
    monkeypatch.setattr(_parallel, "IDLE_SECONDS", 0.3, raising=False)
    pool = _parallel.HelperPool()
    done = []
    lock = threading.Lock()

    def task():
        with lock:
            done.append(1)

    pool.submit(task, 10_000)
    deadline = time.monotonic() + 20
    while len(done) < min(10_000, _cap()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(done) == _cap()
    assert pool._size <= _cap()
    while pool._size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool._size == 0
