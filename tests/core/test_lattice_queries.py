"""The lattice's exact answers (nbest, score, log_prob, log_partition, entropy,
boundary_marginals) against the brute-force oracle in bytepiece.reference."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from bytepiece import Tokenizer
from bytepiece._core import em, queries, testing
from bytepiece._core.batch import encode_flat, encode_lists
from bytepiece._core.lattice import Lattice
from bytepiece.model import FIRST_PIECE_ID, vocabulary_from_counts
from bytepiece.reference import ReferenceLattice, split_chunks

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from strategies import ALPHABET, vocab_and_text  # noqa: E402

TESTS = pathlib.Path(__file__).resolve().parents[1]
CORPORA = TESTS.parent / "corpora"
ALPHAS = (0.0, 0.1, 0.5, 1.0, 5.0)
HYP = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tokenizer_and_text(draw):
    """A real Tokenizer over a small random vocabulary of integer counts."""
    counts = {bytes([b]): draw(st.integers(1, 5)) for b in range(256)}
    for b in ALPHABET:
        counts[bytes([b])] = draw(st.integers(1, 400))
    for piece in draw(
        st.lists(
            st.binary(min_size=2, max_size=4).map(lambda raw: bytes(ALPHABET[x % len(ALPHABET)] for x in raw)),
            max_size=10,
        )
    ):
        counts[piece] = draw(st.integers(1, 400))
    tok = Tokenizer(vocabulary_from_counts(counts), seed=5)
    oracle = ReferenceLattice(dict(zip(tok.vocabulary.pieces, tok._logprobs.tolist())))
    text = bytes(ALPHABET[x % len(ALPHABET)] for x in draw(st.binary(max_size=9)))
    return tok, oracle, text


def _lattice(vocab):
    pieces = list(vocab)
    return pieces, Lattice(pieces, [vocab[p] for p in pieces], np.arange(len(pieces)))


def _nbest_pieces(lattice, pieces, text, n):
    return [([pieces[v] for v in vals], score) for vals, _, score in queries.nbest(lattice, text, n)]


# ---------------------------------------------------------------------------
# The core against the oracle, on random vocabularies


@HYP
@given(vocab_and_text(dyadic=True), st.integers(1, 60))
def test_nbest_is_the_sorted_enumeration_exact_ties(vt, n):
    vocab, text = vt
    pieces, lattice = _lattice(vocab)
    oracle = ReferenceLattice(vocab)
    got = _nbest_pieces(lattice, pieces, text, n)
    assert got == oracle.nbest(text, n)
    # With exact arithmetic the order is simply: score, then the longer last piece,
    # then the longer piece before it, ... (within a chunk).
    if len(split_chunks(text)) <= 1:
        keys = [(-s, [-len(p) for p in reversed(path)]) for path, s in got]
        assert keys == sorted(keys)
    assert len(got) == min(n, len(list(oracle.segmentations(text))))
    assert len({tuple(p) for p, _ in got}) == len(got)
    if got:
        assert got[0][0] == lattice.pieces(text)


@HYP
@given(vocab_and_text(dyadic=False), st.integers(1, 60))
def test_nbest_matches_the_oracle_bit_for_bit(vt, n):
    vocab, text = vt
    pieces, lattice = _lattice(vocab)
    got = _nbest_pieces(lattice, pieces, text, n)
    assert got == ReferenceLattice(vocab).nbest(text, n)
    if got:
        assert got[0][0] == lattice.pieces(text)


@HYP
@given(vocab_and_text(dyadic=False), st.sampled_from(ALPHAS))
def test_entropy_log_prob_and_marginals_match_the_enumeration(vt, alpha):
    vocab, text = vt
    pieces, lattice = _lattice(vocab)
    oracle = ReferenceLattice(vocab)
    dist = oracle.distribution(text, alpha)
    logz, ent, escore = queries.entropy(lattice, text, alpha)
    assert math.isclose(logz, oracle.log_partition_enumerated(text, alpha), rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(ent, oracle.entropy(text, alpha), rel_tol=1e-9, abs_tol=1e-9)
    expected_score = math.fsum(p * s for (path, s) in oracle.segmentations(text) for p in [dist[path]])
    assert math.isclose(escore, expected_score, rel_tol=1e-9, abs_tol=1e-9)
    if alpha > 0:  # H = log Z - alpha * E[score]
        assert math.isclose(ent, logz - alpha * escore, rel_tol=1e-7, abs_tol=1e-7)
    _, marg = queries.boundary_marginals(lattice, text, alpha)
    np.testing.assert_allclose(marg, oracle.boundary_marginals(text, alpha), rtol=1e-9, atol=1e-12)
    for path, score in oracle.segmentations(text):
        ends = np.cumsum([len(p) for p in path], dtype=np.int64).astype(np.int32)
        got_score, vals = queries.path_score(lattice, text, ends)
        assert got_score == score
        assert [pieces[v] for v in vals] == list(path)
        assert math.isclose(alpha * got_score - logz, math.log(dist[path]), rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.slow
@HYP
@given(tokenizer_and_text(), st.sampled_from(ALPHAS), st.integers(1, 30))
def test_tokenizer_methods_match_the_oracle(tto, alpha, n):
    tok, oracle, text = tto
    assert tok.nbest(text, n) == oracle.nbest(text, n)
    assert math.isclose(
        tok.log_partition(text, alpha), oracle.log_partition_enumerated(text, alpha), rel_tol=1e-12, abs_tol=1e-12
    )
    assert math.isclose(tok.entropy(text, alpha), oracle.entropy(text, alpha), rel_tol=1e-9, abs_tol=1e-9)
    np.testing.assert_allclose(
        tok.boundary_marginals(text, alpha), oracle.boundary_marginals(text, alpha), rtol=1e-9, atol=1e-12
    )
    dist = oracle.distribution(text, alpha)
    total = []
    for path, score in oracle.segmentations(text):
        assert tok.score(text, path) == score
        lp = tok.log_prob(text, path, alpha)
        assert math.isclose(lp, math.log(dist[path]), rel_tol=1e-9, abs_tol=1e-9)
        total.append(lp)
    assert math.isclose(math.fsum(math.exp(v) for v in total), 1.0, rel_tol=1e-9)
    drawn = tok.tokenize(text, alpha=alpha, key=n)
    assert tuple(drawn) in dist


# ---------------------------------------------------------------------------
# Edge cases and the façade


def test_chunk_crossing_and_unknown_pieces():
    vocab = {bytes([b]): -3.0 for b in range(256)}
    vocab.update({b"a\nb": -1.0, b"ab": -1.0})
    pieces, lattice = _lattice(vocab)
    score, _ = queries.path_score(lattice, b"a\nb", np.array([3], dtype=np.int32))
    assert score == -math.inf  # "a\nb" crosses the chunk start at 2
    assert queries.path_score(lattice, b"a\nb", np.array([3], dtype=np.int32), chunked=False)[0] == -1.0
    with pytest.raises(ValueError, match="not in the vocabulary"):
        queries.path_score(lattice, b"abc", np.array([3], dtype=np.int32))
    with pytest.raises(ValueError, match="cover"):
        queries.path_score(lattice, b"abc", np.array([2], dtype=np.int32))
    # nbest never uses the crossing piece.
    assert _nbest_pieces(lattice, pieces, b"a\nb", 10) == [([b"a", b"\n", b"b"], -9.0)]


def test_empty_text(tok):
    assert tok.nbest("", 3) == [([], 0.0)]
    assert tok.log_partition("") == 0.0
    assert tok.entropy("") == 0.0
    assert tok.log_prob("", []) == 0.0
    assert tok.boundary_marginals("").tolist() == [1.0]


def test_argument_errors(tok):
    with pytest.raises(ValueError):
        tok.nbest("abc", 0)
    for method in (tok.log_partition, tok.entropy, tok.boundary_marginals):
        with pytest.raises(ValueError):
            method("abc", alpha=-1)
        with pytest.raises(ValueError):
            method("abc", alpha=float("nan"))
    with pytest.raises(ValueError, match="concatenate"):
        tok.log_prob("abc", [b"ab"])
    with pytest.raises(TypeError):
        tok.log_prob("abc", [1.5])


def _heldout_lines(name, count):
    text = (CORPORA / name).read_text(encoding="utf-8")
    return [line for line in text.splitlines(keepends=True) if line.strip()][:count]


@pytest.mark.parametrize("corpus", ["en.heldout.txt", "zh.heldout.txt", "code.heldout.txt"])
def test_real_model_nbest_and_scores(tok, corpus):
    lines = _heldout_lines(corpus, 40)
    for line in lines[:20]:
        best = tok.nbest(line, 8)
        assert best[0][0] == tok.tokenize(line)
        scores = [s for _, s in best]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(p) for p, _ in best}) == len(best)
        for pieces, score in best:
            assert b"".join(pieces) == line.encode()
            assert tok.score(line, pieces) == score
    # A multi-chunk text: the best path is still Viterbi's, piece for piece.
    block = "".join(lines)
    assert tok.nbest(block, 3)[0][0] == tok.tokenize(block)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.0])
def test_real_model_quantities_agree(tok, alpha):
    text = "Exact sampling: 自然语言处理 and x += 1;\n\nsecond chunk"
    logz = tok.log_partition(text, alpha)
    ent = tok.entropy(text, alpha)
    marg = tok.boundary_marginals(text, alpha)
    assert math.isclose(logz, queries.boundary_marginals(tok._lattice, tok._to_bytes(text), alpha)[0], rel_tol=1e-12)
    assert ent >= 0
    assert marg[0] == 1.0 and marg[-1] == 1.0 and len(marg) == len(text.encode()) + 1
    assert np.all((marg >= -1e-12) & (marg <= 1 + 1e-12))
    assert marg[text.encode().index(b"\n\n") + 2] == pytest.approx(1.0)  # a chunk boundary
    # log_prob of drawn samples: their empirical mean estimates -H (law of large numbers).
    draws = [tok.tokenize(text, alpha=alpha, key=k) for k in range(400)]
    lps = np.array([tok.log_prob(text, d, alpha) for d in draws])
    assert np.all(lps <= 1e-12)
    assert abs(-lps.mean() - ent) < 6 * lps.std() / math.sqrt(len(lps)) + 1e-9
    # Pieces as ids and as bytes give the same answer.
    ids = tok.encode(text, alpha=alpha, key=1)
    assert tok.log_prob(text, ids, alpha) == tok.log_prob(text, tok.ids_to_pieces(ids), alpha)


@HYP
@given(vocab_and_text(dyadic=False), st.sampled_from(ALPHAS))
def test_expected_counts_match_the_enumeration(vt, alpha):
    """E-step counts (forward-backward, linear and log space) = sum over segmentations
    of P(path) x occurrences of each piece."""
    vocab, text = vt
    pieces, lattice = _lattice(vocab)
    oracle = ReferenceLattice(vocab, chunked=False)
    want = np.zeros(len(pieces))
    index = {p: i for i, p in enumerate(pieces)}
    for path, prob in oracle.distribution(text, alpha).items():
        for piece in path:
            want[index[piece]] += prob
    for logspace in (False, True):
        got = np.zeros(len(pieces))
        logz = em.expected_counts(lattice, [text], got, alpha=alpha, chunked=False, logspace=logspace)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
        assert math.isclose(logz, oracle.log_partition_enumerated(text, alpha), rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("alpha", [0.1, 1.0, 5.0, "edge"])
def test_linear_and_log_forward_backward_agree_on_long_texts(tok, alpha):
    """Linear space renormalises mantissas by powers of two (many times over a long text
    at large alpha, with edges spanning renormalisations); it must agree with the
    log-space computation. "edge": the largest alpha linear space accepts."""
    lattice = tok._lattice
    if alpha == "edge":
        alpha = 599.0 / -lattice.min_logprob
    text = "".join(
        _heldout_lines("en.heldout.txt", 60)
        + _heldout_lines("zh.heldout.txt", 30)
        + _heldout_lines("code.heldout.txt", 60)
    ).encode()
    n = tok.vocab_size
    for chunked in (False, True):
        lin, log = np.zeros(n), np.zeros(n)
        z_lin = em.expected_counts(lattice, [text, text[:1000]], lin, alpha=alpha, chunked=chunked, logspace=False)
        z_log = em.expected_counts(lattice, [text, text[:1000]], log, alpha=alpha, chunked=chunked, logspace=True)
        assert math.isclose(z_lin, z_log, rel_tol=1e-12)
        np.testing.assert_allclose(lin, log, rtol=1e-8, atol=1e-10)
        assert lin.sum() > len(text) / 10  # the counts are not all lost to underflow
        m_lin = queries.boundary_marginals(lattice, text, alpha, chunked=chunked, logspace=False)
        m_log = queries.boundary_marginals(lattice, text, alpha, chunked=chunked, logspace=True)
        assert math.isclose(m_lin[0], m_log[0], rel_tol=1e-12)
        np.testing.assert_allclose(m_lin[1], m_log[1], rtol=1e-8, atol=1e-10)


def test_alpha_zero_counts_segmentations(tok):
    text = "tokenizer"
    cut = {p: lp for p, lp in zip(tok.vocabulary.pieces, tok._logprobs.tolist()) if len(p) == 1 or p in text.encode()}
    count = len(list(ReferenceLattice(cut).segmentations(text.encode())))
    assert math.isclose(tok.log_partition(text, 0.0), math.log(count), rel_tol=1e-12)
    assert math.isclose(tok.entropy(text, 0.0), math.log(count), rel_tol=1e-12)
    assert len(tok.nbest(text, 10_000)) == count


# ---------------------------------------------------------------------------
# k distinct samples without replacement


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokenizer_and_text(), st.sampled_from(ALPHAS), st.integers(1, 12), st.integers(0, 1000))
def test_sample_distinct_returns_distinct_valid_segmentations(tto, alpha, k, key):
    tok, oracle, text = tto
    dist = oracle.distribution(text, alpha)
    got = tok.sample_distinct(text, k, alpha, key=key)
    paths = [tuple(p) for p, _, _ in got]
    assert len(set(paths)) == len(paths) == min(k, len(dist))
    for path, log_p, inclusion in got:
        assert tuple(path) in dist
        assert math.isclose(log_p, math.log(dist[tuple(path)]), rel_tol=1e-9, abs_tol=1e-9)
        assert 0.0 < inclusion <= 1.0 or dist[tuple(path)] < 1e-300
    if k >= len(dist):
        assert all(inclusion == 1.0 for _, _, inclusion in got)
    assert tok.sample_distinct(text, k, alpha, key=key) == got


def _small_tokenizer():
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update(
        {
            b"a": 40,
            b"b": 30,
            b"ab": 25,
            b"ba": 12,
            b"aba": 9,
            b"bab": 3,
            b"\xc3": 5,
            b"\xa9": 5,
            b"\xc3\xa9": 20,
            b"b\xc3": 2,
        }
    )
    tok = Tokenizer(vocabulary_from_counts(counts), seed=11)
    oracle = ReferenceLattice(dict(zip(tok.vocabulary.pieces, tok._logprobs.tolist())))
    return tok, oracle, "abaé".encode()


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_sample_distinct_is_successive_sampling(alpha):
    """The ordered pair (first, second) has probability p(a) * p(b) / (1 - p(a)).
    Chi-square with pooling (expected < 5), 4,000 draws, fixed keys; level 1e-4 per test."""
    tok, oracle, text = _small_tokenizer()
    dist = oracle.distribution(text, alpha)
    paths = sorted(dist, key=lambda path: -dist[path])
    pairs = [(a, b) for a in paths for b in paths if a != b]
    index = {pair: i for i, pair in enumerate(pairs)}
    p = np.array([dist[a] * dist[b] / (1.0 - dist[a]) for a, b in pairs])
    assert math.isclose(p.sum(), 1.0, rel_tol=1e-12)
    draws = 4000
    counts = np.zeros(len(pairs))
    for key in range(draws):
        (a, _, _), (b, _, _) = tok.sample_distinct(text, 2, alpha, key=key)
        counts[index[(tuple(a), tuple(b))]] += 1
    expected = draws * p
    small = expected < 5
    e, o = expected[~small], counts[~small]
    if small.any():
        e = np.append(e, expected[small].sum())
        o = np.append(o, counts[small].sum())
    from scipy import stats

    pvalue = stats.chi2.sf(((o - e) ** 2 / e).sum(), len(e) - 1)
    assert len(e) >= 10 and pvalue > 1e-4, (len(e), pvalue)


@pytest.mark.slow
def test_sample_distinct_inclusion_weights_are_unbiased():
    """sum over the k drawn of p / q * f estimates E_p[f] without bias (f = number of
    pieces); 3,000 fixed-key draws, |z| < 4.5 (about 1e-5 two-sided)."""
    tok, oracle, text = _small_tokenizer()
    alpha = 0.5
    dist = oracle.distribution(text, alpha)
    truth = sum(p * len(path) for path, p in dist.items())
    estimates = []
    for key in range(3000):
        got = tok.sample_distinct(text, 3, alpha, key=key)
        estimates.append(sum(math.exp(lp) / q * len(path) for path, lp, q in got))
    estimates = np.array(estimates)
    z = (estimates.mean() - truth) / (estimates.std(ddof=1) / math.sqrt(len(estimates)))
    assert abs(z) < 4.5, (estimates.mean(), truth)


@pytest.mark.parametrize("text, alpha", [("hello world", 300.0), ("自然", 50.0), ("the", 10_000.0)])
def test_sample_distinct_at_large_alpha_gives_inclusion_one(tok, text, alpha):
    """When one segmentation holds nearly all the mass, log p - kappa passes 709 and the
    inclusion probability 1 - exp(-exp(log p - kappa)) raised OverflowError (at alpha 50
    for a two-character text) instead of being 1."""
    for k in (1, 2):
        got = tok.sample_distinct(text, k, alpha, key=0)
        assert got[0][0] == tok.tokenize(text) and got[0][2] == 1.0
        assert all(0.0 <= q <= 1.0 for _, _, q in got)


def test_split_scores_are_the_best_split_without_the_whole_piece(tok):
    """What the EM pruning charges for removing a piece: the score of its best split into
    other pieces, one float per piece, equal to the Viterbi split's summed log-probs."""
    lattice = tok._lattice
    pieces = list(tok.vocabulary.pieces)
    logp = tok._logprobs
    sample = pieces[::97] + [b"", b"x", "自然语言".encode(), b"tokenization"]
    scores = em.split_scores(lattice, sample)
    first = FIRST_PIECE_ID
    for data, score in zip(sample, scores):
        if not data:
            assert score == 0.0
            continue
        ids = testing.viterbi_split(lattice, data, forbid_whole=True)
        parts = [pieces[i - first] for i in ids]
        assert b"".join(parts) == data
        if len(data) > 1:
            assert parts != [data]
        assert math.isclose(score, math.fsum(logp[i - first] for i in ids), rel_tol=1e-12, abs_tol=1e-12)


