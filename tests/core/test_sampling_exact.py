"""The exact sampler draws each segmentation with probability exp(alpha * score) / Z.

Goodness-of-fit of the compiled sampler against the brute-force oracle
(bytepiece.reference), on short strings whose segmentations can all be listed.

Design, stated once:

- Draws. Each (case, alpha) draws N_DRAWS = 20,000 segmentations with
  ``testing.encode_with_generator``: the same text N times, one seed word, key words
  0 .. N-1. Every draw has its own random state, derived from (seed, key), so
  draws are independent and the whole module is reproducible bit for bit.
- Two statistics per (case, alpha), on the same cells:
  * Pearson's chi-square. Cells whose expected count is below 5 are pooled
    (smallest first; a pool still below 5 joins the smallest other cell); the
    p-value is the chi-square tail with (cells - 1) degrees of freedom.
  When pooling leaves a single cell (a segmentation holding all but a few
    thousandths of the expected count, as the real snippets at alpha = 5), the
    chi-square slot holds an exact two-sided binomial test of the number of draws
    that are not that segmentation.
  * Total variation distance TV = 1/2 sum |observed/N - p|. Its null quantile
    comes from a bound, not a simulation: TV is a function of N independent
    draws that moves by at most 1/N when one draw changes, so McDiarmid gives
    P(TV >= E[TV] + t) <= exp(-2 N t^2), and E[TV] <= 1/2 sum sqrt(p(1-p)/N).
    The reported p-value exp(-2 N (TV - that bound)^2) is conservative (valid
    for every N and every distribution, no asymptotics, no simulation noise).
  Any draw outside the oracle's support (not a segmentation, a piece across a
  chunk boundary) fails at once.
- Long texts. Whole paragraphs (English, Chinese, code; several chunks) under
  the full vendored model have too many segmentations to list, so there the
  test is on the boundary marginals: for every byte position, the number of
  draws with a piece boundary there is Binomial(N_LONG, m) with m from
  forward-backward (which the oracle checks on short texts); the test's p-value
  is the smallest two-sided binomial p-value (twice the smaller tail) times the
  number of positions (Bonferroni inside the test). N_LONG = 4,000 draws of
  about 320 bytes per (case, alpha). These draws run through the linear-space
  sampler's renormalisation many times per text, as do those of the
  "equal-score-deep" case (log p = -25 per byte, so forward sums leave
  [2**-100, 2**100] within a few bytes while every segmentation stays equally
  likely).
- Family-wise level: FAMILY_ALPHA = 0.01 over every (sampler, case, alpha,
  statistic) test of the exact sampler in this module (the long-text tests
  count once each), with the Bonferroni correction: each test rejects when
  p < FAMILY_ALPHA / FAMILY_SIZE. (The forced log-space twin is tested as a
  second exact sampler in the same family.)
- Alphas: 0, 0.1, 0.5, 1, 5. Cases: three equally likely pieces ending at every
  position; every segmentation with the same score; real snippets (English,
  Chinese, code) with vocabularies cut from real models, keeping their
  log-probabilities (the pieces occurring inside the snippet plus all 256
  bytes); strings whose segmentations split UTF-8 characters; two chunks.
- Power. The very same function, cases, draw counts and threshold must reject
  (a) the legacy v1 sampler and (b) the exact sampler driven by the weak
  "coarse4" generator (uniforms with 4 bits). Each family is rejected when its
  smallest p-value is below FAMILY_ALPHA / FAMILY_SIZE; the tests also say
  which cases must be rejected. With N_DRAWS = 20,000 per (case, alpha) both are
  rejected with smallest p-values that underflow to 0 (below 1e-300); the family
  already rejects both with 100 draws per (case, alpha). The exact sampler's
  smallest p-value over the family is about 0.001, against a threshold of
  4.3e-5. (`python benchmarks/sampling_table.py --power` prints every p-value;
  docs/exact-sampling.md has the table.) The "lcg31" generator (a 31-bit LCG like old libc rand()) is *not*
  rejected, and we do not claim it would be: its consecutive outputs are
  well spread in two dimensions (spectral-test distance about 42,000 on 2**31),
  far beyond what 20,000 draws can resolve (benchmarks/sampling_table.py
  --power prints its p-values beside the others).
"""

