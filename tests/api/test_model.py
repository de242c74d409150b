"""Model files: every accepted form loads, writes are byte-identical to 0.6.3, bad models fail at load."""

from __future__ import annotations

import base64
import json
import zipfile

import numpy as np
import pytest
from conftest import COMPAT_MODELS, VENDORED_MODEL
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bytepiece import ModelError, Tokenizer, load_model, save_model
from bytepiece.model import Vocabulary, vocabulary_from_counts


def _raw_json(path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        return archive.read(name)


def _tiny_model(**overrides) -> dict:
    """A valid model: 256 single bytes plus a few longer pieces."""
    pieces = {bytes([b]): 1 + b for b in range(256)}
    pieces.update({b"ab": 50, b"abc": 70, "é".encode(): 9})
    model = vocabulary_from_counts(pieces).to_dict()
    model.update(overrides)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("path", COMPAT_MODELS, ids=lambda p: p.name)
def test_compat_models_load_from_zip_json_and_dict(path, tmp_path):
    raw = _raw_json(path)
    json_path = tmp_path / "model.json"
    json_path.write_bytes(raw)
    from_zip = load_model(path)
    from_json = load_model(json_path)
    from_dict = load_model(json.loads(raw))
    assert from_zip == from_json == from_dict
    assert all(len(bytes([b])) == 1 and bytes([b]) in set(from_zip.pieces) for b in range(256))
    tok = Tokenizer(str(path))
    assert tok.vocab_size == len(from_zip) + 3


@pytest.mark.slow
@pytest.mark.parametrize("path", COMPAT_MODELS, ids=lambda p: p.name)
def test_save_writes_exactly_what_bytepiece_0_6_3_writes(path, tmp_path):
    # The author's published files were written by 0.6.3's Trainer.save.
    out = tmp_path / "copy.model"
    Tokenizer(path).save(out)
    assert out.read_bytes() == _raw_json(path)


def test_save_model_from_counts_orders_ids_by_length_then_bytes(tmp_path):
    out = tmp_path / "m.json"
    save_model(out, {**{bytes([b]): 1 for b in range(256)}, b"zz": 5, b"aaa": 3, b"ab": 2})
    data = json.loads(out.read_text("utf-8"))
    ids = {base64.b64decode(k): v[0] for k, v in data.items()}
    assert ids[b"\x00"] == 3 and ids[b"\xff"] == 258
    assert ids[b"ab"] == 259 and ids[b"zz"] == 260 and ids[b"aaa"] == 261


@pytest.mark.parametrize("count", [0, -3, True, np.True_, "5", float("nan"), 10**400])
def test_save_refuses_a_count_that_loading_would_refuse(count, tmp_path):
    """Nothing is written that load_model cannot read: a bad count is the ModelError a
    file holding it gets, naming the piece, before any file is made."""
    pieces = {**{bytes([b]): 5 for b in range(256)}, b"ab": count}
    with pytest.raises(ModelError, match=r"piece b'ab' has count .*(not a number|finite and > 0)"):
        save_model(tmp_path / "m.model", pieces)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_a_vocabulary_that_loading_would_refuse(tmp_path):
    singles = tuple(bytes([b]) for b in range(256))
    with pytest.raises(ModelError, match="257 pieces but 256 counts"):
        Vocabulary((*singles, b"ab"), (5,) * 256)  # (zip() would drop the last piece)
    with pytest.raises(ModelError, match="a piece appears twice"):
        save_model(tmp_path / "m.model", Vocabulary((*singles, b"a"), (5,) * 257))
    with pytest.raises(ModelError, match=r"piece b'ab' has count 0"):
        save_model(tmp_path / "m.model", Vocabulary((*singles, b"ab"), (5,) * 256 + (0,)))
    assert list(tmp_path.iterdir()) == []


def test_numpy_counts_save_as_the_same_numbers(tmp_path):
    pieces = {**{bytes([b]): 5 for b in range(256)}, b"ab": 7, b"abc": 2.5}
    save_model(tmp_path / "int.model", pieces)
    as_numpy = {p: (np.float64(c) if isinstance(c, float) else np.int64(c)) for p, c in pieces.items()}
    save_model(tmp_path / "numpy.model", as_numpy)
    assert (tmp_path / "numpy.model").read_bytes() == (tmp_path / "int.model").read_bytes()


def test_a_special_token_is_in_the_models_normal_form():
    """Text is normalised before its special tokens are found: "ﬁ" under NFKC matched
    the "fi" of "find" and decoded back as "ﬁnd". Such a token is refused, naming the
    form it should take; under "none" any token is taken as it is."""
    vocab = load_model(_tiny_model())
    with pytest.raises(ModelError, match=r"special token 'ﬁ' is not in NFKC form.*reads 'fi'"):
        Tokenizer(vocab, normalize="NFKC", special_tokens=["\ufb01"])
    with pytest.raises(ModelError, match=r"not in NFC form"):
        Tokenizer(vocab, normalize="NFC", special_tokens=["e\u0301"])
    tok = Tokenizer(vocab, normalize=False, special_tokens=["\ufb01", "e\u0301"])
    ids = tok.encode("find e\u0301", allowed_special="all")
    assert tok.decode(ids) == "find e\u0301" and ids[-1] == tok.piece_to_id("e\u0301") and len(ids) == 6


def test_save_refuses_to_overwrite_when_asked(tmp_path):
    out = tmp_path / "m.json"
    out.write_text("keep me")
    with pytest.raises(FileExistsError):
        save_model(out, load_model(_tiny_model()), overwrite=False)
    assert out.read_text() == "keep me"


def test_failed_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    out = tmp_path / "m.json"
    out.write_text("previous")
    import bytepiece.model as model_module

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(model_module, "_model_text", explode)  # fails inside the write
    with pytest.raises(RuntimeError):
        save_model(out, load_model(_tiny_model()))
    assert out.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary left behind


def _write(tmp_path, content, name="bad.model"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _b64(piece: bytes) -> str:
    return base64.b64encode(piece).decode()


BAD_MODELS = {
    "not json": (b"{not json", "not JSON"),
    "not utf-8": (b"\xff\xfe{}", "not UTF-8"),
    "a list": (b"[1, 2, 3]", "expected a JSON object"),
    "empty": (b"{}", "empty"),
    "bad base64": (None, "not valid base64"),
    "empty piece": (None, "empty piece"),
    "value not a triple": (None, "must map to [id, text, count]"),
    "id not int": (None, "not an integer"),
    "duplicate id": (None, "used twice"),
    "gap in ids": (None, "contiguous"),
    "ids not from 3": (None, "contiguous"),
    "zero count": (None, "counts must be finite and > 0"),
    "negative count": (None, "counts must be finite and > 0"),
    "string count": (None, "not a number"),
    "missing byte": (None, "all 256 single bytes"),
    "duplicate piece": (None, "same piece"),
    # One key twice: json.loads would keep the last entry and load a wrong count silently.
    "key listed twice, same id": (None, "the key 'YWI=' is listed twice"),
    "key listed twice, next id": (None, "the key 'YWI=' is listed twice"),
    "metadata field twice": (None, "the key 'alpha' is listed twice"),
}


def _bad_model_json(case: str) -> bytes:
    content, _ = BAD_MODELS[case]
    if content is not None:
        return content
    model = _tiny_model()
    ab = _b64(b"ab")
    if case == "bad base64":
        model["%%%"] = [9999, "", 3]
    elif case == "empty piece":
        model[""] = [max(v[0] for v in model.values()) + 1, "", 3]
    elif case == "value not a triple":
        model[ab] = [model[ab][0], 5]
    elif case == "id not int":
        model[ab] = ["7", "ab", 5]
    elif case == "duplicate id":
        model[ab] = [3, "ab", 5]
    elif case == "gap in ids":
        model[ab] = [100000, "ab", 5]
    elif case == "ids not from 3":
        model = {k: [v[0] + 1, v[1], v[2]] for k, v in model.items()}
    elif case == "zero count":
        model[ab][2] = 0
    elif case == "negative count":
        model[ab][2] = -4
    elif case == "string count":
        model[ab][2] = "5"
    elif case == "missing byte":
        del model[_b64(b"\x00")]
        model = {k: [i + 3, v[1], v[2]] for i, (k, v) in enumerate(sorted(model.items(), key=lambda kv: kv[1][0]))}
    elif case == "duplicate piece":
        # "YWJ=" differs from "YWI=" only in padding bits that decoding ignores: both are b"ab".
        model["YWJ="] = [max(v[0] for v in model.values()) + 1, "ab", 3]
    elif case.startswith("key listed twice"):
        again = model[ab][0] if case.endswith("same id") else max(v[0] for v in model.values()) + 1
        return json.dumps(model, indent=4).encode()[:-2] + f',\n    "{ab}": [{again}, "ab", 999999]\n}}'.encode()
    elif case == "metadata field twice":
        return json.dumps(model).encode()[:-1] + b', "__metadata__": {"alpha": 0.1, "alpha": 0.2}}'
    return json.dumps(model).encode()


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_fails_at_load_naming_file_and_problem(case, tmp_path):
    path = _write(tmp_path, _bad_model_json(case))
    expected = BAD_MODELS[case][1]
    with pytest.raises(ModelError) as info:
        Tokenizer(str(path))
    message = str(info.value)
    assert "bad.model" in message
    assert expected in message
    assert isinstance(info.value, ValueError)


def test_bad_dict_model_says_dict():
    model = _tiny_model()
    model[_b64(b"ab")][2] = 0
    with pytest.raises(ModelError, match=r"<dict>.*counts must be"):
        Tokenizer(model)


def test_zip_with_two_members_is_rejected(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.model", json.dumps(_tiny_model()))
        archive.writestr("b.model", json.dumps(_tiny_model()))
    with pytest.raises(ModelError, match="exactly one file"):
        load_model(path)


@pytest.mark.parametrize("keep", [10, 300_000, -10], ids=["header only", "half", "all but the end"])
def test_a_truncated_zip_is_called_truncated(keep, tmp_path):
    """A zip cut short (a partial download) has no end record, so it was read as JSON
    and reported as `not UTF-8 text (byte 10)`."""
    whole = VENDORED_MODEL.read_bytes()
    path = tmp_path / "partial.zip"
    path.write_bytes(whole[:keep])
    with pytest.raises(ModelError, match=r"partial\.zip.*zip archive without its end \(truncated or damaged"):
        load_model(path)


def test_a_gzipped_model_is_called_gzip(tmp_path):
    """A gzip-compressed model was reported as `not UTF-8 text (byte 1)`."""
    import gzip

    path = tmp_path / "m.model.gz"
    path.write_bytes(gzip.compress(json.dumps(_tiny_model()).encode()))
    with pytest.raises(ModelError, match=r"m\.model\.gz.*gzip-compressed"):
        load_model(path)


def test_a_model_whose_alpha_no_call_accepts_fails_at_load(tmp_path):
    """A metadata alpha above MAX_ALPHA loaded, then every encode failed with an error
    that did not name the model."""
    from bytepiece._core.lattice import MAX_ALPHA

    model = _tiny_model()
    for alpha, loads in ((MAX_ALPHA, True), (MAX_ALPHA * 1.001, False), (1e9, False)):
        model["__bytepiece__"] = {"format": 1, "alpha": alpha}
        path = _write(tmp_path, json.dumps(model).encode())
        if loads:
            assert Tokenizer(str(path)).decode(Tokenizer(str(path)).encode("ab")) == "ab"
        else:
            with pytest.raises(ModelError, match=r"bad\.model.*alpha .* is above 10000"):
                Tokenizer(str(path))


def test_saving_into_a_missing_folder_names_the_output(tmp_path):
    """The error named the temporary file (.m.json.PID.XXXX.tmp), not the path given."""
    tok = Tokenizer(_tiny_model())
    target = tmp_path / "no such folder" / "m.json"
    with pytest.raises(FileNotFoundError) as info:
        tok.save(target)
    assert info.value.filename == str(target)
    with pytest.raises(FileNotFoundError) as info:
        save_model(target, {bytes([b]): 1 for b in range(256)})
    assert info.value.filename == str(target)


def test_saving_to_a_zip_name_writes_a_zip_as_0_6_3_publishes_them(tmp_path):
    """save("m.zip") wrote plain JSON under a .zip name (zipfile: BadZipFile)."""
    tok = Tokenizer(VENDORED_MODEL)
    tok.save(tmp_path / "m.zip")
    tok.save(tmp_path / "m.model")
    with zipfile.ZipFile(tmp_path / "m.zip") as archive:
        assert archive.namelist() == ["m.model"]
        assert archive.read("m.model") == (tmp_path / "m.model").read_bytes()
    assert load_model(tmp_path / "m.zip") == load_model(VENDORED_MODEL)
    with pytest.raises(FileExistsError):
        save_model(tmp_path / "m.zip", tok.vocabulary, overwrite=False)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        Tokenizer(str(tmp_path / "nope.model"))


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _json_values, max_size=6))
@example({"YQ==": [3, 'a\n"é', 7], "Yg==": [True, "b", 2], "Yw==": [4, "c", 2.5], "bWV0YQ==": {"k": [1]}})
def test_model_json_layout_is_json_dumps_indent_4(obj):
    """save_model writes the layout of json.dump(indent=4, ensure_ascii=False) (0.6.3's
    bytes) with its own fast writer; any JSON value must come out the same."""
    from bytepiece.model import _dumps_indented

    assert _dumps_indented(obj) == json.dumps(obj, indent=4, ensure_ascii=False)


def test_vocabulary_is_an_immutable_value():
    """Equal (and hashing equal) when every field is; no field can be set or deleted;
    replace() makes a checked copy; pickling keeps it whole."""
    import pickle

    from bytepiece.model import Vocabulary

    pieces = tuple(bytes([b]) for b in range(256)) + (b"ab",)
    a = Vocabulary(pieces, tuple(range(257)))
    b = Vocabulary(pieces, tuple(range(257)), (), "NFC", -1.0)
    assert a == b and hash(a) == hash(b) and len(a) == 257
    c = a.replace(special_tokens=("<s>",))
    assert c != a and c.special_tokens == ("<s>",) and c.pieces is a.pieces
    assert a != (pieces, tuple(range(257))) and a.__eq__(object()) is NotImplemented
    for attempt in (lambda: setattr(a, "alpha", 0.5), lambda: delattr(a, "pieces"), lambda: setattr(a, "new_field", 1)):
        with pytest.raises(AttributeError, match="immutable"):
            attempt()
    assert pickle.loads(pickle.dumps(c)) == c
    assert repr(a).startswith("Vocabulary(pieces=(b'\\x00', ") and "alpha=-1.0)" in repr(a)
    with pytest.raises(ModelError):
        Vocabulary(pieces, tuple(range(257)), normalization="bogus")


def test_model_text_is_the_json_of_the_model_dict():
    """save_model writes a vocabulary in one pass over its pieces (when every count is an
    int): the same text as json.dumps of its dict, whatever the pieces' bytes, with and
    without the metadata entry; float counts take the general writer."""
    from bytepiece.model import Vocabulary, _model_text

    pieces = tuple(
        sorted(
            {bytes([b]) for b in range(256)}
            | {
                b'"quoted"',
                b"back\\slash",
                b"new\nline",
                b"\xe4\xb8\xad\xe6",
                b"\xff\xfe",
                "é中".encode(),
                b"\x00\x1f\x7f",
                b"</script>",
                "\u2028".encode(),
            },
            key=lambda p: (len(p), p),
        )
    )
    counts = tuple(range(1, len(pieces) + 1))
    plain = Vocabulary(pieces, counts)
    for vocab in (
        plain,
        plain.replace(special_tokens=("<s>", "</s>"), alpha=0.25),
        plain.replace(counts=tuple(c + 0.5 for c in counts)),
    ):
        assert _model_text(vocab) == json.dumps(vocab.to_dict(), indent=4, ensure_ascii=False)


# ---------------------------------------------------------------------------
# The fast parse of a well-formed model and the entry-by-entry one agree


def _outcome(parse, data):
    try:
        return parse(data, "<test>")
    except ModelError as error:
        return ("ModelError", str(error))


_EDITS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "key",
                "key-bits",
                "key-newline",
                "key-empty",
                "key-int",
                "id",
                "id-bool",
                "id-float",
                "swap-ids",
                "count",
                "count-float",
                "count-zero",
                "count-huge",
                "count-bool",
                "value-tuple",
                "value-short",
                "meta",
                "drop",
            ]
        ),
        st.integers(0, 10**6),
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(_EDITS)
@example([])
@example([("key-bits", 258)])
@example([("meta", 1)])
def test_the_fast_parse_answers_what_the_checked_parse_answers(edits):
    """_parse (a whole column at a time, falling back entry by entry when a model is off
    the common shape) gives the vocabulary or the error that _parse_checked gives, for
    models edited in the ways real and hostile files differ."""
    from bytepiece.model import METADATA_KEY, _parse, _parse_checked, _parse_fast

    data = _tiny_model()
    for kind, where in edits:
        keys = [k for k in data if k != METADATA_KEY]
        key = keys[where % len(keys)]
        value = data[key]
        if kind.startswith(("id", "swap", "count", "value")) and not (isinstance(value, list) and len(value) == 3):
            continue  # (an earlier edit made it a tuple or a pair)
        if kind == "swap-ids" and not isinstance(data[keys[(where + 1) % len(keys)]], list):
            continue
        if kind == "key":
            data["%" + key[1:]] = data.pop(key)
        elif kind == "key-bits":  # same piece, other padding bits: not canonical
            if key.endswith("==") and key[1] in "AQgw":
                data[key[0] + "BCD"[" AQgw".index(key[1]) % 3] + "=="] = [len(data) + 3, "", 1]
        elif kind == "key-newline":
            data[key + "\n"] = data.pop(key)
        elif kind == "key-empty":
            data[""] = [len(data) + 3, "", 2]
        elif kind == "key-int":
            data[where] = data.pop(key)
        elif kind == "id":
            value[0] = where % (len(data) + 5)
        elif kind == "id-bool":
            value[0] = True
        elif kind == "id-float":
            value[0] = float(value[0])
        elif kind == "swap-ids":
            other = data[keys[(where + 1) % len(keys)]]
            value[0], other[0] = other[0], value[0]
        elif kind == "count":
            value[2] = where - 500_000
        elif kind == "count-float":
            value[2] = where / 7
        elif kind == "count-zero":
            value[2] = 0
        elif kind == "count-huge":
            value[2] = 10**400 if where % 2 else float("inf")
        elif kind == "count-bool":
            value[2] = True
        elif kind == "value-tuple":
            data[key] = tuple(value)
        elif kind == "value-short":
            data[key] = value[:2]
        elif kind == "meta":
            data[METADATA_KEY] = {"special_tokens": ["<x>"], "alpha": where % 3 - 1} if where % 4 else {"format": 9}
        elif kind == "drop":
            del data[key]
    assert _outcome(_parse, data) == _outcome(_parse_checked, data)
    if not edits:
        assert _parse_fast(data, "<test>") is not None  # (a well-formed model takes the fast path)


