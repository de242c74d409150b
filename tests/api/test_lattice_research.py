"""The lattice for research, through the Tokenizer: many draws per pass with their
probabilities, boundary constraints on every call, piece marginals, expected counts,
the lattice's edges, StochasTok, and the range of alpha.

Kernel-level exactness under constraints is in tests/core/test_constraints.py; here
the Python API is checked against the brute-force oracle on a real tokenizer and
against its own other answers. The statistical tests use fixed keys and state their
levels.
"""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

from bytepiece import Tokenizer
from bytepiece.model import vocabulary_from_counts
from bytepiece.reference import ConstrainedReference, chi_square, chi_square_sf, keeps_constraints

TEXT = "The tokenizer splits 1234567 into pieces."


def _pieces_of(tok, ids):
    return [tok.id_bytes[i] for i in ids]


def _small_tokenizer():
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"a": 40, b"b": 30, b"ab": 50, b"ba": 20, b"abab": 10, b"aba": 15, b"bab": 5})
    return Tokenizer(vocabulary_from_counts(counts), seed=3)


def _oracle(tok, required=(), forbidden=()):
    return ConstrainedReference(dict(zip(tok.vocabulary.pieces, tok.piece_log_probs.tolist())), required, forbidden)


# ---------------------------------------------------------------------------
# sample: many draws from one pass


def test_sample_draws_carry_their_exact_log_probability(tok):
    draws = tok.sample(TEXT, 20, 0.3, key="s", with_log_prob=True)
    assert len(draws) == 20
    for ids, logp in draws:
        assert tok.decode(ids) == TEXT
        assert logp == pytest.approx(tok.log_prob(TEXT, ids, 0.3), rel=1e-9, abs=1e-12)
        assert logp <= 0


def test_the_compiled_sample_gives_the_careful_paths_draws(model_path):
    """sample() runs the common call compiled (TokenizerCore.sample) and the rest in
    Python (LatticeSampler.sample); both give the same draws, log-probabilities, errors
    and unkeyed stream."""
    fast, careful = (Tokenizer(model_path, seed=5) for _ in range(2))
    for text in ("tokenizer", "héllo wörld", b"bytes \xff", "", "a\n\nb 12345"):
        for n in (0, 1, 5, np.int64(3), -1, 2.0, True):
            for alpha in (0.0, 0.2, 1, float("nan"), -0.5, 1e9):
                for key in (None, 3, 2**64, "k", -2):
                    for with_log_prob in (False, True):
                        options = {"key": key, "with_log_prob": with_log_prob}
                        got = _outcome(fast.sample, text, n, alpha, **options)
                        want = _outcome(careful._sampler.sample, text, n, alpha, **options)
                        assert got == want, (text, n, alpha, key, with_log_prob)


