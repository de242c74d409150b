"""Reliability: numeric arguments are accepted or refused the same way at every entry point.

What the hostile-input pass (scripts/hostile_pass.py --part api) found, pinned:

- ``alpha`` as a string was taken by some calls (``encode_batch``, every lattice query,
  ``Tokenizer(alpha=...)``) and refused by others (``encode``): it is a TypeError
  everywhere now;
- an ``alpha`` too large for a float (``10**400``) raised OverflowError: it is the
  ValueError any alpha out of range gets;
- counts (``nbest``'s n, ``sample``'s n, ``sample_distinct``'s k, ``num_samples``)
  past a C int or infinite raised OverflowError, and a float was silently truncated:
  integers only, from their minimum to 2**31 - 1;
- ``num_threads`` went unchecked on the special-token path of ``encode_batch``;
- ``Trainer(em_sample_bytes=inf)`` raised OverflowError, not TrainerError;
- ``stochastok`` read its ids through int() (100.9 as 100, "100" and b"ab" as ids, True
  as ``<bos>``, a 2-D array flattened) and ``max_splits=1.7`` as 1;
- a text of ``encode_batch`` that is not one was reported without its index (on the
  default path as "object of type 'NoneType' has no len()").
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import VENDORED_MODEL

from bytepiece import Tokenizer, Trainer
from bytepiece.training import TrainerError

TEXT = "hello world"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(VENDORED_MODEL, seed=2)


def _alpha_calls(tok):
    pieces = tok.tokenize(TEXT)
    return {
        "Tokenizer(alpha=)": lambda a: Tokenizer(tok.vocabulary, alpha=a),
        "encode": lambda a: tok.encode(TEXT, alpha=a),
        "encode keyed": lambda a: tok.encode(TEXT, alpha=a, key=1),
        "tokenize keyed": lambda a: tok.tokenize(TEXT, alpha=a, key=1),
        "encode numpy": lambda a: tok.encode(TEXT, alpha=a, as_numpy=True),
        "encode_batch": lambda a: tok.encode_batch([TEXT], alpha=a),
        "encode_batch keyed": lambda a: tok.encode_batch([TEXT], alpha=a, keys=[1]),
        "encode_with_offsets": lambda a: tok.encode_with_offsets(TEXT, alpha=a, key=1),
        "sample": lambda a: tok.sample(TEXT, 2, a, key=1),
        "sample_distinct": lambda a: tok.sample_distinct(TEXT, 2, a),
        "log_prob": lambda a: tok.log_prob(TEXT, pieces, a),
        "log_partition": lambda a: tok.log_partition(TEXT, a),
        "entropy": lambda a: tok.entropy(TEXT, a),
        "boundary_marginals": lambda a: tok.boundary_marginals(TEXT, a),
        "piece_marginals": lambda a: tok.piece_marginals(TEXT, a),
    }


@pytest.mark.parametrize("alpha", ["0.5", b"1", "1"])
def test_alpha_as_a_string_is_a_type_error_everywhere(tok, alpha):
    for name, call in _alpha_calls(tok).items():
        with pytest.raises(TypeError, match="alpha must be a number"):
            call(alpha)
            pytest.fail(f"{name} took alpha={alpha!r}")


def test_alpha_too_large_for_a_float_is_a_value_error_everywhere(tok):
    for name, call in _alpha_calls(tok).items():
        with pytest.raises(ValueError, match="alpha must be"):
            call(10**400)
            pytest.fail(f"{name} took alpha=10**400")


def test_alpha_of_any_number_type_gives_the_same_result(tok):
    want = tok.encode(TEXT, alpha=0.5, key=4)
    for alpha in (np.float32(0.5), np.float64(0.5), 0.5):
        assert tok.encode(TEXT, alpha=alpha, key=4) == want
    assert (
        tok.encode(TEXT, alpha=1, key=4)
        == tok.encode(TEXT, alpha=1.0, key=4)
        == tok.encode(TEXT, alpha=np.int64(1), key=4)
    )


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda t: t.nbest(TEXT, 2**31), ValueError),
        (lambda t: t.nbest(TEXT, 10**400), ValueError),
        (lambda t: t.nbest(TEXT, 0), ValueError),
        (lambda t: t.nbest(TEXT, 2.0), TypeError),
        (lambda t: t.nbest(TEXT, True), TypeError),
        (lambda t: t.sample_distinct(TEXT, float("inf"), 0.1), TypeError),
        (lambda t: t.sample_distinct(TEXT, 2**63, 0.1), ValueError),
        (lambda t: t.sample(TEXT, 1.5, 0.1), TypeError),
        (lambda t: t.sample(TEXT, -1, 0.1), ValueError),
        (lambda t: t.encode_batch([TEXT], alpha=0.1, num_samples=2**31), ValueError),
        (lambda t: t.encode_batch([TEXT], alpha=0.1, num_samples="2"), TypeError),
    ],
)
def test_counts_are_integers_within_a_c_int(tok, call, error):
    with pytest.raises(error):
        call(tok)


def test_counts_of_any_integer_type_are_the_same_count(tok):
    assert tok.nbest(TEXT, np.int64(3)) == tok.nbest(TEXT, 3)
    assert tok.sample(TEXT, np.uint8(2), 0.1, key=9) == tok.sample(TEXT, 2, 0.1, key=9)
    assert tok.sample(TEXT, 0, 0.1, key=9) == []


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_num_threads_is_checked_on_every_encode_batch_path(tok, threads):
    for options in ({}, {"allowed_special": "all"}, {"return_offsets": True}, {"as_numpy": True}):
        with pytest.raises((TypeError, ValueError), match="num_threads"):
            tok.encode_batch([TEXT], num_threads=threads, **options)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 10**400, 0, -5])
def test_trainer_em_sample_bytes_out_of_range_is_a_trainer_error(value):
    with pytest.raises(TrainerError, match="em_sample_bytes"):
        Trainer(em_sample_bytes=value)


_SAMPLER_CALLS = {
    "encode": lambda tok, s: tok.encode(TEXT, sampler=s),
    "encode numpy": lambda tok, s: tok.encode(TEXT, sampler=s, as_numpy=True),
    "encode special": lambda tok, s: tok.encode(TEXT, sampler=s, allowed_special="all"),
    "encode constrained": lambda tok, s: tok.encode(TEXT, sampler=s, required_boundaries=[2]),
    "tokenize": lambda tok, s: tok.tokenize(TEXT, sampler=s),
    "tokenize constrained": lambda tok, s: tok.tokenize(TEXT, sampler=s, boundary_regex=r"\S+"),
    "encode_with_offsets": lambda tok, s: tok.encode_with_offsets(TEXT, sampler=s),
    "encode_batch": lambda tok, s: tok.encode_batch([TEXT], sampler=s),
    "encode_batch numpy": lambda tok, s: tok.encode_batch([TEXT], sampler=s, as_numpy=True),
}


@pytest.mark.parametrize("call", sorted(_SAMPLER_CALLS))
def test_an_unknown_sampler_is_an_error_for_viterbi_calls_too(tok, call):
    """sampler= was only read when sampling, so a misspelt name passed silently on every
    Viterbi call (tokenize, encode_with_offsets, encode with constraints)."""
    assert _SAMPLER_CALLS[call](tok, "legacy-v1") is not None  # (a known name: fine)
    with pytest.raises(ValueError, match="sampler must be one of"):
        _SAMPLER_CALLS[call](tok, "bogus")


@pytest.mark.parametrize("not_ids", [b"abc", bytearray(b"abc"), "abc"])
def test_decoding_bytes_or_text_is_a_type_error(tok, not_ids):
    """decode(b"abc") read the bytes as the ids 97 98 99 and returned their text."""
    for decode in (tok.decode, tok.decode_bytes):
        with pytest.raises(TypeError, match="decode takes a sequence of ids"):
            decode(not_ids)
    assert tok.decode(list(b"abc")) == tok.decode([97, 98, 99])  # (ids in a list: as before)


def test_trainer_workers_take_any_integer_type_and_refuse_bools():
    """train(workers=np.int64(2)) was refused while the constructor takes numpy sizes,
    and workers=True ran as one worker."""
    texts = ["hello world, hello there\n"] * 50
    plain = Trainer(max_vocab_size=300, verbose=False)
    plain.train(texts, workers=2)
    numpy_typed = Trainer(max_vocab_size=300, verbose=False)
    numpy_typed.train(texts, workers=np.int64(2))
    assert numpy_typed.pieces == plain.pieces
    for bad in (True, 0, 1.0, "2"):
        with pytest.raises(TrainerError, match="workers must be an integer >= 1"):
            Trainer(max_vocab_size=300, verbose=False).train(texts, workers=bad)


def test_nbest_asked_for_more_paths_than_the_text_has_returns_them_all(tok):
    """nbest(text, 10**9) sized its tables for 10**9 paths per position and raised a bare
    MemoryError although "hello world" has 198 segmentations."""
    every = tok.nbest(TEXT, 198)
    assert len(every) == 198 and len(tok.nbest(TEXT, 197)) == 197
    for n in (199, 5_000, 10**9, 2**31 - 1):
        assert tok.nbest(TEXT, n) == every
    assert tok.nbest(TEXT, 10**9, required_boundaries=[5]) == tok.nbest(TEXT, 198, required_boundaries=[5])


def test_nbest_out_of_memory_says_how_much_it_needed(tok, monkeypatch):
    from bytepiece import queries

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(queries._queries, "nbest", no_memory)
    with pytest.raises(MemoryError, match=r"nbest: 7 paths at each of 12 positions need about .* GB; ask for fewer"):
        tok.nbest(TEXT, 7)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda tok: tok.id_to_piece(10**6), "id 1000000 is not in the vocabulary"),
        (lambda tok: tok.id_to_piece(-1), "id -1 is not in the vocabulary"),
        (lambda tok: tok.ids_to_pieces([5, 10**6]), "id 1000000 is not in the vocabulary"),
        (lambda tok: tok.piece_to_id("zzz"), "'zzz' is not a piece of this model"),
        (lambda tok: tok.pieces_to_ids([b"he", b"zzz"]), "b'zzz' is not a piece of this model"),
        (lambda tok: tok.piece_to_id([1]), r"\[1\] is not a piece of this model"),
    ],
)
def test_unknown_ids_and_pieces_are_named(tok, call, message):
    """id_to_piece and piece_to_id raised a bare KeyError(1000000), where decode names
    the id and the vocabulary's range."""
    with pytest.raises(KeyError, match=message):
        call(tok)