from __future__ import annotations

import functools
import math
import pathlib
import zlib

import numpy as np
import pytest
from scipy import stats

from bytepiece._core import queries, testing
from bytepiece._core.batch import encode_lists
from bytepiece._core.lattice import SAMPLERS, Lattice
from bytepiece.reference import ReferenceLattice, split_chunks

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from strategies import vocab_and_text  # noqa: E402

TESTS = pathlib.Path(__file__).resolve().parents[1]
DATA = TESTS / "data"
VENDORED_MODEL = DATA / "bytepiece.plus.40k.zip"

FAMILY_ALPHA = 0.01
N_DRAWS = 20_000
MIN_EXPECTED = 5.0
ALPHAS = (0.0, 0.1, 0.5, 1.0, 5.0)
SEED_WORD = 0x5EED_0005
SAMPLER_EXACT, SAMPLER_EXACT_LOGSPACE, SAMPLER_LEGACY_V1 = (
    SAMPLERS[n] for n in ("exact", "exact-logspace", "legacy-v1")
)
RNG_XOSHIRO, RNG_COARSE4, RNG_LCG31 = (testing.GENERATORS[n] for n in ("xoshiro256**", "coarse4", "lcg31"))
EXACT_SAMPLERS = (("exact", SAMPLER_EXACT), ("exact-logspace", SAMPLER_EXACT_LOGSPACE))


# ---------------------------------------------------------------------------
# Cases: (vocabulary {bytes: logp}, text)


def _bytes_vocab(logp: float = -6.0) -> dict:
    return {bytes([b]): logp for b in range(256)}


def case_three_equal():
    """Pieces a, aa, aaa, aaaa with the same log-probability: from position 4 on, four
    equally likely pieces end at every position (three at position 3)."""
    vocab = _bytes_vocab(-3.0)
    vocab.update({b"aa": -3.0, b"aaa": -3.0, b"aaaa": -3.0})
    return vocab, b"aaaaaaa"


def case_equal_score():
    """log p = -len(piece): every segmentation scores -len(text), so all are equally
    likely at every alpha."""
    vocab = _bytes_vocab(-1.0)
    for piece in (b"ab", b"ba", b"aba", b"bab", b"abab", b"bb"):
        vocab[piece] = -float(len(piece))
    return vocab, b"ababbab"


def case_equal_score_deep():
    """log p = -25 * len(piece): still one score for every segmentation, but the
    linear-space forward sums underflow 2**-100 within a few bytes, so the sampler
    renormalises at many positions, with starts of different exponents."""
    vocab = _bytes_vocab(-25.0)
    for piece in (b"ab", b"ba", b"aba", b"bab", b"abab", b"bb"):
        vocab[piece] = -25.0 * len(piece)
    return vocab, b"ababbab"


def case_utf8_split():
    """Two-byte characters (é = c3 a9, à = c3 a0) with pieces across character
    boundaries, so most segmentations split a character."""
    vocab = _bytes_vocab(-7.0)
    vocab.update(
        {
            b"\xc3\xa9": -4.0,
            b"\xc3\xa0": -4.5,
            b"\xa9\xc3": -5.0,
            b"\xa0\xc3": -5.5,
            b"\xa9\xc3\xa0": -6.0,
            b"\xc3\xa9\xc3": -8.0,
        }
    )
    return vocab, "éàé".encode()


def case_two_chunks():
    """A newline run cuts the text into two chunks; pieces that would cross the cut exist
    in the vocabulary and must never be drawn."""
    vocab = _bytes_vocab(-4.0)
    vocab.update({b"ab": -3.0, b"b\n": -3.5, b"\n\n": -2.0, b"\nb": -1.0, b"\n\nb": -1.0, b"ba": -3.0})
    return vocab, b"ab\n\nba"


@functools.cache
def _model_logprobs(path: str) -> dict:
    from bytepiece import Tokenizer

    tok = Tokenizer(path)
    return dict(zip(tok.vocabulary.pieces, tok._logprobs.tolist()))