def test_with_logprobs_lattice_samples_at_alpha_zero_as_a_new_lattice(tok):
    # A copy's first draw at alpha 0 once found the uninitialised "last alpha" (0.0)
    # and sampled with the log-probabilities as weights (and could crash).
    pieces = list(tok.vocabulary.pieces)
    ids = np.arange(len(pieces))
    copy = Lattice(pieces, tok._logprobs, ids).with_logprobs(tok._logprobs)
    fresh = Lattice(pieces, tok._logprobs, ids)
    texts = [line.encode() for line in _heldout_lines("en.heldout.txt", 20)]
    for alpha in (0.0, 0.5, 0.0):
        assert [copy.sample(t, alpha, 1, k) for k, t in enumerate(texts)] == [
            fresh.sample(t, alpha, 1, k) for k, t in enumerate(texts)
        ]


def test_with_logprobs_equals_a_new_lattice_and_outlives_its_source(tok):
    import gc

    pieces = list(tok.vocabulary.pieces)
    ids = np.arange(len(pieces))
    source = Lattice(pieces, tok._logprobs, ids)
    other = np.log(np.linspace(1, 2, len(pieces)))
    other -= np.log(np.exp(other).sum())
    shared = source.with_logprobs(other).with_logprobs(other)  # a copy of a copy
    del source
    gc.collect()
    fresh = Lattice(pieces, other, ids)
    texts = [line.encode() for line in _heldout_lines("en.heldout.txt", 20) + _heldout_lines("zh.heldout.txt", 5)]
    assert encode_lists(shared, texts, chunked=False) == encode_lists(fresh, texts, chunked=False)
    assert encode_lists(shared, texts, chunked=False) != encode_lists(
        Lattice(pieces, tok._logprobs, ids), texts, chunked=False
    )
    a, b = np.zeros(len(pieces)), np.zeros(len(pieces))
    assert em.expected_counts(shared, texts, a) == em.expected_counts(fresh, texts, b)
    assert (a == b).all()
    assert shared.min_logprob == fresh.min_logprob
    with pytest.raises(ValueError, match="log-probabilities"):
        shared.with_logprobs(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        shared.with_logprobs(np.full(len(pieces), np.nan))


def test_sampled_batches_need_one_seed_and_key_word_per_text(tok):
    lattice = tok._lattice
    texts = [b"abc", b"def"]
    one = np.zeros(1, dtype=np.uint64)
    two = np.zeros(2, dtype=np.uint64)
    for method in (encode_lists, encode_flat):
        for seeds, keys in ((None, None), (two, None), (two, one)):
            with pytest.raises(ValueError, match="one seed word and one key word per text"):
                method(lattice, texts, alpha=0.5, seed_words=seeds, key_words=keys)
        assert len(method(lattice, texts, alpha=0.5, seed_words=two, key_words=two)) > 0
        assert len(method(lattice, texts)) > 0  # Viterbi needs no words


@pytest.mark.parametrize("logspace", [False, True])
def test_weighted_expected_counts_equal_repeated_texts(tok, logspace):
    """A text with weight w counts as w copies of it (counts and log Z), in both spaces."""
    lattice = tok._lattice
    n = tok.vocab_size
    texts = [line.encode() for line in _heldout_lines("en.heldout.txt", 8) + _heldout_lines("zh.heldout.txt", 4)]
    weights = np.array([1, 3, 0, 2, 5, 1, 1, 4, 2, 7, 1, 3][: len(texts)], dtype=np.float64)
    repeated = [t for t, w in zip(texts, weights.astype(int).tolist()) for _ in range(w)]
    want, got = np.zeros(n), np.zeros(n)
    z_want = em.expected_counts(lattice, repeated, want, alpha=0.5, logspace=logspace)
    z_got = em.expected_counts(lattice, texts, got, alpha=0.5, logspace=logspace, weights=weights)
    assert math.isclose(z_got, z_want, rel_tol=1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    half = np.zeros(n)
    em.expected_counts(lattice, texts, half, alpha=0.5, logspace=logspace, weights=weights / 2)
    np.testing.assert_allclose(half, want / 2, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="weights"):
        em.expected_counts(lattice, texts, got, alpha=0.5, weights=weights[:-1])


def test_viterbi_pair_counts_match_the_segmentations(tok):
    """count_viterbi_pairs adds each text's weight once per adjacent pair of pieces of its
    Viterbi split (unchunked); tables merge and pickle; arrays() filters and sorts."""
    import pickle
    from collections import Counter

    from bytepiece._core.pair_counts import PairCounts

    pieces = list(tok.vocabulary.pieces)
    n = len(pieces)
    lattice = Lattice(pieces, tok._logprobs, np.arange(n))
    texts = [line.encode() for line in _heldout_lines("code.heldout.txt", 30) + _heldout_lines("zh.heldout.txt", 10)]
    texts += [b"", b"x", b"two\nlines\n"]
    weights = np.arange(1, len(texts) + 1, dtype=np.int64) * 3
    want: Counter = Counter()
    want_unigrams = np.zeros(n, dtype=np.int64)
    for text, w in zip(texts, weights.tolist()):
        seg = encode_lists(lattice, [text], chunked=False)[0]
        for a, b in zip(seg, seg[1:]):
            want[a * n + b] += w
        for a in seg:
            want_unigrams[a] += w
    whole = PairCounts(n)
    unigrams = np.full(n, 5, dtype=np.int64)  # (added to, not overwritten)
    em.count_viterbi_pairs(lattice, texts, weights, whole, unigrams=unigrams)
    keys, counts = whole.arrays()
    assert dict(zip(keys.tolist(), counts.tolist())) == dict(want)
    assert np.array_equal(unigrams, want_unigrams + 5) and want_unigrams.sum() > 0
    # viterbi_counts: float weights, the same floats as bincount over the segmentations
    float_weights = weights / 7.0
    flat, rows, _ = encode_flat(lattice, texts, chunked=False)
    want_counts = np.bincount(flat, weights=np.repeat(float_weights, np.diff(rows)), minlength=n)
    got_counts = np.zeros(n)
    em.viterbi_counts(lattice, texts, float_weights, got_counts)
    assert np.array_equal(got_counts, want_counts) and got_counts.sum() > 0
    with pytest.raises(ValueError, match="weights"):
        em.viterbi_counts(lattice, texts, float_weights[:-1], got_counts)
    with pytest.raises(ValueError, match="counts"):
        em.viterbi_counts(lattice, texts, float_weights, np.zeros(n + 1))
    assert list(keys) == sorted(keys) and len(whole) == len(want)
    # Two tables over the halves, merged, are the same table (integer sums: any order).
    left, right = PairCounts(n), PairCounts(n, expected=10)
    em.count_viterbi_pairs(lattice, texts[1::2], weights[1::2], right)
    em.count_viterbi_pairs(lattice, texts[::2], weights[::2], left)
    left.merge(right)
    assert all(np.array_equal(x, y) for x, y in zip(left.arrays(), whole.arrays()))
    # With an `odd` table, the pairs split in two by a hash of their key: disjoint halves
    # (each near half) that together are the whole table; the unigrams are unchanged.
    even, odd = PairCounts(n), PairCounts(n)
    split_unigrams = np.zeros(n, dtype=np.int64)
    em.count_viterbi_pairs(lattice, texts, weights, even, unigrams=split_unigrams, odd=odd)
    halves = [dict(zip(*(x.tolist() for x in table.arrays()))) for table in (even, odd)]
    assert not halves[0].keys() & halves[1].keys() and {**halves[0], **halves[1]} == dict(want)
    assert 0.3 < len(halves[1]) / len(want) < 0.7 and np.array_equal(split_unigrams, want_unigrams)
    with pytest.raises(ValueError, match="pieces"):
        em.count_viterbi_pairs(lattice, texts, weights, PairCounts(n), odd=PairCounts(n + 1))
    copy = pickle.loads(pickle.dumps(whole))
    assert all(np.array_equal(x, y) for x, y in zip(copy.arrays(), whole.arrays()))
    floor = sorted(want.values())[len(want) // 2]
    k2, c2 = whole.arrays(floor)
    assert dict(zip(k2.tolist(), c2.tolist())) == {k: v for k, v in want.items() if v >= floor}
    with pytest.raises(ValueError, match="weights"):
        em.count_viterbi_pairs(lattice, texts, weights[:-1], whole)
    with pytest.raises(ValueError, match="pieces"):
        em.count_viterbi_pairs(lattice, texts, weights, PairCounts(n + 1))
    with pytest.raises(ValueError, match="unigrams"):
        em.count_viterbi_pairs(lattice, texts, weights, PairCounts(n), unigrams=np.zeros(n - 1, dtype=np.int64))
    with pytest.raises(ValueError, match="different"):
        whole.merge(PairCounts(n + 1))


def test_pair_tables_merge_across_growth():
    """merge adds in runs of 256 entries and grows the table on the way: two tables of
    thousands of keys, half of them shared, merge into their sum."""
    from collections import Counter

    from bytepiece._core.pair_counts import PairCounts

    rng = np.random.default_rng(7)
    n = 1000
    shared = rng.integers(0, n * n, 3000)
    parts = [np.concatenate([shared, rng.integers(0, n * n, 5000)]) for _ in range(2)]
    tables, want = [], Counter()
    for keys in parts:
        values = rng.integers(1, 1 << 40, len(keys))
        table = PairCounts(n)
        table.add_array(keys, values)
        tables.append(table)
        for k, v in zip(keys.tolist(), values.tolist()):
            want[k] += v
    left, right = tables
    left.merge(right)
    keys, counts = left.arrays()
    assert len(left) == len(want) > 10000
    assert dict(zip(keys.tolist(), counts.tolist())) == dict(want)


def test_trie_finds_every_piece_whatever_their_shared_endings():
    """The trie sorts the reversed pieces by their last 8 bytes first; pieces that share
    those (long runs of them here: code's indentation, a common suffix) are ordered by
    the whole piece. Every piece must come out as itself: with multi-byte pieces at
    log-probability -1 and single bytes at -100, a piece's best split is the piece."""
    rng = np.random.default_rng(11)
    suffix = b"_" * 9 + b"x"
    pieces = {bytes([b]) for b in range(256)}
    pieces |= {rng.integers(97, 100, rng.integers(0, 6)).astype(np.uint8).tobytes() + suffix for _ in range(200)}
    pieces |= {b" " * k for k in range(2, 40)} | {b"if" + b" " * k for k in range(1, 30)}
    pieces |= {rng.integers(0, 256, rng.integers(2, 12)).astype(np.uint8).tobytes() for _ in range(2000)}
    pieces = sorted(pieces, key=lambda p: (len(p), p))
    logp = np.array([-100.0 if len(p) == 1 else -1.0 for p in pieces])
    lattice = Lattice(pieces, logp, np.arange(len(pieces)))
    assert encode_lists(lattice, pieces, chunked=False) == [[i] for i in range(len(pieces))]
    assert sum(p.endswith(suffix[-8:]) for p in pieces) > 50 and lattice.max_len == max(map(len, pieces))
    with pytest.raises(ValueError, match="twice"):
        Lattice(pieces + [b"b" + suffix], np.full(len(pieces) + 1, -1.0), np.arange(len(pieces) + 1))


def test_lattice_rejects_bad_piece_lists():
    singles = [bytes([b]) for b in range(256)]
    zeros = lambda k: np.full(k, -1.0)
    ok = singles + [b"ab", bytearray(b"ba")]  # any bytes-like piece is taken as bytes
    lattice = Lattice(ok, zeros(len(ok)), np.arange(len(ok)))
    assert encode_lists(lattice, [b"abba"], chunked=False) == [[256, 257]]
    for bad, message in [
        (singles + [b""], "empty"),
        (singles + [b"ab", b"ab"], "twice"),
        (singles + [b"\x00"], "twice"),
        (singles[1:] + [b"xy"], "1 missing"),
    ]:
        with pytest.raises(ValueError, match=message):
            Lattice(bad, zeros(len(bad)), np.arange(len(bad)))


def test_the_examples_in_docs_exact_sampling_run(tok):
    import doctest
    import re

    doc = (TESTS.parent / "docs" / "exact-sampling.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if ">>>" in b]
    assert blocks
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for block in blocks:
        test = parser.get_doctest(
            block, {"tok": Tokenizer(TESTS / "data" / "bytepiece.plus.40k.zip")}, "docs/exact-sampling.md", None, 0
        )
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
