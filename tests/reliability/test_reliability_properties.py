"""Reliability, part 1: properties that must hold for every input and every vocabulary.

Hypothesis draws arbitrary str (lone surrogates included), arbitrary bytes and
random vocabularies, and checks what the Tokenizer promises:

- lossless round trips: bytes always; str exactly with ``normalize=False``, and
  up to NFC with normalisation on; a lone surrogate is a clear
  ``UnicodeEncodeError`` (a ``ValueError``), never a crash or a silent change;
- every draw (exact and legacy samplers, any alpha) is a valid segmentation:
  pieces of the vocabulary that concatenate to the text and never cross a
  chunk start;
- the Viterbi path scores at least as high as every sampled path, and equals
  the pure-Python reference oracle on small inputs;
- ``encode_batch`` equals one-by-one ``encode``, keyed and unkeyed, for any
  thread count.
"""

from __future__ import annotations

import math
import random
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bytepiece import Tokenizer
from bytepiece._core import testing
from bytepiece._core.lattice import MAX_ALPHA
from bytepiece.model import vocabulary_from_counts
from bytepiece.reference import ReferenceLattice

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A small alphabet so that random texts actually hit the random multi-byte pieces;
# it includes a newline (chunk boundaries), a two-byte UTF-8 letter and bytes that
# are never valid UTF-8.
ALPHABET = b"ab\n \xc3\xa9\xff"


def _chunk_starts(data: bytes) -> set:
    return {p for p in range(1, len(data)) if data[p - 1] == 10 and data[p] != 10}