def test_sample_is_keyed_and_draw_i_does_not_depend_on_n(tok):
    eight = tok.sample(TEXT, 8, 0.2, key=11)
    assert tok.sample(TEXT, 3, 0.2, key=11) == eight[:3]
    assert tok.sample(TEXT, 64, 0.2, key=11)[:8] == eight
    assert tok.sample(TEXT, 8, 0.2, key=12) != eight
    # A copy of the tokenizer in another process gives the same keyed draws (pickling
    # keeps the seed), and so do threads sharing one tokenizer.
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.sample(TEXT, 8, 0.2, key=11) == eight
    got = []
    workers = [threading.Thread(target=lambda: got.append(tok.sample(TEXT, 8, 0.2, key=11))) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert got == [eight] * 4


def test_unkeyed_sample_calls_draw_fresh_samples(tok):
    first = tok.sample(TEXT, 8, 0.5)
    second = tok.sample(TEXT, 8, 0.5)
    assert first != second
    assert tok.sample(TEXT, 0, 0.5) == []
    with pytest.raises(ValueError, match="n must be"):
        tok.sample(TEXT, -1, 0.5)


def test_sample_frequencies_match_the_exact_distribution():
    """40,000 draws of a 6-byte text from one call; chi-square at level 0.001."""
    tok = _small_tokenizer()
    text = b"ababab"
    oracle = _oracle(tok)
    dist = oracle.distribution(text, 0.7)
    draws = tok.sample(text, 40_000, 0.7, key=5)
    seen: dict = {}
    for ids in draws:
        path = tuple(_pieces_of(tok, ids))
        assert path in dist
        seen[path] = seen.get(path, 0) + 1
    stat, dof, _ = chi_square([(40_000 * p, seen.get(path, 0)) for path, p in dist.items()])
    assert chi_square_sf(stat, dof) > 0.001


# ---------------------------------------------------------------------------
# Constraints through the API


def test_required_boundaries_as_positions_or_a_mask_agree(tok):
    data = TEXT.encode()
    positions = [4, 13, 20]
    mask = np.zeros(len(data) + 1, dtype=bool)
    mask[positions] = True
    pieces = tok.tokenize(TEXT, required_boundaries=positions)
    assert pieces == tok.tokenize(TEXT, required_boundaries=mask)
    assert keeps_constraints(pieces, set(positions))
    assert b"".join(pieces) == data
    ids = tok.encode(TEXT, required_boundaries=positions)
    assert _pieces_of(tok, ids) == pieces
    assert tok.encode(TEXT, required_boundaries=positions, as_numpy=True).tolist() == ids


def _careful_encode(tok, text, alpha, key, required, forbidden):
    """encode's ids from the careful path (numpy masks, the runs of spans)."""
    bounds = (required, forbidden, None)
    return tok._encoder.spans(text, False, True, alpha, key, "exact", (), (), bounds, False)[0]


def _outcome(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except (TypeError, ValueError) as error:
        return type(error), str(error)


def test_encode_under_constraints_is_the_careful_paths_answer_in_every_form():
    """encode reads the usual forms of the constraints in the core (a boolean mask, int
    positions as a list, tuple or int array) and leaves every other form, and every
    invalid value, to the careful path: ids, errors and the unkeyed stream are the
    careful path's, for Viterbi and sampling, keyed or not."""
    fast, careful = (Tokenizer("tests/data/bytepiece.plus.40k.zip", seed=3) for _ in range(2))
    text = "Pieces never cross 1234567 here.\n\nNor there, at the start of a chunk."
    n = len(text.encode())
    mask = np.zeros(n + 1, dtype=bool)
    mask[[6, 19, 23]] = True
    forms = [
        ([6, 19, 23], None),
        ((6, 19), [2]),
        (np.array([6, 19], dtype=np.int64), np.array([2], dtype=np.int32)),
        (mask, None),
        (None, [2, 9]),
        ([6], [6]),  # both required and forbidden
        (None, [34]),  # a chunk start
        (None, [0]),
        ([n + 1], None),
        ([10**30], None),
        ([1.5], None),
        ([True, False], None),
        ("12", None),
        (np.zeros(3, dtype=bool), None),
        (mask[::2], None),
        ([], None),
    ]
    for required, forbidden in forms:
        for alpha in (-1.0, 0.2, math.nan, 1e9):
            for key in (None, 5):
                options = {"alpha": alpha, "key": key, "add_eos": True}
                got = _outcome(
                    fast.encode, text, required_boundaries=required, forbidden_boundaries=forbidden, **options
                )
                want = _outcome(_careful_encode, careful, text, alpha, key, required, forbidden)
                assert got == want, (required, forbidden, alpha, key)


def test_viterbi_under_constraints_is_the_best_allowed_segmentation():
    tok = _small_tokenizer()
    text = b"abababba"
    for required, forbidden in [({2}, set()), (set(), {2}), ({3, 5}, {1}), (set(), {4}), (set(), {4, 6})]:
        oracle = _oracle(tok, required, forbidden)
        kw = {"required_boundaries": sorted(required), "forbidden_boundaries": sorted(forbidden)}
        if not list(oracle.segmentations(text)):
            with pytest.raises(ValueError, match="no allowed piece reaches byte 7"):
                tok.tokenize(text, **kw)
            continue
        got = tok.tokenize(text, **kw)
        assert got == oracle.viterbi(text)
        best = tok.nbest(text, 50, **kw)
        assert best == oracle.nbest(text, 50)


def test_every_query_takes_the_constraints():
    tok = _small_tokenizer()
    text = b"abababba"
    required, forbidden = [3], [5]
    kw = {"required_boundaries": required, "forbidden_boundaries": forbidden}
    oracle = _oracle(tok, set(required), set(forbidden))
    alpha = 0.6
    assert tok.log_partition(text, alpha, **kw) == pytest.approx(oracle.log_partition(text, alpha), rel=1e-12)
    assert tok.entropy(text, alpha, **kw) == pytest.approx(oracle.entropy(text, alpha), rel=1e-9)
    marg = tok.boundary_marginals(text, alpha, **kw)
    assert marg.tolist() == pytest.approx(oracle.boundary_marginals(text, alpha), abs=1e-12)
    assert marg[3] == 1.0 and marg[5] == 0.0
    for path, p in oracle.distribution(text, alpha).items():
        assert tok.log_prob(text, list(path), alpha, **kw) == pytest.approx(math.log(p), rel=1e-9)
    unconstrained = [b"ab", b"ab", b"ab", b"ba"]  # crosses 3
    assert tok.log_prob(text, unconstrained, alpha) > -math.inf
    assert tok.log_prob(text, unconstrained, alpha, **kw) == -math.inf
    for ids, logp in tok.sample(text, 50, alpha, key=1, with_log_prob=True, **kw):
        pieces = _pieces_of(tok, ids)
        assert keeps_constraints(pieces, set(required), set(forbidden))
        assert logp == pytest.approx(oracle.log_prob(text, pieces, alpha), rel=1e-9)
    distinct = tok.sample_distinct(text, 4, alpha, key=1, **kw)
    assert len({tuple(p) for p, _, _ in distinct}) == len(distinct)
    assert all(keeps_constraints(p, set(required), set(forbidden)) for p, _, _ in distinct)
    pm = tok.piece_marginals(text, alpha, **kw)
    want = oracle.piece_marginals(text, alpha)
    got = {(int(r["start"]), int(r["end"]), tok.id_bytes[r["id"]]): float(r["prob"]) for r in pm}
    assert got.keys() == want.keys()
    for edge, p in want.items():
        assert got[edge] == pytest.approx(p, rel=1e-9)
    edges = tok.lattice(text, **kw)
    assert not any(r["start"] < 3 < r["end"] for r in edges)
    assert not any(5 in (r["start"], r["end"]) for r in edges)


def test_boundary_regex_keeps_matches_whole(tok):
    # Digits in right-aligned groups of three, as numbers are written.
    groups = r"\d{1,3}(?=(?:\d{3})*(?!\d))"
    pieces = tok.tokenize(TEXT, boundary_regex=groups)
    data = TEXT.encode()
    start = data.index(b"1234567")
    ends = set(np.cumsum([len(p) for p in pieces]).tolist())
    assert {start + 1, start + 4, start + 7} <= ends | {start}
    assert b"".join(pieces) == data
    # A bytes pattern works the same; the regex combines with explicit positions.
    assert tok.tokenize(TEXT, boundary_regex=groups.encode()) == pieces
    both = tok.tokenize(TEXT, boundary_regex=groups, required_boundaries=[2])
    assert 2 in set(np.cumsum([len(p) for p in both]).tolist())
    mask = np.zeros(len(data) + 1, dtype=bool)
    mask[2] = True
    assert tok.tokenize(TEXT, boundary_regex=groups, required_boundaries=mask) == both
    # ... and the positions given are checked as they are without a regex.
    with pytest.raises(ValueError, match=f"needs {len(data) + 1} entries"):
        tok.tokenize(TEXT, boundary_regex=groups, required_boundaries=[True, False, True])
    with pytest.raises(TypeError, match="one sequence of byte positions"):
        tok.tokenize(TEXT, boundary_regex=groups, required_boundaries=[[2, 3]])
    # Whitespace-delimited words: no piece holds a space and a letter.
    words = tok.tokenize(TEXT, boundary_regex=r"\S+")
    assert all(not (b" " in p and p.strip()) for p in words)


@pytest.mark.parametrize("pattern", [r"(?=[A-Z])", rb"(?=[A-Z])"])
def test_a_match_of_no_text_is_one_boundary(tok, pattern):
    """A lookahead matches no text; its matches were skipped, so the pattern changed
    nothing (b'URL' and b'HT' stayed whole across the boundaries asked for)."""
    text = "getURL HTTPServer"
    capitals = {i for i, c in enumerate(text) if c.isupper()}
    unconstrained = set(np.cumsum([len(p) for p in tok.tokenize(text)]).tolist())
    assert not capitals <= unconstrained  # (the case: pieces cross some of them)
    pieces = tok.tokenize(text, boundary_regex=pattern)
    assert capitals <= set(np.cumsum([len(p) for p in pieces]).tolist())
    assert b"".join(pieces) == text.encode()
    assert tok.decode(tok.encode(text, boundary_regex=pattern)) == text


def test_word_boundaries_are_boundaries(tok):
    """\\b, another match of no text: a boundary at each end of a word."""
    text = "one,two  three"
    pieces = tok.tokenize(text, boundary_regex=r"\b")
    ends = set(np.cumsum([len(p) for p in pieces]).tolist())
    assert {3, 4, 7, 9} <= ends


def test_str_regex_positions_are_bytes_of_the_normalised_text(tok):
    text = "héllo wörld"
    pieces = tok.tokenize(text, boundary_regex=r"\S+")
    data = text.encode()
    ends = set(np.cumsum([len(p) for p in pieces]).tolist())
    assert data.index(b" ") in ends and data.index(b" ") + 1 in ends | {0}


def test_constraints_errors_name_the_position(tok):
    data = TEXT.encode()
    with pytest.raises(ValueError, match="outside the text"):
        tok.encode(TEXT, required_boundaries=[len(data) + 1])
    with pytest.raises(ValueError, match=r"position 3 is both a required and a forbidden"):
        tok.encode(TEXT, required_boundaries=[3], forbidden_boundaries=[3])
    with pytest.raises(ValueError, match="position 0 is an end"):
        tok.encode(TEXT, forbidden_boundaries=[0])
    with pytest.raises(ValueError, match=str(len(data) + 1)):
        tok.encode(TEXT, required_boundaries=np.zeros(5, dtype=bool))
    with pytest.raises(TypeError, match="integers"):
        tok.encode(TEXT, required_boundaries=[1.5])
    with pytest.raises(ValueError, match="starts a new chunk"):
        tok.encode("ab\ncd", forbidden_boundaries=[3])
    # Forbidding every boundary of a run no piece spans: the error names the byte.
    with pytest.raises(ValueError, match=r"no allowed piece reaches byte \d+"):
        tok.encode("qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", forbidden_boundaries=list(range(1, 30)))
    with pytest.raises(ValueError, match=r"no allowed piece reaches byte \d+"):
        tok.log_partition("qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", 0.5, forbidden_boundaries=list(range(1, 30)))
    with pytest.raises(ValueError, match=r"no allowed piece reaches byte \d+"):
        tok.sample("qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", 2, 0.5, forbidden_boundaries=list(range(1, 30)))


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1000.0])
def test_entropy_of_a_long_line_adds_up_exactly(alpha):
    """ "z" is in no longer piece, so the segmentations of unit * N are N independent
    ones of unit: H(unit * N) = N * H(unit). On one 140 KB line the forward sums reach
    1e8; entropy once normalised its weights by them and drifted (relative error 8e-6
    at alpha 1000, and H above log Z at alpha 0)."""
    tok = _small_tokenizer()
    unit, copies = b"abababz", 20_000
    expected = copies * tok.entropy(unit, alpha)
    assert tok.entropy(unit * copies, alpha) == pytest.approx(expected, rel=1e-10)
    if alpha == 0.0:  # (the log of the number of segmentations)
        assert tok.entropy(unit * copies, 0.0) == pytest.approx(tok.log_partition(unit * copies, 0.0), rel=1e-10)