@pytest.mark.parametrize(
    "call",
    [
        lambda tok: tok.tokenize(TEXT, required_boundaries=8),
        lambda tok: tok.encode(TEXT, forbidden_boundaries=3),
        lambda tok: tok.encode_batch([TEXT], required_boundaries=[8]),
    ],
)
def test_a_single_position_where_a_sequence_is_wanted_says_so(tok, call):
    """required_boundaries=8 said "must be byte positions (integers) ..., not int64",
    though 8 is an integer; in encode_batch the mistake is one list for all texts."""
    with pytest.raises(TypeError, match=r"a sequence of byte positions or a boolean mask, not the single value"):
        call(tok)


def test_a_vocabulary_size_given_twice_is_refused():
    """Trainer(max_vocab_size=[300, 300]) trained the same model twice and save wrote
    path.300 twice."""
    with pytest.raises(TrainerError, match="max_vocab_size gives 300 more than once"):
        Trainer(max_vocab_size=[300, 400, 300])


@pytest.mark.parametrize(
    "ids, error, message",
    [
        ([100.9, 101.2], ValueError, r"id 100\.9 is not in the vocabulary"),
        ([100.0], ValueError, r"id 100\.0 is not in the vocabulary"),
        (["100", "101"], ValueError, "id '100' is not in the vocabulary"),
        ([True, 100], ValueError, "id True is not in the vocabulary"),
        ([100, np.False_], ValueError, "False_? is not in the vocabulary"),
        (np.array([100.0, 101.0]), ValueError, r"id 100\.0 is not in the vocabulary"),
        (b"ab", TypeError, "stochastok takes a sequence of ids, not bytes"),
        (bytearray(b"ab"), TypeError, "stochastok takes a sequence of ids, not bytearray"),
        ("ab", TypeError, "stochastok takes a sequence of ids, not str"),
        (np.array([[1248, 1248], [1248, 1248]], dtype=np.uint16), ValueError, r"one-dimensional .* shape \(2, 2\)"),
    ],
)
def test_stochastok_refuses_what_is_not_a_sequence_of_ids(tok, ids, error, message):
    """stochastok read any iterable through int(): [100.9, 101.2] became [100, 101],
    ["100", "101"] and b"ab" became ids, True became <bos>, and a 2-D array was
    flattened; an id that is not an integer is refused now as decode refuses it."""
    with pytest.raises(error, match=message):
        tok.stochastok(ids, 0.5, key=1)