@st.composite
def vocabularies(draw):
    """A random valid vocabulary: the 256 single bytes plus up to 40 longer pieces made
    of ALPHABET bytes, with random positive counts (ints or floats over many orders of
    magnitude). The single bytes' counts come from a drawn seed (drawing 256 values
    one by one would make every example slow); the longer pieces are drawn directly."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    scale = draw(st.sampled_from([1, 10**3, 10**9, 10**12]))
    pieces = {
        bytes([b]): rng.randint(1, scale) if rng.random() < 0.7 else rng.uniform(1e-3, float(scale)) for b in range(256)
    }
    count = st.one_of(
        st.integers(min_value=1, max_value=10**12),
        st.floats(min_value=1e-3, max_value=1e9, allow_nan=False, allow_infinity=False),
    )
    longer = draw(
        st.lists(st.lists(st.sampled_from(list(ALPHABET)), min_size=2, max_size=7).map(bytes), max_size=40, unique=True)
    )
    for piece in longer:
        pieces[piece] = draw(count)
    return vocabulary_from_counts(pieces)


texts_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(list(ALPHABET)), max_size=200).map(bytes),
)

# Arbitrary str: every code point category, lone surrogates included.
any_text = st.text(alphabet=st.characters(), max_size=120)
text_without_surrogates = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=120)


def _valid_segmentation(tok: Tokenizer, data: bytes, pieces) -> None:
    assert b"".join(pieces) == data
    vocab = set(tok.vocabulary.pieces)
    boundaries = _chunk_starts(data)
    pos = 0
    for piece in pieces:
        assert piece in vocab, piece
        assert len(piece) > 0
        # no chunk start strictly inside the piece
        assert not any(pos < b < pos + len(piece) for b in boundaries), (pos, piece)
        pos += len(piece)


# ---------------------------------------------------------------------------
# Round trips


@pytest.mark.slow
@SETTINGS
@given(
    vocab=vocabularies(),
    data=texts_bytes,
    alpha=st.one_of(st.just(-1.0), st.floats(0.0, 50.0)),
    key=st.integers(0, 2**70),
)
def test_bytes_round_trip_for_any_vocabulary(vocab, data, alpha, key):
    tok = Tokenizer(vocab, seed=7)
    ids = tok.encode(data, alpha=alpha, key=key)
    assert tok.decode_bytes(ids) == data
    assert all(3 <= i < tok.vocab_size for i in ids)
    pieces = tok.tokenize(data, alpha=alpha, key=key)
    assert pieces == [tok.id_to_piece(i) for i in ids]
    # bytes-like inputs are the same text
    assert tok.encode(bytearray(data), alpha=alpha, key=key) == ids
    assert tok.encode(memoryview(data), alpha=alpha, key=key) == ids


@pytest.mark.slow
@SETTINGS
@given(text=text_without_surrogates, alpha=st.one_of(st.just(-1.0), st.floats(0.0, 5.0)), key=st.integers(0, 1000))
def test_str_round_trip_on_the_real_model(real_tok, raw_tok, text, alpha, key):
    # normalize=False: exact for every str without lone surrogates
    assert raw_tok.decode(raw_tok.encode(text, alpha=alpha, key=key)) == text
    # normalize=True: exact up to NFC
    assert real_tok.decode(real_tok.encode(text, alpha=alpha, key=key)) == unicodedata.normalize("NFC", text)
    assert real_tok.decode_bytes(real_tok.encode(text)) == unicodedata.normalize("NFC", text).encode("utf-8")


@SETTINGS
@given(text=any_text)
def test_lone_surrogates_raise_a_clear_value_error(real_tok, raw_tok, text):
    """A str that is not encodable as UTF-8 (a lone surrogate) is refused with
    UnicodeEncodeError, a ValueError naming the position; otherwise it round-trips."""
    has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    for tok in (real_tok, raw_tok):
        calls = [
            lambda tok=tok: tok.encode(text),
            lambda tok=tok: tok.encode(text, alpha=0.1, key=1),
            lambda tok=tok: tok.tokenize(text),
            lambda tok=tok: tok.encode_batch(["ok", text], alpha=0.1, keys=[0, 1]),
            lambda tok=tok: tok.nbest(text, 2),
            lambda tok=tok: tok.log_partition(text, 0.5),
        ]
        for call in calls:
            if has_surrogate:
                with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
                    call()
            else:
                call()
    if has_surrogate:
        # the documented escape: bytes in, bytes out (e.g. surrogateescape'd file content)
        data = text.encode("utf-8", "surrogatepass")
        assert raw_tok.decode_bytes(raw_tok.encode(data)) == data
        assert raw_tok.decode_bytes(raw_tok.encode(data)).decode("utf-8", "surrogatepass") == text


@SETTINGS
@given(data=st.binary(max_size=300))
def test_decode_of_arbitrary_bytes_skips_only_invalid_utf8(real_tok, data):
    ids = real_tok.encode(data)
    assert real_tok.decode(ids) == data.decode("utf-8", errors="ignore")


# ---------------------------------------------------------------------------
# Samples are segmentations; Viterbi beats them all


def _dense_case(seed: int):
    """A vocabulary of many pieces over the letters a and b (plus the 256 single bytes)
    and a text of 50 to 600 of those letters (a newline now and then): lattices whose
    chosen paths to neighbouring positions often part and meet again."""
    rng = random.Random(seed)
    pieces = {bytes([b]): 1 for b in range(256)}
    pieces.update({b"a": rng.randint(1, 10**6), b"b": rng.randint(1, 10**6)})
    for _ in range(rng.randint(1, 30)):
        pieces[bytes(rng.choice(b"ab") for _ in range(rng.randint(2, 6)))] = rng.randint(1, 10**6)
    letters = b"ab" * 20 + b"\n"
    return vocabulary_from_counts(pieces), bytes(rng.choice(letters) for _ in range(rng.randint(50, 600)))


@pytest.mark.slow
@SETTINGS
@given(
    case=st.one_of(st.tuples(vocabularies(), texts_bytes), st.integers(0, 2**32).map(_dense_case)),
    first_cap=st.sampled_from([1, 2, 3, 8, 33, 1 << 16]),
    chunked=st.booleans(),
)
def test_bounded_memory_viterbi_equals_viterbi(case, first_cap, chunked):
    """Texts over 1 MB take the Viterbi that keeps only a window of positions (it writes
    out the path where the frontier's back-pointer chains meet, and grows when they do
    not); with any window size it gives seg_viterbi's segmentation exactly (ties too).
    Small windows make it write out, compact and grow many times on short texts."""
    vocab, data = case
    lattice = Tokenizer(vocab)._lattice
    expected = lattice.segment(data, chunked=chunked)
    got = testing.viterbi_windowed(lattice, data, first_cap, chunked=chunked)
    assert got[0].tolist() == expected[0].tolist()
    assert got[1].tolist() == expected[1].tolist()


@pytest.mark.slow
@SETTINGS
@given(
    vocab=vocabularies(),
    data=texts_bytes,
    alpha=st.floats(0.0, 30.0),
    key=st.integers(0, 2**64 - 1),
    sampler=st.sampled_from(["exact", "legacy-v1"]),
)
def test_every_sample_is_a_valid_segmentation_and_viterbi_scores_highest(vocab, data, alpha, key, sampler):
    tok = Tokenizer(vocab, seed=key % 97)
    best = tok.tokenize(data)
    _valid_segmentation(tok, data, best)
    sample = tok.tokenize(data, alpha=alpha, key=key, sampler=sampler)
    _valid_segmentation(tok, data, sample)
    best_score = tok.score(data, best)
    sample_score = tok.score(data, sample)
    assert math.isfinite(best_score) and math.isfinite(sample_score)
    assert best_score >= sample_score - 1e-9 * max(1.0, abs(sample_score))
    if sampler == "exact":
        lp = tok.log_prob(data, sample, alpha=alpha)
        assert lp <= 1e-9 and lp > -math.inf


@FEW
@given(vocab=vocabularies(), data=st.lists(st.sampled_from(list(ALPHABET)), max_size=14).map(bytes))
def test_viterbi_and_nbest_equal_the_reference_oracle(vocab, data):
    tok = Tokenizer(vocab)
    ref = ReferenceLattice(dict(zip(tok.vocabulary.pieces, tok._logprobs.tolist())))
    assert tok.tokenize(data) == ref.viterbi(data)
    got = tok.nbest(data, 3)
    want = ref.nbest(data, 3)
    assert [round(s, 9) for _, s in got] == [round(s, 9) for _, s in want]
    assert got[0][0] == tok.tokenize(data)


@FEW
@given(
    vocab=vocabularies(),
    data=st.lists(st.sampled_from(list(ALPHABET)), max_size=12).map(bytes),
    alpha=st.floats(0.0, 3.0),
)
def test_lattice_quantities_equal_the_reference_oracle(vocab, data, alpha):
    tok = Tokenizer(vocab)
    ref = ReferenceLattice(dict(zip(tok.vocabulary.pieces, tok._logprobs.tolist())))
    assert tok.log_partition(data, alpha) == pytest.approx(ref.log_partition(data, alpha), rel=1e-9, abs=1e-9)
    assert tok.entropy(data, alpha) == pytest.approx(ref.entropy(data, alpha), rel=1e-7, abs=1e-7)


@pytest.mark.slow
@SETTINGS
@given(data=texts_bytes, alpha=st.one_of(st.floats(0.0, MAX_ALPHA), st.just(MAX_ALPHA)), key=st.integers(0, 2**64 - 1))
def test_huge_alpha_samples_stay_valid_and_tend_to_viterbi(real_tok, data, alpha, key):
    """Very large alpha switches to the log-space sampler; the draw is still a
    segmentation, and at the largest alpha taken (1e4) it is the Viterbi path unless
    there is a tie. Larger alphas are refused (tests/api/test_lattice_research.py)."""
    sample = real_tok.tokenize(data, alpha=alpha, key=key)
    _valid_segmentation(real_tok, data, sample)
    if alpha >= 1e4 and data:
        best = real_tok.tokenize(data)
        top = real_tok.nbest(data, 2)
        if len(top) == 1 or top[0][1] - top[1][1] > 1e-3:
            assert sample == best


# ---------------------------------------------------------------------------
# Batches


@SETTINGS
@given(
    vocab=vocabularies(),
    texts=st.lists(texts_bytes, max_size=80),
    alpha=st.one_of(st.just(-1.0), st.floats(0.0, 5.0)),
    threads=st.integers(1, 4),
    bos=st.booleans(),
    eos=st.booleans(),
    base_key=st.integers(0, 10**6),
)
@pytest.mark.slow
def test_encode_batch_equals_one_by_one(vocab, texts, alpha, threads, bos, eos, base_key):
    tok = Tokenizer(vocab, seed=base_key)
    keys = [(base_key, i) for i in range(len(texts))]
    batch = tok.encode_batch(texts, add_bos=bos, add_eos=eos, alpha=alpha, keys=keys, num_threads=threads)
    one = [tok.encode(t, add_bos=bos, add_eos=eos, alpha=alpha, key=k) for t, k in zip(texts, keys)]
    assert batch == one
    # unkeyed: a batch draws the same consecutive calls as one-by-one encodes
    a = Tokenizer(vocab, seed=base_key)
    b = Tokenizer(vocab, seed=base_key)
    assert a.encode_batch(texts, alpha=alpha, num_threads=threads) == [b.encode(t, alpha=alpha) for t in texts]


@FEW
@given(texts=st.lists(any_text, max_size=20))
def test_encode_batch_of_arbitrary_str_fails_like_encode(real_tok, texts):
    try:
        expected = [real_tok.encode(t, alpha=0.2, key=i) for i, t in enumerate(texts)]
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            real_tok.encode_batch(texts, alpha=0.2, keys=range(len(texts)), num_threads=2)
        return
    assert real_tok.encode_batch(texts, alpha=0.2, keys=range(len(texts)), num_threads=2) == expected


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def real_tok(model_path):
    return Tokenizer(model_path, seed=99)


@pytest.fixture(scope="module")
def raw_tok(model_path):
    return Tokenizer(model_path, seed=99, normalize=False)
