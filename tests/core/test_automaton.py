"""The automaton that every kernel reads its edges from, and the kernels' linearity.

- The edges into each position are exactly the pieces that end there (brute force over
  every substring), for vocabularies built to stress the failure and output links:
  chains of prefixes, pieces that are suffixes of each other, runs of one byte.
- A text of one repeated byte against a piece that is a long run of that byte costs
  time linear in the text for every kernel (the reversed-trie walk the core had before
  was quadratic there), and the answers are right.
- The bounded-memory exact sampler that long texts take (a window of forward sums that
  slides on) draws exactly what the sampler with every forward sum draws, whatever the
  window.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from bytepiece._core import draws, queries, testing
from bytepiece._core.lattice import Lattice

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _lattice(extra: dict[bytes, float]) -> tuple[list[bytes], Lattice]:
    vocab = {bytes([b]): -6.0 for b in range(256)}
    vocab.update(extra)
    pieces = list(vocab)
    return pieces, Lattice(pieces, [vocab[p] for p in pieces], np.arange(len(pieces)))


@st.composite
def stressed_vocab_and_text(draw):
    """Pieces over {a, b, \\n}: random ones, every prefix of some, every suffix of some,
    and runs of a; a text over the same letters (long enough to reach the deep pieces)."""
    word = st.text("ab", min_size=2, max_size=9).map(str.encode)
    pieces = set(draw(st.lists(word, max_size=12)))
    for p in list(pieces)[: draw(st.integers(0, 3))]:
        pieces.update(p[:i] for i in range(2, len(p)))
    for p in list(pieces)[: draw(st.integers(0, 3))]:
        pieces.update(p[i:] for i in range(1, len(p) - 1))
    if draw(st.booleans()):
        pieces.update(b"a" * n for n in draw(st.lists(st.integers(2, 12), max_size=4)))
    if draw(st.booleans()):
        pieces.add(b"b\na")  # a piece across a chunk boundary: chunked, it never stands
    extra = {p: -float(draw(st.integers(1, 20))) / 2 for p in pieces if len(p) > 1}
    text = draw(st.text("aab\n", max_size=60)).encode()
    return extra, text


def _brute_force_edges(vocab: set[bytes], text: bytes, chunked: bool) -> list[tuple[int, int, bytes]]:
    starts = {0} | ({i for i in range(1, len(text)) if text[i - 1] == 10 and text[i] != 10} if chunked else set())
    out = []
    for e in range(1, len(text) + 1):
        floor = max(s for s in starts if s < e)
        out += [(s, e, text[s:e]) for s in range(e - 1, floor - 1, -1) if text[s:e] in vocab]
    return out  # by end position, shortest first


@HYP
@given(stressed_vocab_and_text(), st.booleans())
def test_the_edges_are_every_piece_that_ends_at_each_position(vt, chunked):
    extra, text = vt
    pieces, lattice = _lattice(extra)
    starts, ends, values = queries.edges(lattice, text, chunked=chunked)
    got = [(int(s), int(e), pieces[v]) for s, e, v in zip(starts, ends, values)]
    assert got == _brute_force_edges(set(pieces), text, chunked)


@HYP
@given(stressed_vocab_and_text())
def test_a_piece_is_looked_up_exactly(vt):
    """path_score finds every piece of a segmentation and refuses a span that is not one."""
    extra, text = vt
    pieces, lattice = _lattice(extra)
    if not text:
        return
    vals, ends = lattice.segment(text, chunked=False)
    _, got = queries.path_score(lattice, text, ends, chunked=False)
    assert got.tolist() == vals.tolist()
    vocab = set(pieces)
    for cut in range(1, len(text)):
        if text[:cut] not in vocab:
            with pytest.raises(ValueError, match="not in the vocabulary"):
                queries.path_score(lattice, text, np.array([cut, len(text)], dtype=np.int32), chunked=False)
            break


# ---------------------------------------------------------------------------
# A long run of one byte against a long run piece


def test_long_runs_are_segmented_and_queried_right():
    """b'a' * n with the pieces a, a * 7 and a * n (n = 3000): every kernel answers."""
    n = 3000
    pieces, lattice = _lattice({b"a" * 7: -20.0, b"a" * n: -1.0})
    text = b"a" * n
    long_piece = pieces.index(b"a" * n)
    assert lattice.segment(text)[0].tolist() == [long_piece]
    for alpha in (0.05, 1.0, 200.0):  # (200: the log-space sampler)
        vals, ends = lattice.segment(text, alpha=alpha, seed_word=1, key_word=2)
        assert ends[-1] == n and all(len(pieces[v]) in (1, 7, n) for v in vals)
    logz, entropy, _ = queries.entropy(lattice, text, 1.0)
    assert np.isfinite(logz) and entropy >= 0
    _, marg = queries.boundary_marginals(lattice, text, 1.0)
    _, marg_log = queries.boundary_marginals(lattice, text, 1.0, logspace=True)
    np.testing.assert_allclose(marg, marg_log, rtol=1e-8, atol=1e-12)
    best = queries.nbest(lattice, text, 2)
    assert best[0][0].tolist() == [long_piece]
    starts, ends, values = queries.edges(lattice, text)
    assert len(values) == n + (n - 6) + 1
    vals, _, rows, _ = draws.sample_many(lattice, text, 3, 0.5, 1, 2)
    assert len(rows) == 4


@pytest.mark.slow
def test_every_kernel_is_linear_on_a_long_run_against_a_long_run_piece():
    """300 KB of one byte with a 300,000-byte piece of it (and a 4,096-byte one): the
    reversed-trie walk took n**2 / 2 steps here (minutes). Every kernel, in a subprocess
    that must finish well within the timeout."""
    code = (
        "import numpy as np\n"
        "from bytepiece import Tokenizer\n"
        "from bytepiece._core import draws, queries\n"
        "from bytepiece.model import vocabulary_from_counts\n"
        "n = 300000\n"
        "model = {bytes([b]): 1 for b in range(256)}\n"
        "model[b'a' * n] = 5\n"
        "model[b'a' * 4096] = 3\n"
        "tok = Tokenizer(vocabulary_from_counts(model))\n"
        "text = b'a' * n\n"
        "assert tok.encode(text) == [259 + 1]\n"
        "for alpha in (0.1, 500.0):\n"
        "    assert sum(map(len, tok.tokenize(text, alpha=alpha, key=1))) == n\n"
        "assert np.isfinite(tok.entropy(text, 0.5))\n"
        "assert np.isfinite(tok.log_partition(text, 0.5))\n"
        "assert tok.boundary_marginals(text, 0.5).shape == (n + 1,)\n"
        "lat = tok._lattice\n"
        "queries.boundary_marginals(lat, text, 0.5, logspace=True)\n"
        "queries.piece_marginals(lat, text, 0.5)\n"
        "queries.nbest(lat, text, 2)\n"
        "queries.edges(lat, text)\n"
        "queries.forward_log(lat, text, 0.5)\n"
        "draws.sample_many(lat, text, 4, 0.5, 1, 2)\n"
        "assert tok.encode_batch([text, text], alpha=0.1, keys=[1, 2], num_threads=2)\n"
    )
    try:
        subprocess.run(
            [sys.executable, "-c", code], check=True, timeout=20, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the kernels took more than 20 s on 300 KB")


# ---------------------------------------------------------------------------
# The bounded-memory exact sampler


@st.composite
def window_case(draw):
    """A small vocabulary over {a, b}, a text of one or several chunks long enough for
    many windows, and an alpha: small ones keep every forward sum in the range that
    needs no exponents, large ones leave it within a few bytes."""
    extra = {
        bytes(draw(st.lists(st.sampled_from(b"ab"), min_size=2, max_size=6))): -float(draw(st.integers(1, 30)))
        for _ in range(draw(st.integers(0, 8)))
    }
    text = bytes(draw(st.lists(st.sampled_from(b"ab" * 8 + b"\n"), min_size=1, max_size=400)))
    return extra, text, draw(st.sampled_from([0.0, 0.02, 0.3, 1.0, 5.0, 19.0]))


@HYP
@given(window_case(), st.sampled_from([1, 5, 13, 32, 100, 1 << 20]), st.integers(0, 2**64 - 1), st.booleans())
def test_the_windowed_sampler_draws_what_the_full_one_draws(case, window, key, chunked):
    extra, text, alpha = case
    _, lattice = _lattice(extra)
    want = lattice.segment(text, alpha=alpha, seed_word=3, key_word=key, chunked=chunked)
    got = testing.sample_windowed(lattice, text, alpha, 3, key, window, chunked=chunked)
    assert got[0].tolist() == want[0].tolist()
    assert got[1].tolist() == want[1].tolist()


def test_the_windowed_sampler_on_real_text():
    """The vendored model on 200 KB of the corpora as one chunk and as lines: sums leave
    the plain range at the first alpha, windows slide hundreds of times."""
    from conftest import VENDORED_MODEL

    from bytepiece import Tokenizer

    lattice = Tokenizer(str(VENDORED_MODEL))._lattice
    text = (REPO / "corpora" / "en.train.txt").read_bytes()[:200_000]
    for data in (text.replace(b"\n", b" "), text):
        for alpha, key in ((0.1, 5), (1.0, 6)):
            want = lattice.segment(data, alpha=alpha, seed_word=9, key_word=key)
            got = testing.sample_windowed(lattice, data, alpha, 9, key, 500)
            assert got[1].tolist() == want[1].tolist()
