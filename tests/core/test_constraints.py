"""Boundary constraints restrict the lattice itself: every kernel (Viterbi, the exact
sampler, many draws from one pass, n-best, log Z, entropy, boundary and piece
marginals, the edge list) answers for the allowed segmentations only, against the
brute-force oracle that enumerates exactly those (reference.ConstrainedReference).

The statistical tests follow tests/core/test_sampling_exact.py: fixed seeds, Pearson's
chi-square over cells of expected count >= 5, each test at level 0.001 (the suite's
constrained-sampling family is 8 tests: 4 cases x the one-draw and many-draw paths,
so the family-wise level is at most 0.008).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bytepiece._core import draws, queries, testing
from bytepiece._core.lattice import Lattice
from bytepiece.reference import ConstrainedReference, chi_square, chi_square_sf, keeps_constraints

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from strategies import vocab_and_text  # noqa: E402

HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LEVEL = 0.001
N_DRAWS = 20_000
SEED_WORD = 0xC0_5717


def _lattice(vocab):
    pieces = list(vocab)
    return pieces, Lattice(pieces, [vocab[p] for p in pieces], np.arange(len(pieces)))


def _masks(n, required, forbidden):
    cuts = banned = None
    if required:
        cuts = np.zeros(n + 1, dtype=np.uint8)
        cuts[list(required)] = 1
    if forbidden:
        banned = np.zeros(n + 1, dtype=np.uint8)
        banned[list(forbidden)] = 1
    return cuts, banned


def _chunk_starts(text: bytes) -> set[int]:
    return {i for i in range(1, len(text)) if text[i - 1] == 10 and text[i] != 10}


@st.composite
def constrained_case(draw, forbid: bool = True):
    """(vocab, text, required, forbidden): random positions inside the text, never
    forbidding an end or a chunk start, never both required and forbidden."""
    vocab, text = draw(vocab_and_text(dyadic=True))
    inner = list(range(1, len(text)))
    required = set(draw(st.lists(st.sampled_from(inner), max_size=3))) if inner else set()
    free = [i for i in inner if i not in required and i not in _chunk_starts(text)]
    forbidden = set(draw(st.lists(st.sampled_from(free), max_size=2))) if (free and forbid) else set()
    return vocab, text, required, forbidden


def _segments(pieces, vals):
    return [pieces[v] for v in vals]


@HYP
@given(constrained_case())
def test_every_query_answers_for_the_allowed_segmentations(case):
    vocab, text, required, forbidden = case
    pieces, lattice = _lattice(vocab)
    oracle = ConstrainedReference(vocab, required, forbidden)
    cuts, banned = _masks(len(text), required, forbidden)
    allowed = list(oracle.segmentations(text))
    if text and not allowed:
        with pytest.raises(ValueError, match="no segmentation"):
            lattice.segment(text, cuts=cuts, banned=banned)
        assert queries.first_unreachable(lattice, text, cuts=cuts, banned=banned) >= 0
        logz, _, _ = queries.entropy(lattice, text, 1.0, cuts=cuts, banned=banned)
        assert logz == -math.inf
        return
    assert queries.first_unreachable(lattice, text, cuts=cuts, banned=banned) == -1
    # Viterbi (the tie rule included) and n-best: the oracle's ranking, filtered.
    vals, _ = lattice.segment(text, cuts=cuts, banned=banned)
    got = _segments(pieces, vals)
    assert keeps_constraints(got, required, forbidden)
    if text:
        assert got == oracle.viterbi(text)
    best = [(_segments(pieces, v), s) for v, _, s in queries.nbest(lattice, text, 12, cuts=cuts, banned=banned)]
    assert best == oracle.nbest(text, 12)
    for alpha in (0.0, 0.5, 1.0):
        logz, ent, _ = queries.entropy(lattice, text, alpha, cuts=cuts, banned=banned)
        assert logz == pytest.approx(oracle.log_partition(text, alpha), rel=1e-9, abs=1e-12)
        assert ent == pytest.approx(oracle.entropy(text, alpha), rel=1e-9, abs=1e-9)
        logz_b, marg = queries.boundary_marginals(lattice, text, alpha, cuts=cuts, banned=banned)
        assert marg.tolist() == pytest.approx(oracle.boundary_marginals(text, alpha), abs=1e-9)
        logz_p, starts, ends, values, probs = queries.piece_marginals(lattice, text, alpha, cuts=cuts, banned=banned)
        got_edges = {(s, e, pieces[v]): p for s, e, v, p in zip(starts, ends, values, probs) if p > 0}
        want = oracle.piece_marginals(text, alpha)
        assert set(got_edges) == set(want)
        for edge, p in want.items():
            assert got_edges[edge] == pytest.approx(p, rel=1e-9, abs=1e-12)


@HYP
@given(constrained_case(), st.sampled_from([0.0, 0.3, 1.0]))
def test_many_draws_are_allowed_and_carry_their_exact_log_probability(case, alpha):
    vocab, text, required, forbidden = case
    pieces, lattice = _lattice(vocab)
    oracle = ConstrainedReference(vocab, required, forbidden)
    if text and not list(oracle.segmentations(text)):
        return
    cuts, banned = _masks(len(text), required, forbidden)
    vals, ends, rows, logps = draws.sample_many(lattice, text, 16, alpha, 3, 9, cuts=cuts, banned=banned)
    assert len(rows) == 17 and len(logps) == 16
    for i in range(16):
        path = _segments(pieces, vals[rows[i] : rows[i + 1]])
        assert b"".join(path) == text
        assert keeps_constraints(path, required, forbidden)
        assert logps[i] == pytest.approx(oracle.log_prob(text, path, alpha), rel=1e-9, abs=1e-9)


@HYP
@given(vocab_and_text(dyadic=True))
def test_the_edge_list_is_every_place_a_piece_can_stand(vt):
    vocab, text = vt
    pieces, lattice = _lattice(vocab)
    oracle = ConstrainedReference(vocab)
    starts, ends, values = queries.edges(lattice, text)
    got = {(int(s), int(e), pieces[v]) for s, e, v in zip(starts, ends, values)}
    want = set()
    offset = 0
    from bytepiece.reference import split_chunks

    for chunk in split_chunks(text):
        for e in range(1, len(chunk) + 1):
            for s in oracle.edges_ending_at(chunk, e):
                want.add((offset + s, offset + e, chunk[s:e]))
        offset += len(chunk)
    assert got == want
    assert len(got) == len(starts)  # no edge twice


def test_required_boundaries_always_leave_the_single_bytes():
    vocab = {bytes([b]): -5.0 for b in range(256)}
    vocab[b"abcd"] = -1.0
    pieces, lattice = _lattice(vocab)
    text = b"abcdabcd"
    cuts, _ = _masks(len(text), set(range(1, len(text))), ())
    vals, _ = lattice.segment(text, cuts=cuts)
    assert _segments(pieces, vals) == [bytes([c]) for c in text]


def test_a_forbidden_boundary_no_piece_spans_names_the_position():
    vocab = {bytes([b]): -5.0 for b in range(256)}
    vocab[b"ab"] = -1.0
    pieces, lattice = _lattice(vocab)
    text = b"abcd"
    _, banned = _masks(len(text), (), {3})  # nothing spans c|d
    assert queries.first_unreachable(lattice, text, banned=banned) == 4
    with pytest.raises(ValueError, match="no segmentation"):
        lattice.segment(text, banned=banned)


def test_the_exact_sampler_picks_an_edge_even_when_the_uniform_reaches_the_total():
    """u == total (a product rounded up, or a total of 0 where constraints leave no start
    reachable) picks the last edge; the padding after the sums is never an edge."""
    assert testing.pick_edge([1.0, 2.0], 0.5) == 0
    assert testing.pick_edge([1.0, 2.0], 1.0) == 1
    assert testing.pick_edge([1.0, 2.0], 2.0) == 1
    assert testing.pick_edge([0.0, 0.0], 0.0) == 1
    assert testing.pick_edge([0.0] * 6, 0.0) == 5
    assert testing.pick_edge([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 4.5) == 4


def test_a_position_whose_pieces_all_start_unreachable_is_no_segmentation_for_every_call():
    """Two pieces end at byte 7, both starting at a forbidden position: the sampler's
    sums there are 0, and every call (Lattice.segment, the Tokenizer's per-call
    constrained path) says that nothing is left instead of walking back over a choice it
    never made."""
    from bytepiece import Tokenizer
    from bytepiece.model import vocabulary_from_counts

    vocab = {bytes([b]): -5.0 for b in range(256)}
    vocab.update({b"ab": -1.0, b"cd": -2.0})
    pieces, lattice = _lattice(vocab)
    text = b"ab\nabcd\nab"
    _, banned = _masks(len(text), (), {5, 6})
    assert queries.first_unreachable(lattice, text, banned=banned) == 7
    for alpha in (-1.0, 0.0, 0.5, 5000.0):
        for key in range(50):
            with pytest.raises(ValueError, match="no segmentation"):
                lattice.segment(text, alpha=alpha, seed_word=1, key_word=key, banned=banned)
    tok = Tokenizer(vocabulary_from_counts({p: round(100 * math.exp(5 + lp)) for p, lp in vocab.items()}))
    for key in range(50):
        with pytest.raises(ValueError, match="no allowed piece reaches byte 7"):
            tok.encode(text, alpha=0.5, key=key, forbidden_boundaries=[5, 6])


@pytest.mark.parametrize("alpha, sampler", [(-1.0, 1), (0.0, 1), (0.5, 1), (0.5, 2), (5000.0, 1)])
def test_a_chunk_left_without_segmentation_is_an_error_for_every_kernel(alpha, sampler):
    """Constraints that leave a later chunk without a segmentation: segment raises for
    every kernel (a sampler's choices at the forbidden positions are still pieces, so the
    walk back never reads a choice it did not make), n-best has no path (it must not
    combine the first chunk's paths with none), many draws raise."""
    vocab = {bytes([b]): -5.0 for b in range(256)}
    vocab[b"ab"] = -1.0
    pieces, lattice = _lattice(vocab)
    text = b"ab\nabcd\nab"
    for forbidden, first in (({6}, 7), ({6, 7}, 8), ({5, 6}, 7)):
        _, banned = _masks(len(text), (), forbidden)  # nothing spans c|d
        assert queries.first_unreachable(lattice, text, banned=banned) == first
        for _ in range(20):
            with pytest.raises(ValueError, match="no segmentation"):
                lattice.segment(text, alpha=alpha, seed_word=1, key_word=_, sampler=sampler, banned=banned)
        assert queries.nbest(lattice, text, 3, banned=banned) == []
        if alpha >= 0:
            with pytest.raises(ValueError, match="no segmentation"):
                draws.sample_many(lattice, text, 3, alpha, 1, 2, banned=banned)


# ---------------------------------------------------------------------------
# Frequencies: constrained draws follow exp(alpha * score) / Z over the allowed set


def _cases():
    english = {bytes([b]): -6.0 for b in range(256)}
    english.update({b"to": -3.0, b"ken": -3.5, b"token": -4.0, b"iz": -4.0, b"er": -3.0, b"izer": -5.0})
    digits = {bytes([b]): -3.0 for b in range(256)}
    digits.update({b"12": -2.5, b"123": -3.0, b"234": -3.0, b"2345": -3.5, b"45": -2.0, b"1234": -4.0})
    return [
        ("required-inside-word", english, b"tokenizer", {5}, set(), 0.5),
        ("forbidden-forces-span", english, b"tokenizer", set(), {3}, 0.5),
        ("digit-groups", digits, b"12345", {2}, set(), 1.0),
        ("both", digits, b"12345", {3}, {1}, 0.3),
    ]


def _check_frequencies(paths_iter, oracle, text, alpha):
    dist = oracle.distribution(text, alpha)
    observed: dict = {}
    for path in paths_iter:
        path = tuple(path)
        assert path in dist, f"{path} is not an allowed segmentation"
        observed[path] = observed.get(path, 0) + 1
    cells = [(N_DRAWS * p, observed.get(path, 0)) for path, p in dist.items()]
    stat, dof, _ = chi_square(cells)
    p_value = chi_square_sf(stat, dof) if dof > 0 else 1.0
    assert p_value > LEVEL, (p_value, sorted(observed.items(), key=lambda kv: -kv[1])[:5])


@pytest.mark.slow
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_constrained_draws_are_exact(case):
    _, vocab, text, required, forbidden, alpha = case
    pieces, lattice = _lattice(vocab)
    oracle = ConstrainedReference(vocab, required, forbidden)
    cuts, banned = _masks(len(text), required, forbidden)
    draws_one = (
        _segments(
            pieces, lattice.segment(text, alpha=alpha, seed_word=SEED_WORD, key_word=k, cuts=cuts, banned=banned)[0]
        )
        for k in range(N_DRAWS)
    )
    _check_frequencies(draws_one, oracle, text, alpha)


@pytest.mark.slow
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_constrained_many_draws_from_one_pass_are_exact(case):
    _, vocab, text, required, forbidden, alpha = case
    pieces, lattice = _lattice(vocab)
    oracle = ConstrainedReference(vocab, required, forbidden)
    cuts, banned = _masks(len(text), required, forbidden)
    vals, _, rows, _ = draws.sample_many(lattice, text, N_DRAWS, alpha, SEED_WORD, 77, cuts=cuts, banned=banned)
    _check_frequencies((_segments(pieces, vals[rows[i] : rows[i + 1]]) for i in range(N_DRAWS)), oracle, text, alpha)