def test_stochastok_takes_ids_of_any_integer_type(tok):
    """What stays accepted: lists and tuples of ints, numpy's integers among them, and
    one-dimensional integer arrays (which give an array of their dtype)."""
    ids = tok.encode("a tokenizer splits text")
    expected = tok.stochastok(ids, 2.0, key=3)
    assert tok.stochastok(tuple(ids), 2.0, key=3) == expected
    assert tok.stochastok([np.int64(i) for i in ids], 2.0, key=3) == expected
    for dtype in (np.uint16, np.int32, np.int64):
        got = tok.stochastok(np.array(ids, dtype=dtype), 2.0, key=3)
        assert got.dtype == dtype and got.tolist() == expected


def test_stochastok_max_splits_is_an_integer_count(tok):
    """max_splits=1.7 was read as 1 (and True as 1): a count is an integer, as num_samples is."""
    ids = tok.encode("Tokenization")
    for bad in (1.7, 1.0, True, "1"):
        with pytest.raises(TypeError, match=f"max_splits must be an integer or None, not {type(bad).__name__}"):
            tok.stochastok(ids, 10.0, key=1, max_splits=bad)
    with pytest.raises(ValueError, match="max_splits must be >= 0, not -1"):
        tok.stochastok(ids, 10.0, key=1, max_splits=-1)
    once = tok.stochastok(ids, 10.0, key=1, max_splits=1)
    assert len(once) == len(ids) + 1 and tok.stochastok(ids, 10.0, key=1, max_splits=np.int64(1)) == once