def test_marginals_of_a_long_line_at_a_large_alpha_keep_their_precision(tok):
    """At alpha 1e4 the forward log-sums of 30,000 x's reach 1e9, where a double is good
    to 1e-7: posteriors taken as exp(fwd + c + bwd - log Z) made the certain boundaries
    0.99974 and E[pieces] 9998.57. Viterbi is "xxx" * 10,000 and the next best is 64,000
    nats worse, so every one of those boundaries is certain."""
    text = "x" * 30_000
    assert set(tok.tokenize(text)) == {b"xxx"}
    marginals = tok.boundary_marginals(text, 10_000.0)
    assert marginals[::3].min() == pytest.approx(1.0, abs=1e-12)
    edges = tok.piece_marginals(text, 10_000.0)
    assert edges["prob"].sum() == pytest.approx(10_000, abs=1e-8)
    assert tok.expected_counts([text], 10_000.0).sum() == pytest.approx(10_000, abs=1e-8)
    # A real line: every byte is either a boundary or inside exactly one piece.
    line = " ".join(TEXT for _ in range(500))
    edges = tok.piece_marginals(line, 1000.0)
    n = len(line.encode())
    cover = np.zeros(n + 2)
    np.add.at(cover, edges["start"] + 1, edges["prob"])
    np.add.at(cover, edges["end"], -edges["prob"])
    ends = np.zeros(n + 1)
    np.add.at(ends, edges["end"], edges["prob"])
    assert np.abs(ends + np.cumsum(cover)[: n + 1] - 1)[1:n].max() < 1e-12