def cut_vocab(path, text: bytes) -> dict:
    """The model's pieces that occur inside `text`, plus all 256 bytes, log-probs kept."""
    logp = _model_logprobs(str(path))
    return {p: lp for p, lp in logp.items() if len(p) == 1 or p in text}


def _real(path, text: str):
    return lambda: (cut_vocab(path, text.encode()), text.encode())


CASES = {
    "three-equal": case_three_equal,
    "equal-score": case_equal_score,
    "equal-score-deep": case_equal_score_deep,
    "utf8-split": case_utf8_split,
    "two-chunks": case_two_chunks,
    "real-en": _real(VENDORED_MODEL, "hello world"),
    "real-zh": _real(VENDORED_MODEL, "自然语言"),
    "real-code": _real(VENDORED_MODEL, "for (i = 0;"),
}
# More real vocabularies, from two other vendored compat models (tests/data).
COMPAT_CASES = {
    "compat-zh-eu": ("bytepiece.zh.id.eu.40k.zip", "中文分词"),
    "compat-en-80k": ("bytepiece_80k.zip", "tokenizer"),
}
for _name, (_file, _text) in COMPAT_CASES.items():
    CASES[_name] = _real(DATA / _file, _text)
ALL_CASES = sorted(CASES)

CORPORA = TESTS.parent / "corpora"
LONG_CASES = {"long-en": ("en.heldout.txt", 0), "long-zh": ("zh.heldout.txt", 0), "long-code": ("code.heldout.txt", 0)}
LONG_BYTES = 320
N_LONG = 4_000

FAMILY_SIZE = len(EXACT_SAMPLERS) * len(ALPHAS) * (len(CASES) * 2 + len(LONG_CASES))
THRESHOLD = FAMILY_ALPHA / FAMILY_SIZE


# ---------------------------------------------------------------------------
# Machinery


class Setup:
    """A case compiled twice: the core's Lattice and the oracle's exact distribution."""

    def __init__(self, vocab: dict, text: bytes):
        self.text = text
        self.pieces = list(vocab)
        self.lattice = Lattice(self.pieces, [vocab[p] for p in self.pieces], np.arange(len(self.pieces)))
        self.oracle = ReferenceLattice(vocab)
        index = {p: i for i, p in enumerate(self.pieces)}
        self.paths = []
        self.scores = []
        for path, score in self.oracle.segmentations(text):
            self.paths.append(tuple(index[p] for p in path))
            self.scores.append(score)
        self.cell = {path: i for i, path in enumerate(self.paths)}
        self.scores = np.array(self.scores)

    def probabilities(self, alpha: float) -> np.ndarray:
        w = alpha * self.scores
        w = np.exp(w - w.max())
        return w / w.sum()

    def counts(self, alpha: float, sampler: int, rng_kind: int, seed_word: int, n: int = N_DRAWS) -> np.ndarray:
        draws = testing.encode_with_generator(
            self.lattice,
            [self.text] * n,
            alpha,
            np.full(n, seed_word, dtype=np.uint64),
            np.arange(n, dtype=np.uint64),
            sampler=sampler,
            generator=rng_kind,
        )
        counts = np.zeros(len(self.paths), dtype=np.int64)
        cell = self.cell
        for ids in draws:
            i = cell.get(tuple(ids))
            if i is None:
                pieces = [self.pieces[j] for j in ids]
                pytest.fail(
                    f"drew {pieces!r}, which is not a segmentation of {self.text!r} "
                    f"under the model (alpha={alpha}, sampler={sampler}, rng={rng_kind})"
                )
            counts[i] += 1
        return counts


@functools.cache
def setup_for(case: str) -> Setup:
    return Setup(*CASES[case]())


