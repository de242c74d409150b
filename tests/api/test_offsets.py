"""Byte and character offsets of tokens, and numpy outputs (single texts and flat batches)."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece import Tokenizer
from bytepiece.model import vocabulary_from_counts
from bytepiece.tokenizer import Encoding, id_dtype

TEXT = "Hello wörld! 你好，世界。😀 emoji\n\n\tdef f(x):\n        return x\n"


def check_encoding(tok: Tokenizer, text, enc: Encoding) -> None:
    """Every invariant the offsets promise."""
    data = tok._to_bytes(text)
    s = tok.normalize_text(text) if isinstance(text, str) else None
    assert len(enc.ids) == len(enc.offsets) == len(enc.char_offsets)
    at = 0
    for i, (a, b), (ca, cb) in zip(enc.ids, enc.offsets, enc.char_offsets):
        if i in (1, 2):
            assert a == b and ca == cb
            continue
        assert a == at and b > a
        assert tok.id_bytes[i] == data[a:b]
        at = b
        if s is not None:
            # the shortest substring holding the token's bytes: character ca holds byte a,
            # character cb - 1 holds byte b - 1
            first = len(s[:ca].encode())
            last = len(s[: cb - 1].encode())
            assert first <= a < first + len(s[ca].encode())
            assert last <= b - 1 < last + len(s[cb - 1].encode())
    assert at == len(data)


def test_offsets_cover_the_text(tok):
    enc = tok.encode_with_offsets(TEXT, add_bos=True, add_eos=True)
    assert enc.ids == tok.encode(TEXT, add_bos=True, add_eos=True)
    check_encoding(tok, TEXT, enc)
    assert enc.offsets[0] == (0, 0) and enc.offsets[-1] == (len(TEXT.encode()),) * 2
    assert enc.char_offsets[-1] == (len(TEXT),) * 2


def test_char_offsets_when_pieces_split_a_character():
    # A vocabulary without the piece for "😀" (4 bytes) but with its first two bytes.
    pieces = {bytes([b]): 10 for b in range(256)}
    pieces["😀".encode()[:2]] = 1000
    pieces[b"ab"] = 1000
    tok = Tokenizer(vocabulary_from_counts(pieces))
    text = "ab😀ab"
    enc = tok.encode_with_offsets(text)
    assert tok.ids_to_pieces(enc.ids) == [b"ab", b"\xf0\x9f", b"\x98", b"\x80", b"ab"]
    assert enc.offsets == [(0, 2), (2, 4), (4, 5), (5, 6), (6, 8)]
    # Every token holding part of the emoji touches the emoji (character 2).
    assert enc.char_offsets == [(0, 2), (2, 3), (2, 3), (2, 3), (3, 5)]
    check_encoding(tok, text, enc)


def test_offsets_refer_to_the_normalised_text(tok):
    decomposed = "e\u0301te\u0301"  # "été" decomposed: 5 code points, NFC has 3
    enc = tok.encode_with_offsets(decomposed)
    assert enc.char_offsets[-1][1] == len(unicodedata.normalize("NFC", decomposed)) == 3
    raw = Tokenizer(tok.vocabulary, normalize=False)
    assert raw.encode_with_offsets(decomposed).char_offsets[-1][1] == 5


def test_offsets_of_bytes_input_count_lead_bytes(tok):
    data = b"\x80\xe4\xb8abc\xff"
    enc = tok.encode_with_offsets(data)
    check_encoding(tok, data, enc)
    assert enc.char_offsets[-1][1] == 6  # \x80, \xe4\xb8, a, b, c, \xff


def test_sampled_offsets_match_sampled_ids(tok):
    for key in range(10):
        enc = tok.encode_with_offsets(TEXT, alpha=0.1, key=key)
        assert enc.ids == tok.encode(TEXT, alpha=0.1, key=key)
        check_encoding(tok, TEXT, enc)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_offsets_property(text):
    tok = _shared()
    check_encoding(tok, text, tok.encode_with_offsets(text, add_bos=True))


_TOK = []


def _shared() -> Tokenizer:
    if not _TOK:
        _TOK.append(Tokenizer(REPO / "tests" / "data" / "bytepiece.plus.40k.zip"))
    return _TOK[0]


# -- numpy ------------------------------------------------------------------------


@pytest.mark.slow
def test_dtype_is_the_smallest_that_holds_every_id():
    assert id_dtype(65536) == np.uint16 and id_dtype(65537) == np.int32
    base = {bytes([b]): 1 for b in range(256)}
    base.update({bytes([a, b]) + b"!": 2 for a in range(256) for b in range(255)})  # 65280 more
    vocab = vocabulary_from_counts(base)
    assert len(vocab) + 3 == 65539
    big = Tokenizer(vocab)
    assert big.id_dtype == np.int32
    ids = big.encode(b"\xff\xfe!", as_numpy=True)
    assert ids.dtype == np.int32 and ids.max() >= 65536
    small = Tokenizer(
        vocabulary_from_counts({bytes([b]): 1 for b in range(256)}),
        special_tokens=[f"<{i}>" for i in range(65536 - 259)],
    )
    assert small.vocab_size == 65536 and small.id_dtype == np.uint16
    assert small.encode("<65276>", allowed_special="all", as_numpy=True).tolist() == [65535]


def test_encode_as_numpy(tok):
    arr = tok.encode(TEXT, add_bos=True, as_numpy=True)
    assert isinstance(arr, np.ndarray) and arr.dtype == np.uint16
    assert arr.tolist() == tok.encode(TEXT, add_bos=True)
    assert tok.decode(arr) == TEXT


@pytest.mark.parametrize("threads", [1, 2])
def test_flat_batches_equal_the_lists(tok, threads):
    texts = [TEXT, "", "abc", "\n\n", "你好" * 50] * 40
    lists = tok.encode_batch(texts, add_bos=True, add_eos=True, num_threads=threads)
    ids, rows = tok.encode_batch(texts, add_bos=True, add_eos=True, num_threads=threads, as_numpy=True)
    assert ids.dtype == np.uint16 and rows.dtype == np.int64 and len(rows) == len(texts) + 1
    assert [ids[rows[i] : rows[i + 1]].tolist() for i in range(len(texts))] == lists
    ids2, rows2, spans = tok.encode_batch(texts, num_threads=threads, as_numpy=True, return_offsets=True)
    assert spans.shape == (len(ids2), 2) and spans.dtype == np.int32
    for i, text in enumerate(texts):
        enc = tok.encode_with_offsets(text)
        assert ids2[rows2[i] : rows2[i + 1]].tolist() == enc.ids
        assert [tuple(s) for s in spans[rows2[i] : rows2[i + 1]].tolist()] == enc.offsets


def test_flat_batches_with_keys_and_bos(tok):
    texts = ["sample me please", "", "and me"]
    keys = [10, 11, 12]
    ids, rows, spans = tok.encode_batch(
        texts, add_bos=True, add_eos=True, alpha=0.2, keys=keys, as_numpy=True, return_offsets=True
    )
    for i, text in enumerate(texts):
        enc = tok.encode_with_offsets(text, True, True, alpha=0.2, key=keys[i])
        assert ids[rows[i] : rows[i + 1]].tolist() == enc.ids
        assert [tuple(s) for s in spans[rows[i] : rows[i + 1]].tolist()] == enc.offsets
    empty = tok.encode_batch([], as_numpy=True, return_offsets=True)
    assert [a.shape for a in empty] == [(0,), (1,), (0, 2)]


def test_batch_encodings(tok):
    encs = tok.encode_batch([TEXT, "x"], return_offsets=True)
    assert encs == [tok.encode_with_offsets(TEXT), tok.encode_with_offsets("x")]


def test_lattice_flat_path_without_python_lists(tok):
    from bytepiece._core.batch import encode_flat, encode_lists

    lat = tok._lattice
    ids, rows, ends = encode_flat(lat, [b"abc", b"", TEXT.encode()], small=True, with_ends=True)
    assert ids.dtype == np.uint16 and ends.dtype == np.int32
    assert ids.tolist() == sum(encode_lists(lat, [b"abc", b"", TEXT.encode()]), [])
    assert ends[rows[1] - 1] == 3 and ends[-1] == len(TEXT.encode())


def _traced_peak(call) -> int:
    import tracemalloc

    call()  # warm caches (patterns, thread pool)
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_numpy_outputs_are_built_without_python_lists(tok):
    """A list of ids costs ~36 bytes per token (a pointer and an int object), about 17
    bytes per byte of English text on top of the arrays; the core's flat buffers cost
    2 bytes per byte for uint16 ids (4 more for the int32 ends of return_offsets)."""
    text = (REPO / "corpora" / "en.heldout.txt").read_text(encoding="utf-8")
    data = text.encode()[:300_000]
    lines = data.splitlines(keepends=True)
    chat = Tokenizer(tok.vocabulary, special_tokens=["<|endoftext|>"])
    with_special = (text[:150_000] + "<|endoftext|>" + text[150_000:300_000]).encode()
    assert chat.encode(with_special, as_numpy=True, allowed_special="all").tolist() == chat.encode(
        with_special, allowed_special="all"
    )
    for call, per_byte in [
        (lambda: tok.encode(data, as_numpy=True), 4),
        (lambda: tok.encode(data, alpha=0.1, key=1, as_numpy=True), 4),
        (lambda: chat.encode(with_special, allowed_special="all", as_numpy=True), 4),
        (lambda: tok.encode_batch(lines, as_numpy=True, num_threads=1), 4),
        (lambda: tok.encode_batch(lines, as_numpy=True, num_threads=2), 4),
        (lambda: tok.encode_batch(lines, as_numpy=True, return_offsets=True, num_threads=2), 12),
        # Batches that look for special tokens go one text at a time: a few small arrays
        # per line (74 bytes on average here) on top; through lists it was 45 and 55.
        (lambda: chat.encode_batch(lines, as_numpy=True, allowed_special="all"), 10),
        (lambda: chat.encode_batch(lines, as_numpy=True, return_offsets=True, disallowed_special="all"), 16),
    ]:
        assert _traced_peak(call) < per_byte * len(data)


@pytest.mark.parametrize(
    "text",
    ["", "<|endoftext|>", "a<|endoftext|>", "<|endoftext|>b<|endoftext|><|endoftext|>", TEXT + "<|endoftext|>" + TEXT],
)
@pytest.mark.parametrize("allowed", [(), "all"])
def test_encode_as_numpy_equals_the_list(tok, text, allowed):
    chat = Tokenizer(tok.vocabulary, special_tokens=["<|endoftext|>"], seed=3)
    for kwargs in [
        {},
        {"add_bos": True, "add_eos": True},
        {"alpha": 0.0, "key": 5},
        {"alpha": 0.3, "key": "k", "add_eos": True},
        {"alpha": 0.3, "key": 2, "sampler": "legacy-v1"},
    ]:
        arr = chat.encode(text, as_numpy=True, allowed_special=allowed, **kwargs)
        assert arr.dtype == chat.id_dtype
        assert arr.tolist() == chat.encode(text, allowed_special=allowed, **kwargs)
        assert chat.encode(text.encode(), as_numpy=True, allowed_special=allowed, **kwargs).tolist() == arr.tolist()


@pytest.mark.parametrize(
    "kwargs", [{}, {"add_bos": True, "add_eos": True, "alpha": 0.2, "keys": [4, 5, 6, 7, 8]}, {"alpha": 0.0}]
)
def test_flat_batches_with_special_tokens_equal_the_encodings(tok, kwargs):
    chat = Tokenizer(tok.vocabulary, special_tokens=["<|endoftext|>", "<|im_start|>"], seed=8)
    texts = ["<|im_start|>hi😀<|endoftext|>", "", "<|endoftext|>", TEXT, "a<|im_start|><|im_start|>b"]
    ids, rows, spans = chat.encode_batch(texts, as_numpy=True, return_offsets=True, allowed_special="all", **kwargs)
    again = Tokenizer(tok.vocabulary, special_tokens=["<|endoftext|>", "<|im_start|>"], seed=8)
    keys = kwargs.pop("keys", None)
    for i, text in enumerate(texts):
        enc = again.encode_with_offsets(text, allowed_special="all", key=None if keys is None else keys[i], **kwargs)
        assert ids[rows[i] : rows[i + 1]].tolist() == enc.ids
        assert [tuple(x) for x in spans[rows[i] : rows[i + 1]].tolist()] == enc.offsets
    assert ids.dtype == chat.id_dtype and spans.dtype == np.int32