def test_a_position_inside_every_allowed_piece_is_no_failure(tok):
    """ "days" with boundary 1 forbidden is the piece "days": no segmentation has a
    boundary at 2 (no allowed piece ends there), which harms nothing. Every call takes
    it, sample_distinct too (it once named byte 2 as leaving no segmentation)."""
    kw = {"forbidden_boundaries": [1]}
    assert tok.tokenize("days", **kw) == [b"days"]
    distinct = tok.sample_distinct("days", 2, 1.0, key=0, **kw)
    assert [pieces for pieces, _, _ in distinct] == [[b"days"], [b"day", b"s"]]
    assert sum(math.exp(lp) for _, lp, _ in distinct) == pytest.approx(1.0)
    # A real failure still names the byte where the allowed paths stop: "dayq" is no
    # piece, and the pieces ending at 4 start at a forbidden boundary.
    with pytest.raises(ValueError, match="no allowed piece reaches byte 4"):
        tok.sample_distinct("dayq", 2, 1.0, key=0, forbidden_boundaries=[1, 2, 3])


def test_a_failing_chunk_is_noticed_even_when_a_later_chunk_is_fine(tok):
    """The kernels restart at every chunk start; a first chunk with no allowed
    segmentation must still be an error, not a silent wrong answer."""
    text = "qqqqqqqqqq\nfine"
    with pytest.raises(ValueError, match=r"no allowed piece reaches byte"):
        tok.encode(text, forbidden_boundaries=list(range(1, 10)))
    with pytest.raises(ValueError, match=r"no allowed piece reaches byte"):
        tok.encode(text, alpha=0.3, key=1, forbidden_boundaries=list(range(1, 10)))