def pool_cells(expected: np.ndarray, observed: np.ndarray, minimum: float = MIN_EXPECTED):
    """Pool cells with expected count < minimum: smallest first into one pool; if the pool
    is still below minimum, it absorbs the smallest remaining cell."""
    order = np.argsort(expected, kind="stable")
    small = [i for i in order if expected[i] < minimum]
    big = [i for i in order if expected[i] >= minimum]
    exp_cells = [expected[i] for i in big]
    obs_cells = [observed[i] for i in big]
    if small:
        pool_e = float(sum(expected[i] for i in small))
        pool_o = int(sum(observed[i] for i in small))
        if pool_e < minimum and exp_cells:
            pool_e += exp_cells.pop(0)  # the smallest of the big cells (sorted ascending)
            pool_o += obs_cells.pop(0)
        exp_cells.append(pool_e)
        obs_cells.append(pool_o)
    return np.array(exp_cells, dtype=float), np.array(obs_cells, dtype=float)


def goodness_of_fit(p: np.ndarray, counts: np.ndarray):
    """(chi-square p-value, TV p-value bound, TV, cells) of observed counts against p."""
    n = int(counts.sum())
    expected, observed = pool_cells(n * p, counts)
    cells = len(expected)
    if cells < 2:
        # Nearly all the mass on one segmentation (the real cases at alpha = 5): pooling
        # leaves one cell, and the test is exact instead: the number of draws that are
        # not the most likely segmentation is Binomial(n, 1 - p_top); two-sided p-value
        # by doubling the smaller tail. TV has nothing to measure in one cell.
        top = int(np.argmax(p))
        rest = float(np.delete(p, top).sum()) / float(p.sum())
        k = n - int(counts[top])
        p_binom = min(1.0, 2.0 * min(float(stats.binom.cdf(k, n, rest)), float(stats.binom.sf(k - 1, n, rest))))
        return p_binom, 1.0, 0.0, cells
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    p_chi2 = float(stats.chi2.sf(chi2, cells - 1))
    q = expected / n
    tv = 0.5 * float(np.abs(observed / n - q).sum())
    mean_bound = 0.5 * float(np.sqrt(q * (1 - q) / n).sum())
    excess = max(tv - mean_bound, 0.0)
    p_tv = math.exp(-2.0 * n * excess * excess)
    return p_chi2, p_tv, tv, cells


def seed_word(case: str, alpha: float, sampler: int) -> int:
    """A fixed seed word per (case, alpha, sampler), so that no two tests share draws."""
    return (SEED_WORD << 32) | zlib.crc32(f"{case}/{alpha}/{sampler}".encode())


@functools.cache
def run(case: str, alpha: float, sampler: int, rng_kind: int, n: int = N_DRAWS):
    s = setup_for(case)
    counts = s.counts(alpha, sampler, rng_kind, seed_word(case, alpha, sampler), n)
    return goodness_of_fit(s.probabilities(alpha), counts)


# ---------------------------------------------------------------------------
# The exact sampler (and its log-space twin) passes


@pytest.mark.slow
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("case", ALL_CASES)
@pytest.mark.parametrize("name,sampler", EXACT_SAMPLERS)
def test_exact_sampler_fits(name, sampler, case, alpha):
    p_chi2, p_tv, tv, cells = run(case, alpha, sampler, RNG_XOSHIRO)
    assert p_chi2 >= THRESHOLD, f"chi-square rejects {name} on {case} at alpha={alpha}: p={p_chi2:.3g}"
    assert p_tv >= THRESHOLD, f"TV rejects {name} on {case} at alpha={alpha}: TV={tv:.4f}, p<={p_tv:.3g}"


def test_a_single_pooled_cell_is_still_tested():
    # 20,000 draws, one segmentation at 1 - 1e-5: about 0.2 draws expected elsewhere.
    p = np.array([1 - 1e-5, 6e-6, 4e-6])
    fine = np.array([20_000, 0, 0])
    assert goodness_of_fit(p, fine)[3] == 1 and goodness_of_fit(p, fine)[0] == 1.0
    assert goodness_of_fit(p, np.array([19_999, 1, 0]))[0] > 0.3
    assert goodness_of_fit(p, np.array([19_990, 6, 4]))[0] < THRESHOLD
    # Something of probability 0 drawn once is rejected.
    assert goodness_of_fit(np.array([1.0, 0.0]), np.array([19_999, 1]))[0] < THRESHOLD


