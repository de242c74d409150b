"""Reliability, part 5: training on a corpus larger than its memory budget.

The corpus is streamed, so what can grow with it is the n-gram table (capped by
``ngram_memory``, ``--ngram-memory``) and the EM sample (``em_sample_bytes``,
``--em-sample``). Here the installed command trains in real processes:

- with a small budget, a corpus four times larger peaks at the same memory
  (the rarest n-grams are dropped and the summary says so);
- under a hard limit on the process's data memory (RLIMIT_DATA, which a
  failing malloc reports instead of the OOM killer), a run with a budget that
  fits finishes and writes a working model, so does a run with the default
  budget (sized from that limit), and a run without one (``--ngram-memory 0``)
  stops with a one-line error that names the option to lower, leaving no model
  and no temporary file behind.

The synthetic corpus draws words from 50,000 random letter strings, so its
distinct n-grams keep growing with its size, as a real large corpus's do.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from conftest import REPO

from bytepiece import Tokenizer

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_DATA covers anonymous mappings on Linux only"
)

# (one worker: with more, up to workers + 1 blocks' tables are in flight, a plateau that
# a 1 MB corpus of one block never reaches)
BUDGET = ["--ngram-memory", "8", "--em-sample", "1", "--workers", "1"]
LIMIT_MB = 160  # the 4 MB corpus needs ~200 MB (RSS) with no budget, ~70 MB with BUDGET

# Runs a command under an RLIMIT_DATA of argv[1] MB (0: none) and prints its peak RSS (KiB)
# and exit status. A probe process of its own: a child's ru_maxrss starts from its parent's.
PROBE = (
    "import os, resource, subprocess, sys\n"
    "limit = int(sys.argv[1]) * 1000 * 1000\n"
    "def cap():\n"
    "    if limit:\n"
    "        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))\n"
    "child = subprocess.Popen(sys.argv[2:], preexec_fn=cap, stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
    "out, err = child.communicate()\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stdout.write(f'{usage.ru_maxrss} {child.returncode}\\n')\n"
    "sys.stdout.write(out.decode('utf-8', 'replace'))\n"
    "sys.stderr.write(err.decode('utf-8', 'replace'))\n"
)

ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


def _write_corpus(path, megabytes: float, seed: int = 0) -> None:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(50_000)]
    lines, size = [], 0
    while size < megabytes * 1e6:
        line = (
            " ".join(rng.choice(words) + rng.choice(("", "", "", str(rng.randrange(10**6)))) for _ in range(12)) + "\n"
        )
        lines.append(line)
        size += len(line)
    path.write_text("".join(lines), encoding="ascii")


def _train(target, corpus, extra, limit_mb=0, vocab_size=2000):
    """(peak RSS in MB, exit status, stdout, stderr) of `bytepiece train` in a process of its own."""
    command = [
        sys.executable,
        "-m",
        "bytepiece",
        "train",
        "-o",
        str(target),
        "--vocab-size",
        str(vocab_size),
        *extra,
        str(corpus),
    ]
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(limit_mb), *command], capture_output=True, env=ENV, timeout=600, text=True
    )
    head, _, out = probe.stdout.partition("\n")
    rss_kib, status = map(int, head.split())
    return rss_kib / 1024, status, out, probe.stderr


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big-corpus")
    small, large = folder / "small.txt", folder / "large.txt"
    _write_corpus(small, 1, seed=1)
    _write_corpus(large, 4, seed=2)
    return small, large


@pytest.mark.slow
def test_a_budget_keeps_training_memory_flat_as_the_corpus_grows(corpora, tmp_path):
    small, large = corpora
    peaks = []
    for corpus in (small, large):
        target = tmp_path / f"{corpus.stem}.model"
        peak, status, out, err = _train(target, corpus, BUDGET, limit_mb=LIMIT_MB)
        assert status == 0, err[-2000:]
        assert "n-gram memory budget (8 MB) hit" in out and "approximate" in out
        tok = Tokenizer(target)
        assert tok.vocab_size == 2000
        line = corpus.read_text(encoding="ascii").splitlines(keepends=True)[5]
        assert tok.decode(tok.encode(line)) == line
        peaks.append(peak)
    assert peaks[1] < peaks[0] + 20, f"peak RSS grew from {peaks[0]:.0f} to {peaks[1]:.0f} MB with 4x the corpus"
    assert peaks[1] < LIMIT_MB


@pytest.mark.slow
def test_the_default_budget_is_sized_from_the_memory_the_process_may_use(corpora, tmp_path):
    """With no --ngram-memory the budget is a share of what the process may use (here its
    RLIMIT_DATA), and so is the default number of workers (each counts into tables of its
    own), so the run that needs ~200 MB without a budget fits under the limit."""
    _, large = corpora
    target = tmp_path / "auto.model"
    peak, status, out, err = _train(target, large, ["--em-sample", "1"], limit_mb=LIMIT_MB)
    assert status == 0, err[-2000:]
    assert "n-gram memory budget (16 MB) hit" in out and "approximate" in out
    assert peak < LIMIT_MB
    assert Tokenizer(target).vocab_size == 2000


@pytest.mark.slow
def test_without_a_budget_running_out_of_memory_is_a_clean_error(corpora, tmp_path):
    _, large = corpora
    target = tmp_path / "out.model"
    _, status, out, err = _train(target, large, ["--ngram-memory", "0"], limit_mb=LIMIT_MB)
    assert status == 1, (out, err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: out of memory"), err[-2000:]
    assert "--ngram-memory" in lines[0] and "n-gram budget 0 MB" in lines[0]
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no model, no temporary file


def test_a_vocabulary_size_far_beyond_the_corpus_trains_in_little_memory(tmp_path):
    """--vocab-size 500000000 (within its range) on a small corpus ran out of memory,
    with advice to lower the budgets that could not help: the n-gram candidates' buffers
    were sized from the vocabulary size, not from the n-grams there are."""
    corpus = tmp_path / "small.txt"
    corpus.write_bytes((REPO / "corpora" / "en.heldout.txt").read_bytes()[:20_000])
    target = tmp_path / "huge.model"
    peak, status, out, err = _train(target, corpus, ["-q"], limit_mb=LIMIT_MB, vocab_size=500_000_000)
    assert status == 0, err[-2000:]
    tok = Tokenizer(target)
    assert 300 < tok.vocab_size < 20_000  # every piece the corpus gives, far below the size asked
    assert tok.decode(tok.encode("the text of the corpus")) == "the text of the corpus"
    assert peak < LIMIT_MB


def test_the_default_workers_follow_the_memory_the_process_may_use(monkeypatch):
    from bytepiece.training import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 160_000_000)
    assert memory.default_workers(8) == 1
    monkeypatch.setattr(memory, "available_memory", lambda: 600_000_000)
    assert memory.default_workers(8) == 2
    monkeypatch.setattr(memory, "available_memory", lambda: 24_000_000_000)
    assert memory.default_workers(2) == 2
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    assert memory.default_workers(3) == 3