def test_constraints_with_special_tokens_use_positions_in_the_whole_text():
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"ab": 50, b"abab": 40})
    tok = Tokenizer(vocabulary_from_counts(counts), special_tokens=["<eot>"])
    text = "abab<eot>abab"
    eot = tok.special_tokens["<eot>"]
    assert tok.encode(text, allowed_special="all") == [tok.piece_to_id(b"abab"), eot, tok.piece_to_id(b"abab")]
    got = tok.encode(text, allowed_special="all", required_boundaries=[11])
    assert got == [tok.piece_to_id(b"abab"), eot, tok.piece_to_id(b"ab"), tok.piece_to_id(b"ab")]
    with pytest.raises(ValueError, match="next to a special token"):
        tok.encode(text, allowed_special="all", forbidden_boundaries=[4])


# ---------------------------------------------------------------------------
# Piece marginals, expected counts, the lattice


def test_piece_marginals_sum_to_the_boundary_marginals(tok):
    pm = tok.piece_marginals(TEXT, 0.4)
    assert pm.dtype.names == ("start", "end", "id", "prob")
    assert (pm["prob"] > 0).all() and (pm["prob"] <= 1).all()
    bm = tok.boundary_marginals(TEXT, 0.4)
    n = len(TEXT.encode())
    by_start = np.zeros(n + 1)
    np.add.at(by_start, pm["start"], pm["prob"])
    by_end = np.zeros(n + 1)
    np.add.at(by_end, pm["end"], pm["prob"])
    assert by_start[:-1] == pytest.approx(bm[:-1], abs=1e-12)
    assert by_end[1:] == pytest.approx(bm[1:], abs=1e-12)
    # The order of lattice(): by end, then the shortest piece first.
    order = np.lexsort((-pm["start"], pm["end"]))
    assert (order == np.arange(len(pm))).all()
    edges = tok.lattice(TEXT)
    assert (np.lexsort((-edges["start"], edges["end"])) == np.arange(len(edges))).all()
    kept = {(int(s), int(e)) for s, e in zip(pm["start"], pm["end"])}
    assert [(int(s), int(e)) for s, e in zip(edges["start"], edges["end"]) if (s, e) in kept] == list(
        zip(pm["start"].tolist(), pm["end"].tolist())
    )


def test_piece_marginals_match_the_oracle():
    tok = _small_tokenizer()
    text = b"abab\nba"
    oracle = _oracle(tok)
    for alpha in (0.0, 0.5, 2.0):
        want = oracle.piece_marginals(text, alpha)
        pm = tok.piece_marginals(text, alpha)
        got = {(int(r["start"]), int(r["end"]), tok.id_bytes[r["id"]]): float(r["prob"]) for r in pm}
        assert got.keys() == want.keys()
        for edge, p in want.items():
            assert got[edge] == pytest.approx(p, rel=1e-9)


def test_expected_counts_sum_piece_marginals_over_texts(tok):
    texts = [TEXT, "another line of text", "", "数字 42"]
    counts = tok.expected_counts(texts, 0.25)
    assert counts.shape == (tok.vocab_size,)
    want = np.zeros(tok.vocab_size)
    for t in texts:
        if t:
            pm = tok.piece_marginals(t, 0.25)
            np.add.at(want, pm["id"], pm["prob"])
    assert counts == pytest.approx(want, abs=1e-9)
    # The sums are in a fixed order: the thread count changes nothing, bit for bit.
    many = texts * 50
    assert np.array_equal(
        tok.expected_counts(many, 0.25, num_threads=1), tok.expected_counts(many, 0.25, num_threads=2)
    )
    with pytest.raises(TypeError):
        tok.expected_counts("one text", 0.25)