def test_the_family_is_as_stated():
    assert FAMILY_SIZE >= 2 * 5 * (8 * 2 + 3)
    assert THRESHOLD == FAMILY_ALPHA / FAMILY_SIZE
    # The cases are what the module says they are.
    vocab, text = case_three_equal()
    oracle = ReferenceLattice(vocab)
    assert all(len(oracle.edges_ending_at(text, e)) >= 3 for e in range(3, len(text) + 1))
    assert len({lp for p, lp in vocab.items() if text.find(p) >= 0}) == 1
    vocab, text = case_equal_score()
    assert len({s for _, s in ReferenceLattice(vocab).segmentations(text)}) == 1
    vocab, text = case_utf8_split()
    splits = 0
    for path, _ in ReferenceLattice(vocab).segmentations(text):
        try:
            [piece.decode("utf-8") for piece in path]
        except UnicodeDecodeError:
            splits += 1
    assert splits > 0
    assert len(split_chunks(case_two_chunks()[1])) == 2
    for case in ("real-en", "real-zh", "real-code"):
        s = setup_for(case)
        assert len(s.paths) >= 40 and len(s.pieces) > 256 + 5


# ---------------------------------------------------------------------------
# Long texts: boundary marginals


@functools.cache
def _vendored():
    from bytepiece import Tokenizer

    return Tokenizer(VENDORED_MODEL)


def long_text(case: str) -> bytes:
    name, offset = LONG_CASES[case]
    data = (CORPORA / name).read_bytes()[offset : offset + LONG_BYTES]
    return data.decode("utf-8", "ignore").encode()  # whole characters only


@functools.cache
def run_long(case: str, alpha: float, sampler: int, rng_kind: int, n: int = N_LONG):
    """(p-value, position of the worst deviation): boundary frequencies against the
    forward-backward marginals, two-sided binomial per position, Bonferroni inside."""
    tok = _vendored()
    lattice = tok._lattice
    text = long_text(case)
    lengths = np.array([len(p) for p in tok.id_bytes], dtype=np.int64)
    draws = testing.encode_with_generator(
        lattice,
        [text] * n,
        alpha,
        np.full(n, seed_word(case, alpha, sampler), dtype=np.uint64),
        np.arange(n, dtype=np.uint64),
        sampler=sampler,
        generator=rng_kind,
    )
    ends = np.concatenate([np.cumsum(lengths[np.asarray(ids)]) for ids in draws])
    hits = np.bincount(ends, minlength=len(text) + 1)
    _, marg = queries.boundary_marginals(lattice, text, alpha)
    m = np.clip(marg[1:-1], 0.0, 1.0)
    k = hits[1:-1]
    # Two-sided binomial p-value by doubling the smaller tail (a valid, slightly
    # conservative test); a boundary of probability 0 or 1 must be hit never or always.
    pv = np.minimum(1.0, 2.0 * np.minimum(stats.binom.cdf(k, n, m), stats.binom.sf(k - 1, n, m)))
    certain = (m == 0.0) | (m == 1.0)
    pv[certain] = np.where(k[certain] == np.round(m[certain] * n), 1.0, 0.0)
    where = int(np.argmin(pv))
    return min(1.0, float(pv[where]) * len(m)), where + 1


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("case", sorted(LONG_CASES))
@pytest.mark.parametrize("name,sampler", EXACT_SAMPLERS)
def test_exact_sampler_boundary_marginals_on_long_texts(name, sampler, case, alpha):
    assert len(split_chunks(long_text(case))) >= 2 or case == "long-en"
    pvalue, where = run_long(case, alpha, sampler, RNG_XOSHIRO)
    assert pvalue >= THRESHOLD, f"{name} on {case} at alpha={alpha}: boundary at byte {where}, p={pvalue:.3g}"


def test_long_marginals_reject_legacy_v1():
    assert any(run_long(case, 0.1, SAMPLER_LEGACY_V1, RNG_XOSHIRO)[0] < THRESHOLD for case in LONG_CASES)


