"""Subclasses of bytes as texts: numpy.bytes_ (what iterating a numpy "S" array gives) and
a user's own subclass are texts like any bytes.

What broke: the tokenizer handed such an object on unchanged, and the compiled core takes
exact bytes only, so encode refused it ("expected str or bytes, not bytes_"), encode_batch
too ("convert returned bytes_, not bytes"), and so did nbest and the other lattice
queries (Cython's "Argument 'data' has incorrect type"), while encode_with_offsets and
every str subclass worked. Every entry point that takes a text must give, for a subclass,
exactly what it gives for the equal plain bytes: same values, same types.
"""

from __future__ import annotations

import numpy as np
import pytest

from bytepiece import Tokenizer

TEXT = "Hello wörld! 你好，世界。\n\n\tdef f(x):\n        return x ** 2\ntokenizer".encode()
TEXTS = [TEXT, b"hello", b"world\n\nagain", "caf\u00e9 na\u00efve".encode(), b"\xff\xfe not UTF-8"]
ALPHA = 0.1


class Sub(bytes):
    """A user's subclass of bytes."""


# A subclass of each kind, for one text; and a batch of them as a caller would hold it.
SUBCLASSES = {"numpy.bytes_": np.bytes_, "user subclass": Sub}
BATCHES = {"numpy S array": lambda texts: np.array(texts), "list of a subclass": lambda texts: [Sub(t) for t in texts]}


def same(got, want) -> None:
    """got equals want, value for value and type for type (arrays: dtype and values)."""
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tolist() == want.tolist()
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            same(g, w)
    else:
        assert got == want


@pytest.fixture(scope="module")
def special_tok(model_path):
    return Tokenizer(model_path, seed=99, special_tokens=["<sep>"])


# One call per entry point (and per path through it: the compiled fast path, the careful
# path, numpy output, boundary constraints, special tokens), as fn(tok, text).
ONE_TEXT = {
    "tokenize": lambda tok, t: tok.tokenize(t),
    "tokenize sampled": lambda tok, t: tok.tokenize(t, alpha=ALPHA, key=3),
    "tokenize constrained": lambda tok, t: tok.tokenize(t, required_boundaries=[5, 9]),
    "tokenize iter": lambda tok, t: list(tok.tokenize(t, iter=True)),
    "encode": lambda tok, t: tok.encode(t),
    "encode bos eos": lambda tok, t: tok.encode(t, add_bos=True, add_eos=True),
    "encode iter": lambda tok, t: list(tok.encode(t, iter=True)),
    "encode int key": lambda tok, t: tok.encode(t, alpha=ALPHA, key=7),
    "encode str key": lambda tok, t: tok.encode(t, alpha=ALPHA, key="k"),
    "encode int alpha": lambda tok, t: tok.encode(t, alpha=1, key=7),
    "encode legacy sampler": lambda tok, t: tok.encode(t, alpha=ALPHA, key=7, sampler="legacy-v1"),
    "encode as_numpy": lambda tok, t: tok.encode(t, as_numpy=True),
    "encode as_numpy sampled": lambda tok, t: tok.encode(t, alpha=ALPHA, key=7, as_numpy=True),
    "encode constrained": lambda tok, t: tok.encode(t, required_boundaries=[5, 9], forbidden_boundaries=[2]),
    "encode constrained sampled": lambda tok, t: tok.encode(t, alpha=ALPHA, key=7, required_boundaries=[5]),
    "encode regex": lambda tok, t: tok.encode(t, boundary_regex=rb"\s+"),
    "encode_with_offsets": lambda tok, t: tok.encode_with_offsets(t, add_bos=True, add_eos=True),
    "encode_with_offsets sampled": lambda tok, t: tok.encode_with_offsets(t, alpha=ALPHA, key=7),
    "sample": lambda tok, t: tok.sample(t, 4, ALPHA, key=7),
    "sample log_prob": lambda tok, t: tok.sample(t, 4, ALPHA, key=7, with_log_prob=True),
    "sample str key": lambda tok, t: tok.sample(t, 4, ALPHA, key="k"),
    "sample constrained": lambda tok, t: tok.sample(t, 4, ALPHA, key=7, required_boundaries=[5]),
    "sample_distinct": lambda tok, t: tok.sample_distinct(t, 3, ALPHA, key=7),
    "nbest": lambda tok, t: tok.nbest(t, 3),
    "nbest constrained": lambda tok, t: tok.nbest(t, 3, forbidden_boundaries=[2]),
    "score": lambda tok, t: tok.score(t, tok.tokenize(bytes(t))),
    "log_prob": lambda tok, t: tok.log_prob(t, tok.tokenize(bytes(t)), ALPHA),
    "log_prob constrained": lambda tok, t: tok.log_prob(t, tok.tokenize(bytes(t)), ALPHA, required_boundaries=[5]),
    "log_partition": lambda tok, t: tok.log_partition(t, ALPHA),
    "entropy": lambda tok, t: tok.entropy(t, ALPHA),
    "boundary_marginals": lambda tok, t: tok.boundary_marginals(t, ALPHA),
    "piece_marginals": lambda tok, t: tok.piece_marginals(t, ALPHA),
    "lattice": lambda tok, t: tok.lattice(t),
    "expected_counts": lambda tok, t: tok.expected_counts([t, t], ALPHA),
}