def test_lattice_lists_every_edge_and_scores_any_segmentation(tok):
    edges = tok.lattice("tokenizer")
    assert edges.dtype.names == ("start", "end", "id", "logp")
    data = b"tokenizer"
    for r in edges:
        assert tok.id_bytes[r["id"]] == data[r["start"] : r["end"]]
        assert r["logp"] == tok.piece_log_probs[r["id"] - 3]
    spans = {(int(r["start"]), int(r["end"])) for r in edges}
    for s in range(len(data)):
        for e in range(s + 1, len(data) + 1):
            assert ((s, e) in spans) == (tok.vocabulary.pieces.count(data[s:e]) > 0) if e - s <= 16 else True
    ids = tok.encode("tokenizer", alpha=0.5, key=2)
    score = sum(float(edges[(edges["start"] == s) & (edges["id"] == i)]["logp"][0]) for s, i in _starts(tok, ids))
    assert tok.score("tokenizer", ids) == pytest.approx(score, rel=1e-12)


def _starts(tok, ids):
    at = 0
    for i in ids:
        yield at, i
        at += len(tok.id_bytes[i])


# ---------------------------------------------------------------------------
# StochasTok


def _splits(tok, token):
    piece = tok.id_bytes[token]
    pieces = set(tok.vocabulary.pieces)
    return [
        (tok.piece_to_id(piece[:j]), tok.piece_to_id(piece[j:]))
        for j in range(1, len(piece))
        if piece[:j] in pieces and piece[j:] in pieces
    ]


def test_stochastok_keeps_the_text_and_is_keyed(tok):
    ids = tok.encode(TEXT * 5)
    out = tok.stochastok(ids, 0.3, key=4)
    assert tok.decode(out) == TEXT * 5
    assert len(ids) < len(out) <= len(ids) + int(len(ids) * 0.3)
    assert tok.stochastok(ids, 0.3, key=4) == out
    assert tok.stochastok(ids, 0.3, key=5) != out
    assert tok.stochastok(ids, 0.0, key=4) == ids
    assert len(tok.stochastok(ids, 5.0, key=4, max_splits=3)) == len(ids) + 3
    arr = tok.stochastok(np.array(ids, dtype=tok.id_dtype), 0.3, key=4)
    assert arr.dtype == tok.id_dtype and arr.tolist() == out
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.stochastok([tok.vocab_size], 0.5)
    with pytest.raises(ValueError, match="p must be"):
        tok.stochastok(ids, -0.1)


def test_stochastok_replaces_a_token_by_one_of_its_splits_uniformly():
    """One token with three two-piece splits, p = 1 on a sequence of one: the split made
    is uniform over the three (chi-square over 6,000 keys at level 0.001)."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"abcd": 5, b"bcd": 5, b"ab": 5, b"cd": 5, b"abc": 5})
    tok = Tokenizer(vocabulary_from_counts(counts))
    token = tok.piece_to_id(b"abcd")
    options = _splits(tok, token)
    assert sorted(options) == sorted(tok._splitter.splits(token))
    assert len(options) == 3
    seen = dict.fromkeys(options, 0)
    for k in range(6000):
        out = tuple(tok.stochastok([token], 1.0, key=k))
        seen[out] += 1
    stat, dof, _ = chi_square([(2000.0, c) for c in seen.values()])
    assert chi_square_sf(stat, dof) > 0.001


def test_stochastok_split_counts_follow_the_procedure():
    """[T] * 10 where T = "ab" splits only into (a, b) and a, b never split; p = 1 makes
    10 attempts, each picking a uniform position of the current sequence. The number of
    splits is a Markov chain (r unsplit of L tokens: split with probability r / L), whose
    exact distribution the observed counts over 20,000 keys must fit (chi-square at
    level 0.001). Picking positions of the original sequence, or stopping at the first
    failure, would not."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts[b"ab"] = 9
    tok = Tokenizer(vocabulary_from_counts(counts))
    t = tok.piece_to_id(b"ab")
    n = 10
    dist = {0: 1.0}  # splits so far -> probability
    for _ in range(n):
        nxt: dict = {}
        for s, p in dist.items():
            r, length = n - s, n + s
            nxt[s + 1] = nxt.get(s + 1, 0.0) + p * r / length
            nxt[s] = nxt.get(s, 0.0) + p * (1 - r / length)
        dist = nxt
    draws = 20_000
    seen: dict = {}
    for k in range(draws):
        s = len(tok.stochastok([t] * n, 1.0, key=k)) - n
        seen[s] = seen.get(s, 0) + 1
    stat, dof, _ = chi_square([(draws * p, seen.get(s, 0)) for s, p in dist.items()])
    assert chi_square_sf(stat, dof) > 0.001