def test_stochastok_p_is_a_number(tok):
    """p="0.5" and p=True went through float() (as alpha no longer does)."""
    ids = tok.encode("Tokenization")
    for bad in ("0.5", b"1", True, np.True_, None):
        with pytest.raises(TypeError, match=f"p must be a number, not {type(bad).__name__}"):
            tok.stochastok(ids, bad, key=1)
    assert tok.stochastok(ids, np.float32(0.5), key=1) == tok.stochastok(ids, 0.5, key=1)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_threads": 1},
        {"num_threads": 2},
        {"as_numpy": True, "num_threads": 2},
        {"alpha": 0.1, "keys": range(1000), "num_threads": 2},
        {"alpha": 0.1, "num_samples": 2},
        {"return_offsets": True},
        {"required_boundaries": [None] * 1000},
    ],
)
@pytest.mark.parametrize("bad", [None, 7, ["a list"]])
def test_a_text_of_a_batch_that_is_not_text_is_named_by_its_index(tok, options, bad):
    """encode_batch with None at position 700 raised "object of type 'NoneType' has no
    len()" (from counting the batch's bytes) on the default path, and elsewhere encode's
    "text must be str or bytes, not NoneType", naming neither the text nor its index."""
    texts: list = ["some text"] * 1000
    texts[700] = bad
    with pytest.raises(TypeError, match=f"^text 700 must be str or bytes, not {type(bad).__name__}$"):
        tok.encode_batch(texts, **options)
    texts[700] = b"some bytes"  # (bytes and str alike: fine)
    assert len(tok.encode_batch(texts, **options)) in (2, 1000)


def test_a_text_of_expected_counts_that_is_not_text_is_named_by_its_index(tok):
    texts: list = ["some text"] * 10
    texts[7] = None
    with pytest.raises(TypeError, match="^text 7 must be str or bytes, not NoneType$"):
        tok.expected_counts(texts, 0.5)
    assert tok.expected_counts(iter(["some text", b"more"]), 0.5).sum() > 0  # (any iterable of texts)
