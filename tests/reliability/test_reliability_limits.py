"""Reliability: work and memory that must not run away.

- the batch helper pool is capped and its idle helpers exit;
- sample_distinct grows linearly with k (and draws exactly what it always drew);
- `sample --check` enumerates in time and memory bounded by what it lists, and says
  plainly when a text is too long;
- decode streams one long line; encode and jsonl decode stop at a line-length limit
  with an error naming the file and line.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, VENDORED_MODEL

from bytepiece import Tokenizer, _parallel, distinct, reference
from bytepiece._core import queries as _queries
from bytepiece.cli import main
from bytepiece.model import FIRST_PIECE_ID
from bytepiece.reference import enumerate_segmentations

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


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


# ---------------------------------------------------------------------------
# sample_distinct


class _PreviousWalk:
    """sample_distinct's walk as it was before the tree of drawn suffixes: every branch
    that holds drawn paths summed again for every draw (O(k^2 n)). The reference the
    linear walk must agree with, bit for bit."""

    def __init__(self, edges_at, data, alpha, forward, logz):
        self.edges_at, self.data, self.alpha, self.forward, self.logz = edges_at, data, alpha, forward, logz
        self.memo = {}

    def edges(self, e):
        return self.edges_at.get(e, [])

    def _branch(self, s, logp, suffix, paths, depth):
        if not paths:
            return self.forward[s] + self.alpha * (logp + suffix) - self.logz
        if s == 0:
            return -math.inf
        name = paths[0][: depth + 1]
        got = self.memo.get(name)
        if got is None:
            suffix = suffix + logp
            terms = []
            for s2, lp2 in self.edges(s):
                sub = [p for p in paths if p[depth + 1] == s2]
                terms.append(self._branch(s2, lp2, suffix, sub, depth + 1))
            got = self.memo[name] = distinct._logsumexp(terms)
        return got

    def residual(self, drawn):
        e = len(self.data)
        if e == 0:
            return -math.inf if drawn else 0.0
        self.memo = {}
        return distinct._logsumexp(
            [self._branch(s, lp, 0.0, [p for p in drawn if p[0] == s], 0) for s, lp in self.edges(e)]
        )

    def draw(self, drawn, rng):
        e = len(self.data)
        self.memo = {}
        paths = list(drawn)
        cuts, chosen = [], []
        suffix = 0.0
        depth = 0
        while e > 0:
            options = self.edges(e)
            weights = [self._branch(s, lp, suffix, [p for p in paths if p[depth] == s], depth) for s, lp in options]
            top = max(weights)
            probs = np.exp(np.array(weights) - top)
            j = int(rng.choice(len(options), p=probs / probs.sum()))
            s, lp = options[j]
            paths = [p for p in paths if p[depth] == s]
            cuts.append(s)
            chosen.append(lp)
            suffix = suffix + lp
            depth += 1
            e = s
        score = 0.0
        for lp in reversed(chosen):
            score = score + lp
        return tuple(cuts), score


def _previous_sample_distinct(lattice, data, k, alpha, seed_word, key_word, logprobs, cuts=None, banned=None):
    n = len(data)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed_word, key_word, 0x5D157])))
    forward = _queries.forward_log(lattice, data, alpha, cuts=cuts, banned=banned).tolist()
    logz = forward[n]
    starts, ends, values = _queries.edges(lattice, data, cuts=cuts, banned=banned)
    edges_at = {}
    for s, e, lp in zip(starts.tolist(), ends.tolist(), logprobs[values].tolist()):
        edges_at.setdefault(e, []).append((s, lp))
    walk = _PreviousWalk(edges_at, data, alpha, forward, logz)
    drawn, results = [], []
    gumbel = float(rng.gumbel())
    log_left = 0.0
    while len(drawn) < k and log_left > -math.inf:
        path, score = walk.draw(drawn, rng)
        drawn.append(path)
        bounds = [n, *path]
        results.append(([data[bounds[i + 1] : bounds[i]] for i in range(len(path))][::-1], alpha * score - logz))
        log_left = walk.residual(drawn)
        if log_left > -math.inf:
            gumbel = -float(np.logaddexp(-gumbel, -(log_left + float(rng.gumbel()))))
    kappa = gumbel if log_left > -math.inf else -math.inf
    return [
        (pieces, log_p, 1.0 if kappa == -math.inf else -math.expm1(-math.exp(log_p - kappa)))
        for pieces, log_p in results
    ]


DISTINCT_TEXTS = [
    "",
    "a",
    "unbelievable",
    "Hello world!\n\nSecond chunk, tokenizers.\n",
    "你好，世界。今天天气不错。",
    "aaaaaaaaaaaaaaaa",
    "The quick brown fox jumps over the lazy dog 0123456789",
]


@pytest.mark.slow
@pytest.mark.parametrize("text", DISTINCT_TEXTS)
def test_sample_distinct_draws_exactly_what_it_drew_before(tok, text):
    data = text.encode()
    n = len(data)
    constraints = [(None, None)]
    if n > 6:
        cuts = np.zeros(n + 1, dtype=np.uint8)
        cuts[n // 2] = 1
        banned = np.zeros(n + 1, dtype=np.uint8)
        banned[3] = 1 if data[2:3] != b"\n" else 0
        constraints += [(cuts, None), (None, banned)]
    for alpha in (0.0, 0.1, 1.0, 7.5):
        for k in (1, 2, 7, 40):
            for key in (0, 11):
                for cuts, banned in constraints:
                    seed_word, key_word = tok._words(key)
                    args = (tok._lattice, data, k, alpha, seed_word, key_word, tok.piece_log_probs, cuts, banned)
                    if n and _queries.forward_log(tok._lattice, data, alpha, cuts=cuts, banned=banned)[n] == -math.inf:
                        # (the walk used to fail with "Probabilities contain NaN" here)
                        with pytest.raises(ValueError, match="no segmentation satisfies the constraints"):
                            distinct.sample_distinct(*args)
                        continue
                    assert distinct.sample_distinct(*args) == _previous_sample_distinct(*args), (alpha, k, key)


def test_sample_distinct_work_grows_linearly_with_k(tok, monkeypatch):
    """Edges looked up per draw stay flat as k grows (they grew with every path drawn:
    k = 1000 on a 240-byte text took 268 s)."""
    text = ("The quick brown fox jumps over the lazy dog; tokenizers split text into pieces. " * 3)[:240]
    calls = {"n": 0}
    real = distinct._Walk.edges

    def counting(self, e):
        calls["n"] += 1
        return real(self, e)

    monkeypatch.setattr(distinct._Walk, "edges", counting)
    work = {}
    for k in (15, 60):
        calls["n"] = 0
        assert len(tok.sample_distinct(text, k, alpha=0.1, key=3)) == k
        work[k] = calls["n"]
    assert work[60] < 6 * work[15], work  # linear: about 4 times; it was about 16


# ---------------------------------------------------------------------------
# sample --check


def _pieces_of(tok):
    return {p: i for i, p in enumerate(tok.id_bytes) if i >= FIRST_PIECE_ID}, max(map(len, tok.id_bytes))


def test_enumeration_costs_what_it_lists(tok):
    """A text with one long segmentation: each step copied the whole prefix before
    (quadratic: 200,000 pieces took about 40 s); now it is one pass."""
    pieces, max_len = _pieces_of(tok)
    data = ("\U0001f9ff" * 50_000).encode()
    start = time.monotonic()
    (only,) = enumerate_segmentations(data, pieces, max_len)
    assert time.monotonic() - start < 10
    assert bytes(b"".join(tok.id_bytes[i] for i in only)) == data
    # the order and the result of a text with many segmentations are unchanged
    small = b"unbelievable"
    listed = enumerate_segmentations(small, pieces, max_len)
    assert len(listed) == len(set(listed)) > 100
    assert all(b"".join(tok.id_bytes[i] for i in seg) == small for seg in listed)
    assert listed == sorted(listed, key=lambda seg: [len(tok.id_bytes[i]) for i in seg])


def test_enumeration_refuses_to_list_too_many_pieces(tok, monkeypatch):
    pieces, max_len = _pieces_of(tok)
    data = ("\U0001f9ff" * 1_000).encode()
    with pytest.raises(ValueError, match="pieces in all"):
        enumerate_segmentations(data, pieces, max_len, max_pieces=3_999)
    assert len(enumerate_segmentations(data, pieces, max_len, max_pieces=4_000)) == 1
    monkeypatch.setattr(reference, "ENUMERATION_PIECES", 3_999)
    result = CliRunner().invoke(main, ["sample", "-m", str(VENDORED_MODEL), data.decode(), "--check", "10"])
    assert result.exit_code == 1 and result.stderr.startswith("Error: --check needs a text short enough"), result.output


@pytest.mark.slow
def test_sample_check_on_a_long_text_runs_in_bounded_memory():
    """--check's draws were all held at once: N draws of a text of n pieces took N * n
    list slots (1.6 GB at 5,000 characters; an error at 10,000)."""
    text = "\U0001f9ff" * 5_000  # one segmentation of 20,000 pieces
    peaks = []
    for draws in (10, 3_000):
        script = (
            "import sys\n"
            "from bytepiece.cli import main\n"
            "try:\n"
            "    main(sys.argv[1:])\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            # (VmHWM: ru_maxrss would also count the forked parent's pages before exec)
            "sys.stderr.write([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
        )
        args = ["sample", "-m", str(VENDORED_MODEL), text, "--check", str(draws)]
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, env=ENV, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert b"1 segmentations" in done.stdout
        peaks.append(int(done.stderr.split()[-1]))
    assert peaks[1] - peaks[0] < 60_000, peaks  # KiB; it was about 500 MB more


def test_num_threads_must_be_an_integer_on_every_batch_path(tok):
    """num_threads=1.5 ran on the list path and failed on the numpy path; now neither
    takes a non-integer (as range() does not), and a numpy integer is an integer."""
    texts = ["hello world"] * 70
    expected = tok.encode_batch(texts, num_threads=1)
    for as_numpy in (False, True):
        for bad in (1.5, 2.0, "2", True):
            with pytest.raises(TypeError, match="num_threads must be an integer"):
                tok.encode_batch(texts, num_threads=bad, as_numpy=as_numpy)
        got = tok.encode_batch(texts, num_threads=np.int64(2), as_numpy=as_numpy)
        if as_numpy:
            ids, rows = got
            got = [ids[rows[i] : rows[i + 1]].tolist() for i in range(len(texts))]
        assert got == expected
        with pytest.raises(ValueError, match=">= 1"):
            tok.encode_batch(texts, num_threads=0, as_numpy=as_numpy)