# ---------------------------------------------------------------------------
# The range of alpha


@pytest.mark.parametrize("alpha", [True, np.True_, False, None])
def test_a_bool_or_none_is_no_alpha(tok, alpha):
    """True is not alpha 1 (as it is not key 1 nor a count of 1), and None, the "model's
    default" of encode, is no alpha for a query that needs one: both name alpha."""
    calls = [
        lambda: tok.log_partition(TEXT, alpha),
        lambda: tok.sample(TEXT, 2, alpha, key=1),
        lambda: tok.sample_distinct(TEXT, 2, alpha),
        lambda: tok.piece_marginals(TEXT, alpha),
        lambda: Tokenizer(tok.vocabulary, alpha=alpha) if alpha is not None else tok.encode(TEXT, alpha=True),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="alpha must be a number, not"):
            call()


@pytest.mark.parametrize("alpha", [1e5, 1e30, 5e306, 1e308, math.inf, math.nan])
def test_alphas_beyond_the_limit_are_refused_everywhere(tok, alpha):
    ids = tok.encode(TEXT)
    calls = [
        lambda: tok.encode(TEXT, alpha=alpha),
        lambda: tok.encode(TEXT, alpha=alpha, key=1),
        lambda: tok.encode_batch([TEXT], alpha=alpha),
        lambda: tok.tokenize(TEXT, alpha=alpha),
        lambda: tok.log_partition(TEXT, alpha),
        lambda: tok.log_prob(TEXT, ids, alpha),
        lambda: tok.entropy(TEXT, alpha),
        lambda: tok.boundary_marginals(TEXT, alpha),
        lambda: tok.piece_marginals(TEXT, alpha),
        lambda: tok.sample(TEXT, 2, alpha),
        lambda: tok.sample_distinct(TEXT, 2, alpha),
        lambda: tok.expected_counts([TEXT], alpha),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="alpha"):
            call()


def test_the_largest_alpha_gives_viterbi_ties_shared_evenly():
    """At alpha = MAX_ALPHA every answer is still a number in range; a text of nine
    equally good segmentations (one run of x's) splits the mass evenly among them."""
    from bytepiece._core.lattice import MAX_ALPHA

    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"xx": 100, b"xxx": 100})
    tok = Tokenizer(vocabulary_from_counts(counts), seed=1)
    text = b"xxxxxx"  # xx|xx|xx and xxx|xxx score differently; find the ties from nbest
    best = tok.nbest(text, 20)
    top = [p for p, s in best if s == best[0][1]]
    ids = tok.encode(text)
    assert tok.log_prob(text, ids, MAX_ALPHA) == pytest.approx(-math.log(len(top)), abs=1e-9)
    assert tok.entropy(text, MAX_ALPHA) == pytest.approx(math.log(len(top)), abs=1e-9)
    for _, logp in tok.sample(text, 20, MAX_ALPHA, key=1, with_log_prob=True):
        assert -math.log(len(top)) - 1e-9 <= logp <= 0
    assert all(tuple(tok.tokenize(text, MAX_ALPHA, key=k)) in {tuple(p) for p in top} for k in range(50))


# ---------------------------------------------------------------------------
# Many draws in batches and data loaders


def test_encode_batch_num_samples_equals_sample_per_text(tok):
    texts = [TEXT, "another line", "", "数字 42"]
    keys = [("doc", i) for i in range(len(texts))]
    got = tok.encode_batch(texts, alpha=0.3, keys=keys, num_samples=5)
    assert got == [tok.sample(t, 5, 0.3, key=k) for t, k in zip(texts, keys)]
    many = texts * 40
    many_keys = [("doc", i) for i in range(len(many))]
    one = tok.encode_batch(many, alpha=0.3, keys=many_keys, num_samples=3, num_threads=1)
    assert tok.encode_batch(many, alpha=0.3, keys=many_keys, num_samples=3, num_threads=2) == one
    ids, rows = tok.encode_batch(texts, alpha=0.3, keys=keys, num_samples=5, as_numpy=True, add_eos=True)
    assert ids.dtype == tok.id_dtype and len(rows) == len(texts) * 5 + 1
    for i in range(len(texts)):
        for j in range(5):
            assert ids[rows[i * 5 + j] : rows[i * 5 + j + 1]].tolist() == got[i][j] + [2]


def test_unkeyed_batch_samples_take_consecutive_stream_numbers(tok):
    a, b = Tokenizer(tok.vocabulary, seed=9), Tokenizer(tok.vocabulary, seed=9)
    texts = ["one text", "two texts", "three"]
    assert a.encode_batch(texts, alpha=0.3, num_samples=2) == [b.sample(t, 2, 0.3) for t in texts]


