"""Special tokens and the model file's metadata entry (normalisation, default alpha)."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest
from conftest import VENDORED_MODEL

from bytepiece import ModelError, Tokenizer, load_model
from bytepiece.model import METADATA_KEY, vocabulary_from_counts

EOT, START, END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
TEXT = f"{START}user\nHello there{END}\n{START}assistant\n你好{EOT}"


@pytest.fixture(scope="module")
def chat():
    return Tokenizer(VENDORED_MODEL, seed=5, special_tokens=[EOT, START, END])


@pytest.mark.slow
def test_special_tokens_take_the_ids_after_the_pieces(chat):
    n = len(chat.vocabulary.pieces) + 3
    assert chat.special_tokens == {EOT: n, START: n + 1, END: n + 2}
    assert chat.vocab_size == n + 3
    assert chat.piece_to_id(EOT) == n and chat.id_to_piece(n + 1) == START
    assert chat.ids_to_pieces([n + 2]) == [END]


def test_by_default_special_text_is_ordinary_text(chat, tok):
    # Untrusted input cannot inject control tokens: same ids as without special tokens.
    assert chat.encode(TEXT) == tok.encode(TEXT)
    assert not set(chat.encode(TEXT)) & set(chat.special_tokens.values())
    assert chat.decode(chat.encode(TEXT)) == TEXT


def test_allowed_special_all_honours_every_special_token(chat, tok):
    ids = chat.encode(TEXT, allowed_special="all")
    sp = chat.special_tokens
    assert [i for i in ids if i in sp.values()] == [sp[START], sp[END], sp[START], sp[EOT]]
    # Between special tokens the text is segmented on its own, as encode would.
    assert ids[1 : ids.index(sp[END])] == tok.encode("user\nHello there")
    assert chat.decode(ids) == TEXT
    assert chat.decode_bytes(ids) == TEXT.encode()


def test_allowed_special_subset(chat):
    ids = chat.encode(TEXT, allowed_special={EOT})
    sp = chat.special_tokens
    assert ids.count(sp[EOT]) == 1 and sp[START] not in ids
    assert ids[-1] == sp[EOT]


def test_disallowed_special_raises_naming_the_token(chat):
    with pytest.raises(ValueError, match=r"<\|im_start\|>"):
        chat.encode(TEXT, disallowed_special="all")
    with pytest.raises(ValueError, match="endoftext"):
        chat.encode(TEXT, allowed_special={START, END}, disallowed_special="all")
    # "all" disallows only what is not allowed.
    chat.encode(TEXT, allowed_special="all", disallowed_special="all")
    assert chat.encode("plain text", disallowed_special="all") == chat.encode("plain text")


def test_unknown_special_names_are_rejected(chat):
    with pytest.raises(ValueError, match="not special tokens"):
        chat.encode("x", allowed_special={"<nope>"})
    with pytest.raises(TypeError):
        chat.encode("x", allowed_special="<|endoftext|>")


@pytest.mark.parametrize("argument", ["allowed_special", "disallowed_special"])
@pytest.mark.parametrize(
    "value, message",
    [
        ({1, "x"}, "holds special tokens (str), not int 1"),
        ({1, EOT}, "holds special tokens (str), not int 1"),
        ([EOT, 2.5, 1], "holds special tokens (str), not float 2.5"),  # (the first, in order)
        ([EOT.encode()], "holds special tokens (str), not bytes b'<|endoftext|>'"),
        ([[EOT]], "holds special tokens (str), not list ['<|endoftext|>']"),
        (iter, "holds special tokens (str), not NoneType None"),  # (iter([EOT, None]), made in the test)
        (EOT.encode(), "is a set of special tokens or \"all\", not the single bytes b'<|endoftext|>'"),
        (EOT, "is a set of special tokens or \"all\", not the single str '<|endoftext|>'"),
        (5, 'is a set of special tokens or "all", not int 5'),
    ],
)
def test_a_special_set_that_is_not_one_of_str_is_named(chat, argument, value, message):
    """allowed_special={1, "x"} failed in sorted() ("'<' not supported between 'str' and
    'int'"), and allowed_special=b"<|eot|>" was read byte by byte ("not special tokens of
    this model: [60, 62, 101, ...]"): bytes are one token as a str is, and a member that
    is not a str is named with its argument."""
    if value is iter:
        value = iter([EOT, None])
    with pytest.raises(TypeError, match=re.escape(f"{argument} {message}")):
        chat.encode("x", **{argument: value})


def test_a_special_set_of_any_collection_of_str_is_accepted(chat):
    expected = chat.encode(TEXT, allowed_special={EOT, START, END})
    for tokens in (
        [EOT, START, END, EOT],
        (EOT, START, END),
        frozenset({EOT, START, END}),
        dict.fromkeys([EOT, START, END]),
    ):
        assert chat.encode(TEXT, allowed_special=tokens) == expected
    assert chat.encode(TEXT, allowed_special=(t for t in [EOT, START, END])) == expected


def test_longest_special_token_wins_and_adjacent_tokens_split():
    tok = Tokenizer(VENDORED_MODEL, special_tokens=["<a>", "<a><b>", "<b>"])
    sp = tok.special_tokens
    assert tok.encode("<a><b><b>", allowed_special="all") == [sp["<a><b>"], sp["<b>"]]
    assert tok.encode("<a><a>", allowed_special="all") == [sp["<a>"], sp["<a>"]]


def test_special_tokens_with_bos_eos_numpy_and_batches(chat):
    sp = chat.special_tokens
    ids = chat.encode(TEXT, add_bos=True, add_eos=True, allowed_special="all")
    assert ids[0] == 1 and ids[-1] == 2
    arr = chat.encode(TEXT, allowed_special="all", as_numpy=True)
    assert arr.dtype == np.uint16 and arr.tolist() == ids[1:-1]
    batch = chat.encode_batch([TEXT, EOT, ""], allowed_special="all")
    assert batch == [ids[1:-1], [sp[EOT]], []]
    flat, rows = chat.encode_batch([TEXT, EOT, ""], allowed_special="all", as_numpy=True)
    assert flat.tolist() == ids[1:-1] + [sp[EOT]] and rows.tolist() == [0, len(ids) - 2, len(ids) - 1, len(ids) - 1]
    with pytest.raises(ValueError):
        chat.encode_batch(["fine", TEXT], disallowed_special="all")


def test_keyed_sampling_with_special_tokens_is_reproducible(chat):
    a = chat.encode(TEXT, alpha=0.1, key=3, allowed_special="all")
    b = chat.encode(TEXT, alpha=0.1, key=3, allowed_special="all")
    assert a == b
    assert chat.decode(a) == TEXT
    # Text without special tokens samples exactly as encode does.
    assert chat.encode("Hello there", alpha=0.1, key=3, allowed_special="all") == chat.encode(
        "Hello there", alpha=0.1, key=3
    )
    # The runs between special tokens draw with different key words.
    same = chat.encode(f"abcdefgh{EOT}abcdefgh", alpha=0.0, key=1, allowed_special="all")
    runs = [same[: same.index(chat.special_tokens[EOT])], same[same.index(chat.special_tokens[EOT]) + 1 :]]
    draws = {tuple(chat.encode(f"abcdefgh{EOT}abcdefgh", alpha=0.0, key=k, allowed_special="all")) for k in range(20)}
    assert len(draws) > 1 and runs[0] and runs[1]


@pytest.mark.slow
def test_special_tokens_saved_in_the_model_file_and_reloaded(chat, tmp_path):
    path = tmp_path / "chat.model"
    chat.save(path)
    data = json.loads(path.read_text("utf-8"))
    assert list(data)[-1] == METADATA_KEY
    assert data[METADATA_KEY]["special_tokens"] == [EOT, START, END]
    again = Tokenizer(path)
    assert again.special_tokens == chat.special_tokens
    assert again.encode(TEXT, allowed_special="all") == chat.encode(TEXT, allowed_special="all")
    # Adding the same tokens again changes nothing; new ones go after.
    more = Tokenizer(path, special_tokens=[EOT, "<extra>"])
    assert more.special_tokens == {**chat.special_tokens, "<extra>": chat.vocab_size}


@pytest.mark.slow
def test_plain_model_stays_byte_identical(tmp_path, tok):
    path = tmp_path / "plain.model"
    tok.save(path)
    assert METADATA_KEY not in json.loads(path.read_text("utf-8"))
    Tokenizer(path).save(tmp_path / "again.model")
    assert (tmp_path / "again.model").read_bytes() == path.read_bytes()


def test_pickle_keeps_special_tokens(chat):
    copy = pickle.loads(pickle.dumps(chat))
    assert copy.special_tokens == chat.special_tokens
    assert copy.encode(TEXT, allowed_special="all") == chat.encode(TEXT, allowed_special="all")


@pytest.mark.parametrize("bad", [[""], ["<pad>"], [5]])
def test_bad_special_tokens_fail(bad):
    with pytest.raises(ModelError):
        Tokenizer(VENDORED_MODEL, special_tokens=bad)


def test_repeated_special_tokens_are_merged():
    tok = Tokenizer(VENDORED_MODEL, special_tokens=["<x>", "<x>"])
    assert list(tok.special_tokens) == ["<x>"]
    with pytest.raises(TypeError):
        Tokenizer(VENDORED_MODEL, special_tokens="<x>")


# -- metadata: normalisation and default alpha ---------------------------------------


def _small_model() -> dict:
    pieces = {bytes([b]): 1 + b for b in range(256)}
    pieces.update({b"ab": 50, b"abc": 70, "é".encode(): 9})
    return vocabulary_from_counts(pieces).to_dict()


def test_normalisation_and_alpha_are_saved_and_restored(tmp_path):
    tok = Tokenizer(_small_model(), normalize=False, alpha=0.5, seed=1)
    path = tmp_path / "m.model"
    tok.save(path)
    meta = json.loads(path.read_text("utf-8"))[METADATA_KEY]
    assert meta["normalization"] == "none" and meta["alpha"] == 0.5
    again = Tokenizer(path, seed=1)
    assert again.normalization == "none" and again.normalize is False and again.alpha == 0.5
    decomposed = "e\u0301"
    assert again.decode(again.encode(decomposed)) == decomposed
    # The default alpha samples: keyed draws equal explicit alpha=0.5 draws.
    assert again.encode("abcabcab", key=4) == again.encode("abcabcab", alpha=0.5, key=4)
    assert again.tokenize("abcabcab", key=4) == again.tokenize("abcabcab", alpha=0.5, key=4)
    texts = ["abcabcab", "ababab", "cabcab"]
    batch = [again.encode(t, alpha=0.5, key=k) for k, t in enumerate(texts)]
    assert again.encode_batch(texts, keys=range(3)) == batch
    flat, rows = again.encode_batch(texts, keys=range(3), as_numpy=True)
    assert [flat[rows[i] : rows[i + 1]].tolist() for i in range(3)] == batch
    assert again.encode_with_offsets("abcabcab", key=0).ids == batch[0]
    assert again.encode("abcabcab", key=0, as_numpy=True).tolist() == batch[0]
    assert len({tuple(again.encode("abcabcab", key=k)) for k in range(30)}) > 1
    # An explicit argument still overrides the file.
    assert Tokenizer(path, normalize=True).normalization == "NFC"
    assert Tokenizer(path, alpha=-1).alpha == -1


def test_plain_0_6_3_model_means_nfc_and_viterbi():
    tok = Tokenizer(VENDORED_MODEL)
    assert tok.normalization == "NFC" and tok.alpha == -1
    assert load_model(VENDORED_MODEL).is_plain


def test_other_normalisation_forms():
    tok = Tokenizer(_small_model(), normalize="NFKC")
    assert tok.normalize_text("ﬁ") == "fi"
    assert tok.decode(tok.encode("ﬁ")) == "fi"
    with pytest.raises(ValueError):
        Tokenizer(_small_model(), normalize="NFX")


@pytest.mark.parametrize(
    "meta, message",
    [
        ([], "must be an object"),
        ({"format": 2}, "format"),
        ({"normalization": "nfc"}, "normalization"),
        ({"alpha": "0.1"}, "alpha"),
        ({"alpha": 10**400}, "alpha"),
        ({"special_tokens": "<x>"}, "list of strings"),
        ({"special_tokens": ["<eos>"]}, "defined twice"),
    ],
)
def test_bad_metadata_fails_at_load(meta, message, tmp_path):
    model = _small_model()
    model[METADATA_KEY] = meta
    path = tmp_path / "bad.model"
    path.write_text(json.dumps(model), "utf-8")
    with pytest.raises(ModelError, match=message) as info:
        Tokenizer(path)
    assert "bad.model" in str(info.value)


def test_metadata_alone_is_an_empty_vocabulary():
    with pytest.raises(ModelError, match="empty"):
        load_model({METADATA_KEY: {"format": 1}})


# -- property: special tokens among random text --------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FRAGMENTS = st.lists(
    st.one_of(st.sampled_from([EOT, START, END, "<|im", "end|>", "\n\n", "é"]), st.text(max_size=8)), max_size=8
)
_CHAT: list = []


@settings(max_examples=150, deadline=None)
@given(_FRAGMENTS)
def test_special_tokens_property(fragments):
    if not _CHAT:
        _CHAT.append(Tokenizer(VENDORED_MODEL, special_tokens=[EOT, START, END]))
    tok = _CHAT[0]
    text = "".join(fragments)
    enc = tok.encode_with_offsets(text, allowed_special="all")
    data = tok._to_bytes(text)
    at = 0
    names = {i: t for t, i in tok.special_tokens.items()}
    for i, (a, b) in zip(enc.ids, enc.offsets):
        assert a == at and b > a
        assert data[a:b] == (names[i].encode() if i in names else tok.id_bytes[i])
        at = b
    assert at == len(data)
    assert tok.decode(enc.ids) == tok.normalize_text(text)
    # Honoured exactly where the text holds them (never inside ordinary runs).
    plain = [i for i in enc.ids if i not in names]
    assert not any(tok.id_bytes[i] in (EOT.encode(), START.encode(), END.encode()) for i in plain)
    assert sum(i in names for i in enc.ids) == sum(tok.normalize_text(text).count(t) for t in (EOT, START, END))
    assert tok.encode(text) == tok.encode_with_offsets(text).ids


def test_a_required_boundary_inside_an_allowed_special_token_is_an_error():
    """A forbidden boundary next to a special token was an error, but a required one
    inside it was dropped silently: the token stayed one id and the constraint was not
    kept."""
    tok = Tokenizer(VENDORED_MODEL, special_tokens=["ab"])
    text = "hello ab world"  # the token is bytes 6 and 7
    for call in (
        lambda: tok.encode(text, allowed_special="all", required_boundaries=[7]),
        lambda: tok.encode(text, allowed_special="all", boundary_regex="a"),
        lambda: tok.encode_batch([text], allowed_special="all", required_boundaries=[[7]]),
    ):
        with pytest.raises(ValueError, match=r"position 7 is inside a special token \(bytes 6 to 8\)"):
            call()
    at_edges = tok.encode(text, allowed_special="all", required_boundaries=[6, 8])
    assert at_edges == tok.encode(text, allowed_special="all") and tok.piece_to_id("ab") in at_edges
    assert tok.piece_to_id("ab") not in tok.encode(text, required_boundaries=[7])  # (not allowed: plain text)