# ---------------------------------------------------------------------------
# Power: the same tests reject the known ways of being wrong


def family_pvalues(sampler: int, rng_kind: int) -> dict:
    return {(case, alpha): run(case, alpha, sampler, rng_kind)[:2] for case in CASES for alpha in ALPHAS}


def rejected(pvalues: dict) -> set:
    return {key for key, (p_chi2, p_tv) in pvalues.items() if min(p_chi2, p_tv) < THRESHOLD}


@pytest.mark.slow
def test_power_legacy_v1_is_rejected():
    """v1 keeps one running score per position and replaces it with probability
    sigmoid(alpha * gain): with equal scores that is 1/2 per challenger, so three
    equal candidates come out 1/4, 1/4, 1/2."""
    bad = rejected(family_pvalues(SAMPLER_LEGACY_V1, RNG_XOSHIRO))
    assert bad, "the family does not reject the legacy v1 sampler"
    # Where every segmentation is equally likely, v1 is wrong at every alpha.
    for alpha in ALPHAS:
        assert ("equal-score", alpha) in bad
    for alpha in (0.0, 0.1, 0.5, 1.0):
        assert ("three-equal", alpha) in bad
    # At small alpha v1 is wrong everywhere (at alpha = 5 most real cases are nearly
    # deterministic, and then v1 is nearly right too).
    for case in CASES:
        assert (case, 0.0) in bad and (case, 0.1) in bad


@pytest.mark.slow
def test_power_weak_generator_is_rejected():
    """The exact algorithm fed 4-bit uniforms: a three-way equal choice comes out
    6/16, 5/16, 5/16 instead of 1/3 each."""
    bad = rejected(family_pvalues(SAMPLER_EXACT, RNG_COARSE4))
    assert bad, "the family does not reject the sampler driven by the coarse generator"
    # Every (case, alpha) rejects it; at alpha = 5 the real cases do so through the exact
    # binomial test of their single pooled cell (4-bit uniforms take the unlikely
    # segmentations far more often than their probabilities of 1e-5 and less).
    assert bad == {(case, alpha) for case in CASES for alpha in ALPHAS}


# ---------------------------------------------------------------------------
# Invariants on random vocabularies and texts (hypothesis)


def _lattice(vocab):
    pieces = list(vocab)
    return pieces, Lattice(pieces, [vocab[p] for p in pieces], np.arange(len(pieces)))


HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYP
@given(vocab_and_text(), st.sampled_from(ALPHAS + (0.03, 2.0, 40.0)), st.integers(0, 2**32))
def test_every_sample_is_a_segmentation_of_the_model(vt, alpha, key):
    vocab, text = vt
    pieces, lattice = _lattice(vocab)
    support = {tuple(p) for p, _ in ReferenceLattice(vocab).segmentations(text)}
    for sampler in (SAMPLER_EXACT, SAMPLER_EXACT_LOGSPACE, SAMPLER_LEGACY_V1):
        for k in range(key, key + 5):
            drawn = tuple(lattice.pieces(text, alpha, SEED_WORD, k, sampler=sampler))
            assert b"".join(drawn) == text
            assert drawn in support, (drawn, sampler)


@HYP
@given(vocab_and_text(dyadic=True))
def test_viterbi_is_the_enumerated_argmax_with_longest_piece_ties(vt):
    vocab, text = vt
    _, lattice = _lattice(vocab)
    oracle = ReferenceLattice(vocab)
    got = lattice.pieces(text)
    assert got == oracle.argmax_enumerated(text)
    assert got == oracle.viterbi(text)
    # Any negative alpha is Viterbi, whatever the seed, key and sampler.
    for alpha, sampler in ((-1e-9, SAMPLER_EXACT), (-3.0, SAMPLER_LEGACY_V1), (-0.5, SAMPLER_EXACT_LOGSPACE)):
        assert lattice.pieces(text, alpha, SEED_WORD, 12345, sampler=sampler) == got


@HYP
@given(vocab_and_text(dyadic=False))
def test_viterbi_matches_the_oracle_bit_for_bit(vt):
    vocab, text = vt
    _, lattice = _lattice(vocab)
    assert lattice.pieces(text) == ReferenceLattice(vocab).viterbi(text)