def test_num_samples_refuses_what_it_cannot_do(tok):
    with pytest.raises(ValueError, match="num_samples"):
        tok.encode_batch([TEXT], alpha=-1, num_samples=2)
    with pytest.raises(ValueError, match="num_samples"):
        tok.encode_batch([TEXT], alpha=0.1, num_samples=2, return_offsets=True)
    with pytest.raises(ValueError, match="num_samples must be"):
        tok.encode_batch([TEXT], alpha=0.1, num_samples=-1)


@pytest.mark.slow
def test_more_draws_than_memory_holds_say_what_was_asked(model_path):
    """2**31 - 1 draws pass the count check but need ~111 GiB: the MemoryError says how
    many draws of how long a text, not nothing (a child process, its memory capped)."""
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from bytepiece import Tokenizer\n"
        "tok = Tokenizer(sys.argv[1], seed=0)\n"
        "for call in (lambda: tok.sample('hello', 2**31 - 1, 0.5, key=1),\n"
        "             lambda: tok.encode_batch(['hello'], alpha=0.5, num_samples=2**31 - 1)):\n"
        "    try:\n"
        "        call()\n"
        "    except MemoryError as error:\n"
        "        print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(model_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("2147483647 draws of a text of 5 bytes need room for 111.0 GiB") for line in lines)


def test_encode_transform_samples_several_views_of_a_document(tok):
    from bytepiece.data import EncodeTransform

    transform = EncodeTransform(tok, alpha=0.3, seed=4, add_eos=True, max_length=6)
    views = transform.samples(TEXT, 7, 4, epoch=2)
    assert len(views) == 4
    assert all(v[-1] == 2 and len(v) <= 6 for v in views)
    assert views == transform.samples(TEXT, 7, 4, epoch=2)
    assert views != transform.samples(TEXT, 7, 4, epoch=3)
    full = EncodeTransform(tok, alpha=0.3, seed=4).samples(TEXT, 7, 4, epoch=2)
    assert [tok.decode(v) for v in full] == [TEXT] * 4
    with pytest.raises(ValueError, match="alpha"):
        EncodeTransform(tok, alpha=-1, seed=4).samples(TEXT, 7, 2)


def test_encode_batch_takes_constraints_per_text(tok):
    """encode_batch with constraints gives, text by text, what encode gives with the same
    key and constraints (Viterbi and keyed samples, lists and numpy)."""
    texts = ["Call 5551234567 now.", "in 2024 there were 1000000 of them", "no digits"]
    required = [[5, 8], None, [2]]
    for alpha, keys in ((-1.0, None), (0.3, [11, 12, 13])):
        got = tok.encode_batch(texts, alpha=alpha, keys=keys, required_boundaries=required, boundary_regex=r"[0-9]+")
        text_keys = keys or [None] * 3
        want = [
            tok.encode(t, alpha=alpha, key=k, required_boundaries=r, boundary_regex=r"[0-9]+")
            for t, k, r in zip(texts, text_keys, required)
        ]
        assert got == want
        ids, rows = tok.encode_batch(
            texts, alpha=alpha, keys=keys, required_boundaries=required, boundary_regex=r"[0-9]+", as_numpy=True
        )
        assert [ids[rows[i] : rows[i + 1]].tolist() for i in range(3)] == want
    for ids, text in zip(tok.encode_batch(texts, boundary_regex=r"[0-9]+"), texts):
        digits = [p for m in re.finditer(r"[0-9]+", text) for p in m.span()]
        assert keeps_constraints(_pieces_of(tok, ids), digits, ())
    with pytest.raises(ValueError, match="2 entries for 3 texts"):
        tok.encode_batch(texts, required_boundaries=[None, None])
    with pytest.raises(ValueError, match="num_samples"):
        tok.encode_batch(texts, alpha=0.1, num_samples=2, boundary_regex="x")


def test_stochastok_refuses_more_attempts_than_it_can_draw(tok):
    """p=1e300 failed inside numpy ("Maximum allowed dimension exceeded") and p=1e9 tried
    to allocate 7.45 GiB of random numbers; p > 1 itself stays valid."""
    ids = tok.encode("tokenizer")
    for p in (1e300, 1e9):
        with pytest.raises(ValueError, match=r"split attempts on 3 ids; one call makes at most 268,435,456"):
            tok.stochastok(ids, p, key=1)
    assert tok.decode(tok.stochastok(ids, 100.0, key=1)) == "tokenizer"