# The same for batches, as fn(tok, texts).
BATCH = {
    "encode_batch": lambda tok, ts: tok.encode_batch(ts),
    "encode_batch sampled": lambda tok, ts: tok.encode_batch(ts, alpha=ALPHA, keys=range(len(ts))),
    "encode_batch threads": lambda tok, ts: tok.encode_batch(ts, alpha=ALPHA, keys=range(len(ts)), num_threads=2),
    "encode_batch as_numpy": lambda tok, ts: tok.encode_batch(ts, as_numpy=True),
    "encode_batch as_numpy sampled": lambda tok, ts: tok.encode_batch(
        ts, alpha=ALPHA, keys=range(len(ts)), as_numpy=True
    ),
    "encode_batch as_numpy offsets": lambda tok, ts: tok.encode_batch(ts, as_numpy=True, return_offsets=True),
    "encode_batch offsets": lambda tok, ts: tok.encode_batch(ts, return_offsets=True),
    "encode_batch num_samples": lambda tok, ts: tok.encode_batch(ts, alpha=ALPHA, keys=range(len(ts)), num_samples=3),
    "encode_batch num_samples as_numpy": lambda tok, ts: tok.encode_batch(
        ts, alpha=ALPHA, keys=range(len(ts)), num_samples=3, as_numpy=True
    ),
    "encode_batch constrained": lambda tok, ts: tok.encode_batch(ts, required_boundaries=[[3]] * len(ts)),
    "encode_batch regex": lambda tok, ts: tok.encode_batch(ts, boundary_regex=rb"\s+"),
}

# Special tokens take the careful path, with the text cut into runs.
SPECIAL_TEXT = b"before<sep>after \xc3\xa9<sep>"
SPECIAL = {
    "encode allowed_special": lambda tok, t: tok.encode(t, allowed_special="all"),
    "encode allowed_special sampled": lambda tok, t: tok.encode(t, alpha=ALPHA, key=7, allowed_special="all"),
    "encode allowed_special as_numpy": lambda tok, t: tok.encode(t, allowed_special="all", as_numpy=True),
    "encode_with_offsets allowed_special": lambda tok, t: tok.encode_with_offsets(t, allowed_special="all"),
    "encode disallowed_special": lambda tok, t: tok.encode(t[:6], disallowed_special="all"),
    "encode_batch allowed_special": lambda tok, ts: tok.encode_batch([ts, ts], allowed_special="all"),
}


@pytest.mark.parametrize("make", SUBCLASSES.values(), ids=SUBCLASSES.keys())
@pytest.mark.parametrize("call", ONE_TEXT.values(), ids=ONE_TEXT.keys())
def test_one_text(tok, call, make):
    """Every entry point taking one text gives a bytes subclass's text exactly what it
    gives the equal plain bytes."""
    text = make(TEXT)
    assert type(text) is not bytes and text == TEXT
    same(call(tok, text), call(tok, TEXT))


@pytest.mark.parametrize("make", BATCHES.values(), ids=BATCHES.keys())
@pytest.mark.parametrize("call", BATCH.values(), ids=BATCH.keys())
def test_batch(tok, call, make):
    """encode_batch, on every path, takes a numpy "S" array and a list of a bytes subclass
    as it takes a list of the equal plain bytes."""
    texts = make(TEXTS)
    assert [type(t) is not bytes and t == w for t, w in zip(texts, TEXTS)] == [True] * len(TEXTS)
    same(call(tok, texts), call(tok, list(TEXTS)))


@pytest.mark.parametrize("make", SUBCLASSES.values(), ids=SUBCLASSES.keys())
@pytest.mark.parametrize("call", SPECIAL.values(), ids=SPECIAL.keys())
def test_special_tokens(special_tok, call, make):
    """The careful path of special tokens takes a bytes subclass too."""
    same(call(special_tok, make(SPECIAL_TEXT)), call(special_tok, SPECIAL_TEXT))


@pytest.mark.parametrize("make", SUBCLASSES.values(), ids=SUBCLASSES.keys())
def test_unkeyed_draws_follow_the_stream(model_path, make):
    """Unkeyed draws of a subclass's text take the stream's next number, as plain bytes
    do: two tokenizers of one seed, one fed plain bytes and one the subclass, agree."""
    plain, other = Tokenizer(model_path, seed=5), Tokenizer(model_path, seed=5)
    for _ in range(2):
        assert other.encode(make(TEXT), alpha=ALPHA) == plain.encode(TEXT, alpha=ALPHA)
        assert other.tokenize(make(TEXT), alpha=ALPHA) == plain.tokenize(TEXT, alpha=ALPHA)
        assert other.sample(make(TEXT), 2, ALPHA) == plain.sample(TEXT, 2, ALPHA)
        same(other.encode_batch(np.array(TEXTS), alpha=ALPHA), plain.encode_batch(TEXTS, alpha=ALPHA))


def test_str_subclass_and_buffers_unchanged(tok):
    """What already worked keeps working: numpy.str_, bytearray and memoryview."""
    text = TEXT.decode()
    assert tok.encode(np.str_(text)) == tok.encode(text)
    assert tok.nbest(np.str_(text), 2) == tok.nbest(text, 2)
    assert tok.encode(bytearray(TEXT)) == tok.encode(TEXT)
    assert tok.encode(memoryview(TEXT)) == tok.encode(TEXT)
    assert tok.nbest(bytearray(TEXT), 2) == tok.nbest(TEXT, 2)