@HYP
@given(vocab_and_text(dyadic=False), st.sampled_from(ALPHAS + (0.03, 40.0)))
def test_log_partition_matches_the_oracle(vt, alpha):
    vocab, text = vt
    _, lattice = _lattice(vocab)
    oracle = ReferenceLattice(vocab)
    expected = oracle.log_partition_enumerated(text, alpha)
    assert math.isclose(oracle.log_partition(text, alpha), expected, rel_tol=1e-12, abs_tol=1e-12)
    logz, _ = queries.boundary_marginals(lattice, text, alpha)
    assert math.isclose(logz, expected, rel_tol=1e-12, abs_tol=1e-12)
    logz2, _, _ = queries.entropy(lattice, text, alpha)
    assert math.isclose(logz2, expected, rel_tol=1e-12, abs_tol=1e-12)


def test_keyed_draws_are_reproducible_and_distinct():
    s = setup_for("three-equal")
    a = encode_lists(
        s.lattice,
        [s.text] * 50,
        alpha=0.5,
        seed_words=np.full(50, 7, dtype=np.uint64),
        key_words=np.arange(50, dtype=np.uint64),
    )
    b = [s.lattice.sample(s.text, 0.5, 7, k) for k in range(50)]
    assert a == b
    assert len({tuple(x) for x in a}) > 10


# ---------------------------------------------------------------------------
# The documentation says what this module does


@pytest.mark.slow
def test_docs_state_this_family_and_the_table_script_runs(tmp_path):
    import subprocess
    import sys

    doc = (TESTS.parent / "docs" / "exact-sampling.md").read_text(encoding="utf-8")

    # every case runs (the compat models are vendored): the family is all of them
    assert FAMILY_SIZE == len(EXACT_SAMPLERS) * len(ALPHAS) * (len(ALL_CASES) * 2 + len(LONG_CASES))
    assert f"= {FAMILY_SIZE} tests" in doc
    import re

    stated = re.search(rf"{FAMILY_ALPHA:g} / {FAMILY_SIZE} = ([0-9.]+(?:e-?[0-9]+)?)", doc)
    assert stated and math.isclose(float(stated.group(1)), FAMILY_ALPHA / FAMILY_SIZE, rel_tol=0.02)
    assert f"{N_DRAWS:,} samples" in doc and f"{N_LONG:,} draws per alpha" in doc
    # The script behind the doc's tables runs, and loads this module for --power.
    script = TESTS.parent / "benchmarks" / "sampling_table.py"
    out = subprocess.run(
        [sys.executable, str(script), "--draws", "2000", "--rows", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "| **chi-square p-value** |" in out.stdout and "198 segmentations" in out.stdout
    probe = (
        f"import runpy; suite = runpy.run_path({str(script)!r})['load_suite'](); "
        "print(suite.FAMILY_SIZE, len(suite.CASES))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(FAMILY_SIZE), str(len(CASES))]


def test_the_named_legacy_mode_is_the_sampler_this_module_rejects(tok):
    """Tokenizer(..., sampler="legacy-v1") is the core's SAMPLER_LEGACY_V1 (the negative
    control above), and "exact" the core's exact sampler, draw for draw."""
    text = "Exact sampling: 自然语言处理 and x += 1;"
    data = text.encode()
    for name, code in (("exact", SAMPLER_EXACT), ("legacy-v1", SAMPLER_LEGACY_V1)):
        for key in range(20):
            seed_word, key_word = tok._words(key)
            core = tok._lattice.pieces(data, 0.1, seed_word, key_word, sampler=code)
            assert tok.tokenize(text, alpha=0.1, key=key, sampler=name) == core
    assert any(
        tok.tokenize(text, alpha=0.1, key=k, sampler="legacy-v1") != tok.tokenize(text, alpha=0.1, key=k)
        for k in range(20)
    )
    with pytest.raises(ValueError, match="sampler"):
        tok.tokenize(text, alpha=0.1, sampler="v1")