@pytest.mark.parametrize("path", [VENDORED_MODEL, *COMPAT_MODELS], ids=lambda p: p.name)
def test_published_models_take_the_fast_parse(path):
    from bytepiece.model import _parse_checked, _parse_fast

    data = json.loads(_raw_json(path))
    fast = _parse_fast(data, "<test>")
    assert fast is not None and fast == _parse_checked(data, "<test>")


_INSERTS = [b'"', b"\\", b"\\u00e9", b"\\ud800", b"\xed\xa0\x80", b"\xc3", b"=", b"0", b"-", b".5", b" ", b"\n", b"\t"]


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.binary(min_size=2, max_size=6), st.integers(1, 10**20), max_size=12),
    st.booleans(),
    st.lists(
        st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.integers(0, 10**9), st.integers(0, 255)), max_size=2
    ),
)
@example({b"ab": 5}, False, [])
@example({b"ab": 5}, True, [])
def test_reading_a_file_in_the_layout_answers_what_the_json_parse_answers(extra, meta, edits):
    """A model file in 0.6.3's layout is read from its bytes (_core/model_file.pyx); any
    other file goes to json. For files written by save_model, plain or with metadata,
    then damaged byte by byte, the layout reader answers nothing or what the JSON parse
    answers (the same vocabulary, or the same error)."""
    from bytepiece.model import _model_text, _parse, _parse_layout, _read_json

    pieces = {bytes([b]): 1 + b for b in range(256)}
    pieces.update(extra)
    vocab = vocabulary_from_counts(pieces)
    if meta:
        vocab = vocab.replace(special_tokens=("<|x|>", "é"), alpha=0.5)
    raw = bytearray(_model_text(vocab).encode("utf-8"))
    for kind, at, byte in edits:
        at %= len(raw)
        if kind == "flip":
            raw[at] = byte
        elif kind == "cut":
            del raw[at : at + 1 + byte % 8]
        else:
            raw[at:at] = _INSERTS[byte % len(_INSERTS)]
    raw = bytes(raw)

    def outcome(parse):
        try:
            return parse()
        except ModelError as error:
            return str(error)

    layout = outcome(lambda: _parse_layout(raw, "<test>"))
    through_json = outcome(lambda: _parse(_read_json(raw, "<test>"), "<test>"))
    if not edits and max(pieces.values()) < 10**18:  # (longer counts go to json)
        assert layout == through_json == vocab
    if layout is not None:
        assert layout == through_json


@pytest.mark.parametrize("path", [VENDORED_MODEL, *COMPAT_MODELS], ids=lambda p: p.name)
def test_published_model_files_are_read_in_their_layout(path):
    from bytepiece.model import _parse_layout

    vocab = _parse_layout(_raw_json(path), "<test>")
    assert vocab is not None and vocab == load_model(json.loads(_raw_json(path)))


def _zip_outcome(read):
    try:
        return read()
    except Exception as error:  # (what the loader turns into a ModelError naming it)
        return f"{type(error).__name__}: {error}"


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=300),
    st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]),
    st.sampled_from(["m.json", "mé.model", "dir/", "a\x00b", "x" * 70]),
    st.booleans(),
    st.sampled_from([b"", b"comment", b"PK\x05\x06"]),
    st.sampled_from([b"", b"prefix "]),
    st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255), st.booleans()), max_size=3),
)
@example(b'{"a": 1}', zipfile.ZIP_DEFLATED, "m.json", False, b"", b"", [])
@example(b'{"a": 1}', zipfile.ZIP_STORED, "m.json", False, b"", b"", [])
def test_zips_read_without_zipfile_give_what_zipfile_gives(payload, method, name, second, comment, prefix, edits):
    """The simplest zips (one member, stored or deflated, nothing around them) are read
    without importing zipfile (model_archive._simple_zip_member); every other file goes through
    zipfile as before. For archives of every kind, then damaged byte by byte (anywhere,
    or in the last 120 bytes where the directory is), the loader gives the same member,
    the same plain bytes or the same error as zipfile.is_zipfile and zipfile's read; a
    file that zipfile finds no archive in but that begins as one is called damaged."""
    import io

    from bytepiece.model_archive import _simple_zip_member, _unzipped, _zip_member

    buffer = io.BytesIO()
    buffer.write(prefix)
    with zipfile.ZipFile(buffer, "a" if prefix else "w", compression=method) as archive:
        archive.writestr(name, payload)
        if second:
            archive.writestr("second.json", b"{}")
        archive.comment = comment
    raw = bytearray(buffer.getvalue())
    for at, byte, near_end in edits:
        raw[(len(raw) - 1 - at % min(120, len(raw))) if near_end else at % len(raw)] = byte
    raw = bytes(raw)

    def through_zipfile():
        if zipfile.is_zipfile(io.BytesIO(raw)):
            return _zip_member(io.BytesIO(raw), "<test>")
        return raw

    expected = _zip_outcome(through_zipfile)
    got = _zip_outcome(lambda: _unzipped(raw, "<test>"))
    if expected is raw and raw.startswith(b"PK\x03\x04"):  # no archive to zipfile, but begun as one
        assert got.startswith("ModelError: model '<test>': a zip archive without its end"), got
    else:
        assert got == expected
    simple = _simple_zip_member(raw)
    if simple is not None:
        assert simple == expected
    if not (edits or prefix or comment or second) and method in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
        assert simple == payload or name in ("dir/", "a\x00b")  # (the simplest zips take the short path)
