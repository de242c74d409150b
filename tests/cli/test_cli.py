"""The command line, in process (click's CliRunner): every command and its error paths.

The real console script, pipes and signals are in test_cli_process.py.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata

import pytest
from cli_helpers import fails as check_fails
from cli_helpers import invoke, ok
from click.testing import CliRunner
from conftest import REPO, VENDORED_MODEL
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece import Tokenizer, __version__
from bytepiece.cli import common as cli_common
from bytepiece.cli import main
from bytepiece.model import parse_piece, readable_piece
from bytepiece.reference import chi_square, chi_square_sf, enumerate_segmentations

TEXT = (
    "Hello world, this is a test.\r\n"
    "Second line: café, naïve, 東京, emoji 🙂 and tabs\tinside\n"
    "\n"
    "\n"
    "back\\slash and ▁ the marker itself\n"
    "last line without a newline"
).encode()


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def model(model_path):
    return str(model_path)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "input.txt"
    path.write_bytes(TEXT)
    return str(path)


def run(runner, *args, input=None):
    return invoke(*args, input=input, runner=runner)


def fails(result, code=1, *needles):
    return check_fails(result, code, *needles, quiet_stdout=True)


def lines_of(data: bytes):
    """Lines as the CLI reads them: each ends at a newline (a lone CR does not end one)."""
    parts = data.split(b"\n")
    return [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


# ---------------------------------------------------------------------------
# help and version


@pytest.mark.parametrize("command", ["train", "encode", "decode", "sample", "info", "encode-shards"])
def test_every_command_has_help_with_an_example(runner, command):
    result = ok(run(runner, command, "--help"))
    assert "Example" in result.output
    assert f"bytepiece {command}" in result.output
    assert "-h, --help" in result.output


def test_group_help_lists_commands_and_version(runner):
    result = ok(run(runner, "--help"))
    for command in ("train", "encode", "decode", "sample", "info"):
        assert command in result.output
    assert __version__ in ok(run(runner, "--version")).output


def test_unknown_command_and_option_are_usage_errors(runner, model):
    assert run(runner, "frobnicate").exit_code == 2
    assert run(runner, "encode", "-m", model, "--no-such-option").exit_code == 2
    assert run(runner, "encode").exit_code == 2  # -m is required


def test_a_mistyped_command_gets_the_nearest_names(runner):
    """Commands load on first use; a name that is none of them still gets click's suggestions."""
    import click

    if not hasattr(click.exceptions, "NoSuchCommand"):
        pytest.skip("this click makes no suggestions")
    result = run(runner, "encod")
    assert result.exit_code == 2 and "'decode'" in result.stderr and "'encode'" in result.stderr


def test_importing_the_cli_loads_no_command_until_it_runs():
    import subprocess
    import sys

    code = (
        "import sys, bytepiece.cli; "
        "loaded = [m for m in sys.modules if m.startswith('bytepiece.cli.') and m != 'bytepiece.cli.common']; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


# ---------------------------------------------------------------------------
# encode / decode


def test_encode_ids_are_the_tokenizers_line_by_line(runner, model, text_file, tok):
    out = ok(run(runner, "encode", "-m", model, text_file)).stdout_bytes
    got = [list(map(int, line.split())) for line in out.decode().splitlines()]
    assert got == [tok.encode(line.decode("utf-8")) for line in lines_of(TEXT)]


def test_encode_decode_round_trip_byte_for_byte(runner, model, text_file):
    ids = ok(run(runner, "encode", "-m", model, text_file)).stdout_bytes
    assert ids.count(b"\n") == len(lines_of(TEXT))  # one output line per input line
    back = ok(run(runner, "decode", "-m", model, input=ids)).stdout_bytes
    assert back == TEXT  # CRLF, blank lines, no final newline


@pytest.mark.parametrize("fmt", ["pieces", "jsonl"])
def test_other_formats_decode_back_too(runner, model, text_file, fmt):
    out = ok(run(runner, "encode", "-m", model, "--format", fmt, text_file)).stdout_bytes
    back = ok(run(runner, "decode", "-m", model, "--format", fmt, input=out)).stdout_bytes
    assert back == TEXT


def test_stdin_and_dash_read_the_same(runner, model, text_file):
    from_file = ok(run(runner, "encode", "-m", model, text_file)).stdout_bytes
    assert ok(run(runner, "encode", "-m", model, input=TEXT)).stdout_bytes == from_file
    assert ok(run(runner, "encode", "-m", model, "-", input=TEXT)).stdout_bytes == from_file


def test_several_inputs_are_read_in_order_with_running_line_numbers(runner, model, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"one\ntwo")  # no final newline: still a line of its own
    b.write_bytes(b"three\n")
    out = ok(run(runner, "encode", "-m", model, "-f", "jsonl", a, b)).stdout_bytes
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3]
    ids = ok(run(runner, "encode", "-m", model, a, b)).stdout_bytes
    assert ok(run(runner, "decode", "-m", model, input=ids)).stdout_bytes == b"one\ntwothree\n"


def test_nfc_by_default_and_exact_bytes_with_no_normalize(runner, model):
    nfd = unicodedata.normalize("NFD", "café\nnaïve\n").encode()
    nfc = unicodedata.normalize("NFC", "café\nnaïve\n").encode()
    assert nfd != nfc
    ids = ok(run(runner, "encode", "-m", model, input=nfd)).stdout_bytes
    assert ok(run(runner, "decode", "-m", model, input=ids)).stdout_bytes == nfc
    raw = ok(run(runner, "encode", "-m", model, "--no-normalize", input=nfd)).stdout_bytes
    assert ok(run(runner, "decode", "-m", model, input=raw)).stdout_bytes == nfd


def test_bytes_that_are_not_utf8_round_trip(runner, model):
    data = b"ok \xff\xfe bad \xe6\x9d line\n\xc3\n"
    for flags in ([], ["--no-normalize"]):
        ids = ok(run(runner, "encode", "-m", model, *flags, input=data)).stdout_bytes
        assert ok(run(runner, "decode", "-m", model, input=ids)).stdout_bytes == data
        pieces = ok(run(runner, "encode", "-m", model, "-f", "pieces", *flags, input=data)).stdout
        assert "\\xff" in pieces
        assert ok(run(runner, "decode", "-m", model, "-f", "pieces", input=pieces)).stdout_bytes == data


def test_pieces_format_is_readable(runner, model, tok):
    out = ok(run(runner, "encode", "-m", model, "-f", "pieces", input="Hello world\r\n")).stdout
    assert out == "Hello ▁world \\r\\n\n"
    out = ok(run(runner, "encode", "-m", model, "-f", "pieces", "--bos", "--eos", input="a\\b\tc")).stdout
    assert out.split(" ")[0] == "<bos>" and out.rstrip("\n").split(" ")[-1] == "<eos>"
    assert "\\\\" in out and "\\t" in out


def test_jsonl_has_ids_pieces_and_byte_offsets(runner, model, text_file, tok):
    out = ok(run(runner, "encode", "-m", model, "-f", "jsonl", "--eos", text_file)).stdout_bytes
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == len(lines_of(TEXT))
    for record, line in zip(records, lines_of(TEXT)):
        assert set(record) - {"bytes"} == {"line", "ids", "pieces", "offsets", "char_offsets"}
        text = line.decode("utf-8")
        expected = tok.encode_with_offsets(text, add_eos=True)
        assert record["ids"] == expected.ids
        assert [tuple(span) for span in record["char_offsets"]] == list(expected.char_offsets)
        assert record["ids"][-1] == 2 and record["pieces"][-1] == "<eos>"
        assert len(record["ids"]) == len(record["pieces"]) == len(record["offsets"])
        for i, (start, end) in zip(record["ids"], record["offsets"]):
            assert line[start:end] == tok.decode_bytes([i])
        assert record["offsets"][-1] == [len(line), len(line)]  # <eos> has no bytes
    # Lines where pieces split a character (emoji, 東京): neighbours share that character.
    split = [r for r in records if any(a[1] > b[0] for a, b in zip(r["char_offsets"], r["char_offsets"][1:]))]
    assert len(split) >= 2


def test_jsonl_pieces_are_json_text_and_bytes_that_are_not_utf8_are_base64(runner, model, tok):
    """A JSON reader gets each piece's text (a newline, not backslash-n); a piece that is
    not valid UTF-8 on its own is null there, with its bytes in base64 under "bytes"."""
    import base64

    data = "Tab\there, back\\slash, ▁, 🙂 and 東京\r\n".encode() + b"raw \xff\xfe \xe6\x9d end\n" + b"plain\n"
    out = ok(run(runner, "encode", "-m", model, "-f", "jsonl", "--bos", "--eos", input=data)).stdout_bytes
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3
    for record, line in zip(records, lines_of(data)):
        ids, pieces = record["ids"], record["pieces"]
        raw = record.get("bytes", [None] * len(ids))
        assert len(pieces) == len(raw) == len(ids)
        assert pieces[0] == "<bos>" and pieces[-1] == "<eos>"
        got = []
        for i, text, b64 in zip(ids[1:-1], pieces[1:-1], raw[1:-1]):
            assert (text is None) != (b64 is None)
            piece = text.encode("utf-8") if text is not None else base64.b64decode(b64)
            assert piece == tok.id_bytes[i]
            got.append(piece)
        assert b"".join(got) == line
    first, second, third = records
    shown = "".join(p for p in first["pieces"][1:-1] if p is not None)
    assert "\t" in shown and "\r\n" in shown and "\\slash" in shown
    assert "\\t" not in shown and "\\r" not in shown and "\\u2581" not in shown  # no escapes of ours
    assert None in first["pieces"]  # the emoji's pieces split it
    assert any(b64 and b"\xff" in base64.b64decode(b64) for b64 in second["bytes"])
    assert "bytes" not in third  # only lines with such pieces carry the field
    back = ok(run(runner, "decode", "-m", model, "-f", "jsonl", input=out)).stdout_bytes
    assert back == data


def test_bos_eos(runner, model, tok):
    out = ok(run(runner, "encode", "-m", model, "--bos", "--eos", input="hi\nthere")).stdout
    rows = [list(map(int, line.split())) for line in out.splitlines()]
    assert rows == [[1] + tok.encode("hi\n") + [2], [1] + tok.encode("there") + [2]]
    assert ok(run(runner, "decode", "-m", model, input=out)).stdout == "hi\nthere"


def test_sampling_is_keyed_by_line_number(runner, model, text_file, model_path):
    args = ("encode", "-m", model, "--alpha", "0.1", "--seed", "7", text_file)
    first = ok(run(runner, *args)).stdout
    assert ok(run(runner, *args)).stdout == first  # reproducible
    assert ok(run(runner, *args, "--threads", "2")).stdout == first  # thread-independent
    assert ok(run(runner, *args, "--threads", "1")).stdout == first
    tok = Tokenizer(model_path, seed=7)
    expected = [tok.encode(line.decode(), alpha=0.1, key=k) for k, line in enumerate(lines_of(TEXT), 1)]
    assert [list(map(int, line.split())) for line in first.splitlines()] == expected
    other = ok(run(runner, "encode", "-m", model, "--alpha", "0.1", "--seed", "8", text_file)).stdout
    assert other != first
    back = ok(run(runner, "decode", "-m", model, input=first)).stdout_bytes
    assert back == TEXT


def test_output_does_not_depend_on_batch_size(runner, model, monkeypatch):
    data = "".join(f"line {i}: some words to split, number {i * 37}\n" for i in range(50)).encode()
    args = ("encode", "-m", model, "--alpha", "0.2", "--seed", "3", "-f", "jsonl")
    whole = ok(run(runner, *args, input=data)).stdout
    monkeypatch.setattr(cli_common, "BATCH_LINES", 7)
    assert ok(run(runner, *args, input=data)).stdout == whole


def test_output_file_is_written_and_never_clobbered(runner, model, text_file, tmp_path):
    target = tmp_path / "out.ids"
    result = ok(run(runner, "encode", "-m", model, "-o", target, text_file))
    assert result.stdout == ""
    written = target.read_bytes()
    assert written.count(b"\n") == len(lines_of(TEXT))
    target.write_bytes(b"keep me")
    fails(run(runner, "encode", "-m", model, "-o", target, text_file), 1, str(target), "--force")
    assert target.read_bytes() == b"keep me"
    ok(run(runner, "encode", "-m", model, "-o", target, "--force", text_file))
    assert target.read_bytes() == written
    decoded = tmp_path / "out.txt"
    ok(run(runner, "decode", "-m", model, "-o", decoded, target))
    assert decoded.read_bytes() == TEXT
    fails(run(runner, "decode", "-m", model, "-o", decoded, target), 1, str(decoded))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.txt", "out.ids", "out.txt"]


def test_failed_encode_leaves_no_output_file(runner, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    target = tmp_path / "out.ids"
    fails(run(runner, "encode", "-m", bad, "-o", target, input="x"), 1, str(bad))
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.json"]


def test_progress_goes_to_stderr_only_when_asked(runner, model, text_file):
    plain = ok(run(runner, "encode", "-m", model, text_file))
    assert plain.stderr == ""  # CliRunner's stderr is not a terminal
    shown = ok(run(runner, "encode", "-m", model, "--progress", text_file))
    assert shown.stdout == plain.stdout
    assert "encode" in shown.stderr and "MB" in shown.stderr


# ---------------------------------------------------------------------------
# errors


def test_missing_model_or_input_is_a_usage_error(runner, model, tmp_path):
    result = run(runner, "encode", "-m", tmp_path / "nope.model")
    assert result.exit_code == 2 and "nope.model" in result.stderr
    result = run(runner, "encode", "-m", model, tmp_path / "nope.txt")
    assert result.exit_code == 2 and "nope.txt" in result.stderr


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"AA==": [3, "", 1]}', b"\xff\xfe"])
def test_bad_model_is_one_line_naming_the_file(runner, tmp_path, content):
    bad = tmp_path / "broken.model"
    bad.write_bytes(content)
    for command in (["encode"], ["decode"], ["info"], ["sample", "x"]):
        fails(run(runner, *command, "-m", bad, input=""), 1, "broken.model")


def test_debug_shows_the_traceback(runner, tmp_path):
    bad = tmp_path / "broken.model"
    bad.write_bytes(b"{not json")
    result = run(runner, "--debug", "info", "-m", bad)
    assert result.exit_code == 1
    from bytepiece import ModelError

    assert isinstance(result.exception, ModelError)  # not turned into a one-line error


def test_decode_errors_name_the_file_and_line(runner, model, tmp_path):
    ids = tmp_path / "x.ids"
    ids.write_text("11962 15659\n12 abc 13\n")
    fails(run(runner, "decode", "-m", model, ids), 1, "x.ids line 2", "'abc'")
    ids.write_text("11962\n\n99999999\n")
    fails(run(runner, "decode", "-m", model, ids), 1, "x.ids line 3", "99999999")
    fails(run(runner, "decode", "-m", model, input="-1\n"), 1, "<stdin> line 1", "-1")
    fails(run(runner, "decode", "-m", model, "-f", "jsonl", input='{"ids": [1]}\n{"ids": "x"}\n'), 1, "<stdin> line 2")
    fails(run(runner, "decode", "-m", model, "-f", "jsonl", input="[1, 2\n"), 1, "<stdin> line 1")
    fails(run(runner, "decode", "-m", model, "-f", "pieces", input="Hello \\q\n"), 1, "<stdin> line 1", "\\q")


def test_bad_alpha_and_threads_are_usage_errors(runner, model):
    for args in (["--alpha", "nan"], ["--alpha", "inf"], ["--alpha", "x"], ["--threads", "0"]):
        assert run(runner, "encode", "-m", model, *args, input="x").exit_code == 2
    assert run(runner, "sample", "-m", model, "x", "--alpha", "-1").exit_code == 2
    assert run(runner, "sample", "-m", model, "x", "-n", "0").exit_code == 2


def test_unreadable_input_is_a_runtime_error(runner, model, tmp_path, monkeypatch):
    path = tmp_path / "secret.txt"
    path.write_text("x")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: refuse it the way the OS would
        real_open = open

        def refusing_open(name, *args, **kwargs):
            if os.fspath(name) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(name, *args, **kwargs)

        monkeypatch.setattr(cli_common, "open", refusing_open, raising=False)
    fails(run(runner, "encode", "-m", model, path), 1, "secret.txt", "Permission denied")


# ---------------------------------------------------------------------------
# readable pieces


@given(st.binary(max_size=40))
@settings(max_examples=300, deadline=None)
def test_readable_pieces_parse_back_exactly(piece):
    shown = readable_piece(piece)
    assert parse_piece(shown) == piece
    assert " " not in shown and "\n" not in shown and "\r" not in shown
    assert parse_piece(readable_piece(piece, spaces=False), spaces=False) == piece


def test_readable_piece_escapes():
    assert readable_piece(b" the") == "\u2581the"
    assert readable_piece("\u2581".encode()) == "\\u2581"
    assert readable_piece(b"a\\b") == "a\\\\b"
    assert readable_piece(b"\xe6\x9d") == "\\xe6\\x9d"  # half a character
    assert readable_piece("東".encode()) == "東"
    assert readable_piece(b"\n\n") == "\\n\\n"
    assert readable_piece(b"\x00\x7f") == "\\x00\\x7f"
    assert readable_piece(b"<bos>") == "\\x3cbos>"  # never looks like a special id
    assert readable_piece(b" x", spaces=False) == " x"


# ---------------------------------------------------------------------------
# sample


def parse_samples(stdout):
    rows = [line.split("\t") for line in stdout.splitlines() if not line.startswith("#")]
    return [(float(p), mark, pieces) for p, mark, pieces in rows]


def test_sample_shows_exact_probabilities_and_marks_the_best(runner, model, tok):
    text = "Hello world"
    result = ok(run(runner, "sample", "-m", model, text, "-n", "30", "--alpha", "0.1", "--seed", "1"))
    rows = parse_samples(result.stdout)
    assert len(rows) == 30
    logz = tok.log_partition(text.encode(), 0.1)
    best = tok.encode(text)
    for p, mark, pieces in rows:
        ids = [tok.piece_to_id(parse_piece(s)) for s in pieces.split(" ")]
        assert tok.decode(ids) == text
        score = sum(tok._logprobs[i - 3] for i in ids)
        assert math.isclose(p, math.exp(0.1 * score - logz), rel_tol=1e-5)
        assert (mark == "*") == (ids == best)
    assert any(mark == "*" for _, mark, _ in rows)
    assert ok(run(runner, "sample", "-m", model, text, "-n", "30", "--seed", "1")).stdout == result.stdout


def test_sample_check_compares_with_exact_frequencies(runner, model):
    result = ok(run(runner, "sample", "-m", model, "tokenizer", "-n", "2", "--seed", "5", "--check", "20000"))
    out = result.stdout
    assert "# check: 20000 draws" in out
    summary = [line for line in out.splitlines() if line.startswith("# chi-square=")]
    assert len(summary) == 1
    p_value = float(summary[0].split("p-value=")[1].split(",")[0])
    assert p_value > 1e-4
    header = next(line for line in out.splitlines() if line.startswith("# check:"))
    enum_z = float(header.split("log Z by enumeration=")[1].split(" ")[0])
    lattice_z = float(header.split("(lattice ")[1].rstrip(")"))
    assert math.isclose(enum_z, lattice_z, rel_tol=1e-6)


def test_sample_check_prints_only_the_check_unless_samples_are_asked_for(runner, model):
    args = ("sample", "-m", model, "token", "--seed", "3", "--check", "2000")
    alone = ok(run(runner, *args)).stdout.splitlines()
    assert alone[0].startswith("# check: 2000 draws")
    rows = [line.split("\t") for line in alone if not line.startswith("#")]
    assert rows and all(len(row) == 4 for row in rows)  # exact, empirical, count, pieces: no samples
    with_samples = ok(run(runner, *args, "-n", "3")).stdout.splitlines()
    samples = [line for line in with_samples if not line.startswith("#") and len(line.split("\t")) == 3]
    assert len(samples) == 3
    assert with_samples[-len(alone) :] == alone  # the same check after them
    assert len(ok(run(runner, *args, "-n", "10")).stdout.splitlines()) == len(alone) + 11  # -n 10 given: shown


def test_sample_check_refuses_texts_too_long_to_enumerate(runner, model):
    text = "a rather long sentence that has far too many segmentations to list"
    fails(run(runner, "sample", "-m", model, text, "--check", "10"), 1, "--check", "segmentations")


def test_sample_empty_text_is_an_error(runner, model):
    fails(run(runner, "sample", "-m", model, ""), 1, "empty")


def test_enumeration_matches_the_lattice(tok):
    pieces = {p: i for i, p in enumerate(tok.id_bytes) if i >= 3}
    for text, alpha in [(b"tokenizer", 0.1), (b"ab\ncd", 0.5), (b"a\n\nb c", 0.0)]:
        segs = enumerate_segmentations(text, pieces, 36)
        assert len(set(segs)) == len(segs)
        for seg in segs:
            assert tok.decode_bytes(seg) == text
        weights = [math.exp(alpha * sum(tok._logprobs[i - 3] for i in seg)) for seg in segs]
        logz = tok.log_partition(text, alpha)
        assert math.isclose(math.log(math.fsum(weights)), logz, rel_tol=1e-9, abs_tol=1e-9)
    # no piece crosses the start of a chunk (the end of a run of newlines)
    for seg in enumerate_segmentations(b"a\nb", pieces, 36):
        assert all(b"\nb" not in tok.decode_bytes([i]) for i in seg)
    with pytest.raises(ValueError, match="segmentations"):
        enumerate_segmentations(b"x" * 60, pieces, 36, limit=1000)


def test_chi_square_p_values():
    for x in (0.1, 1.0, 3.0, 10.0, 50.0):  # two degrees of freedom: exp(-x/2)
        assert math.isclose(chi_square_sf(x, 2), math.exp(-x / 2), rel_tol=1e-12)
    assert math.isclose(chi_square_sf(3.841458820694124, 1), 0.05, rel_tol=1e-9)
    assert chi_square_sf(0.0, 5) == 1.0
    statistic, dof, pooled = chi_square([(50.0, 55), (30.0, 25), (2.0, 3), (1.0, 0)])
    assert dof == 2 and pooled == 2
    assert math.isclose(statistic, 25 / 50 + 25 / 30 + 0 / 3)


def test_chi_square_p_values_agree_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 3, 7, 30, 95, 400):
        for x in (0.01, 0.5, 2.0, 9.0, 40.0, 100.0, 500.0):
            expected = stats.chi2.sf(x, dof)
            if expected > 1e-250:
                assert math.isclose(chi_square_sf(x, dof), expected, rel_tol=1e-9)


# ---------------------------------------------------------------------------
# info


def test_info_report(runner, model, tok):
    out = ok(run(runner, "info", "-m", model)).stdout
    assert f"vocabulary size:     {tok.vocab_size}" in out
    assert "<pad>=0, <bos>=1, <eos>=2" in out
    assert "piece lengths" in out and "longest piece:       36 bytes" in out
    assert "normalization:       NFC (applied before encoding)" in out and "default alpha:       -1 (Viterbi)" in out


def test_info_json_and_bytes_per_token(runner, model, text_file, tok):
    report = json.loads(ok(run(runner, "info", "-m", model, "--json", "--text", text_file)).stdout)
    assert report["vocabulary size"] == tok.vocab_size
    assert report["special ids"] == {"<pad>": 0, "<bos>": 1, "<eos>": 2}
    assert sum(report["piece lengths (bytes: pieces)"].values()) == tok.vocab_size - 3
    assert report["piece lengths (bytes: pieces)"]["1"] == 256
    (measured,) = report["texts"]
    tokens = sum(len(tok.encode(line.decode())) for line in lines_of(TEXT))
    assert measured["tokens"] == tokens and measured["bytes"] == len(TEXT)
    assert math.isclose(measured["bytes per token"], len(TEXT) / tokens, rel_tol=1e-3)
    text = ok(run(runner, "info", "-m", model, "--text", text_file)).stdout
    assert "bytes/token" in text


# ---------------------------------------------------------------------------
# train (needs bytepiece.trainer)

CORPUS = "".join(
    f"The quick brown fox {i} jumps over the lazy dog. Pack my box with five dozen liquor jugs.\n"
    f"东京 and 北京 are cities number {i % 7}; café society meets at {i % 13} o'clock.\n"
    for i in range(300)
)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def test_train_writes_a_model_and_a_summary(runner, corpus, tmp_path):
    target = tmp_path / "small.model"
    result = ok(run(runner, "train", "-o", target, "--vocab-size", "400", "--eval", corpus, corpus))
    assert target.exists()
    assert "vocabulary size 400" in result.stdout and "bytes/token" in result.stdout
    assert "peak memory" in result.stdout
    tok = Tokenizer(target)
    assert tok.vocab_size == 400
    assert tok.decode(tok.encode(CORPUS)) == CORPUS
    info = json.loads(ok(run(runner, "info", "-m", target, "--json")).stdout)
    assert info["vocabulary size"] == 400


def test_train_several_sizes_in_one_run(runner, corpus, tmp_path):
    target = tmp_path / "m"
    result = ok(run(runner, "train", "-o", target, "--vocab-size", "300", "--vocab-size", "450", corpus))
    assert Tokenizer(f"{target}.450").vocab_size == 450
    assert Tokenizer(f"{target}.300").vocab_size == 300
    assert not target.exists()
    assert "m.450: vocabulary size 450" in result.stdout


def test_train_refuses_to_overwrite_before_training(runner, corpus, tmp_path):
    target = tmp_path / "m"
    (tmp_path / "m.300").write_text("old")
    fails(
        run(runner, "train", "-o", target, "--vocab-size", "300", "--vocab-size", "450", corpus), 1, "m.300", "--force"
    )
    assert (tmp_path / "m.300").read_text() == "old" and not (tmp_path / "m.450").exists()
    ok(run(runner, "train", "-o", target, "--vocab-size", "300", "--vocab-size", "450", "--force", corpus))
    assert Tokenizer(tmp_path / "m.300").vocab_size == 300


def test_train_options_reach_the_trainer(runner, corpus, tmp_path):
    target = tmp_path / "digits.model"
    ok(
        run(
            runner,
            "train",
            "-o",
            target,
            "--vocab-size",
            "350",
            "--isolate-digits",
            "--order",
            "4",
            "--max-piece-length",
            "8",
            "--min-count",
            "3",
            "--workers",
            "2",
            corpus,
        )
    )
    pieces = Tokenizer(target).vocabulary.pieces
    assert max(map(len, pieces)) <= 8
    assert not any(len(p) > 1 and any(48 <= b <= 57 for b in p) for p in pieces)


def test_train_workers_default_to_the_usable_cores(runner, corpus, tmp_path, monkeypatch):
    from bytepiece import Trainer

    seen = []
    real_train_files = Trainer.train_files

    def spy(self, paths, workers=1, **kwargs):
        seen.append(workers)
        return real_train_files(self, paths, workers=workers, **kwargs)

    monkeypatch.setattr(Trainer, "train_files", spy)
    cores = {"n": 3}
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores["n"])), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cores["n"])
    ok(run(runner, "train", "-o", tmp_path / "three.model", "--vocab-size", "300", corpus))
    cores["n"] = 64  # a big machine: capped
    ok(run(runner, "train", "-o", tmp_path / "many.model", "--vocab-size", "300", corpus))
    ok(run(runner, "train", "-o", tmp_path / "one.model", "--vocab-size", "300", "--workers", "1", corpus))
    assert seen == [3, cli_common.MAX_DEFAULT_WORKERS, 1]
    # the trainer's promise, which the help repeats: the same model bytes for any number
    assert (tmp_path / "three.model").read_bytes() == (tmp_path / "one.model").read_bytes()
    assert (tmp_path / "many.model").read_bytes() == (tmp_path / "one.model").read_bytes()
    help_text = " ".join(ok(run(runner, "train", "--help")).stdout.split())
    assert "byte for byte the same whatever their number" in help_text
    assert f"the usable cores, at most {cli_common.MAX_DEFAULT_WORKERS}" in help_text


def test_train_from_stdin_and_folders(runner, corpus, tmp_path):
    a = ok(run(runner, "train", "-o", tmp_path / "a.model", "--vocab-size", "300", "-", input=CORPUS))
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "part.txt").write_text(CORPUS, encoding="utf-8")
    ok(run(runner, "train", "-o", tmp_path / "b.model", "--vocab-size", "300", folder))
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
    assert "a.model" in a.stdout


def test_train_without_paths_uses_the_bundled_corpus(runner, corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fails(run(runner, "train", "--vocab-size", "300"), 1, "corpora", "*.train.txt")
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "xx.train.txt").write_text(CORPUS, encoding="utf-8")
    (tmp_path / "corpora" / "xx.heldout.txt").write_text("not used", encoding="utf-8")
    result = ok(run(runner, "train", "--vocab-size", "300"))
    assert Tokenizer(tmp_path / "bytepiece.model").vocab_size == 300
    assert "bytepiece.model" in result.stdout
    fails(run(runner, "train", "--vocab-size", "300"), 1, "bytepiece.model", "--force")


def test_a_second_run_of_the_main_job_refuses_at_once_and_says_how_to_rerun(runner, tmp_path, monkeypatch):
    from bytepiece import Trainer

    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "xx.train.txt").write_text(CORPUS, encoding="utf-8")
    (tmp_path / "bytepiece.model").write_text("an earlier run's model")

    def must_not_train(self, *args, **kwargs):
        raise AssertionError("trained before checking the output")

    monkeypatch.setattr(Trainer, "train_files", must_not_train)
    result = fails(run(runner, "train"), 1, "bytepiece.model", "nothing was trained")
    assert "bytepiece train --force" in result.stderr and "bytepiece train -o other.model" in result.stderr
    assert (tmp_path / "bytepiece.model").read_text() == "an earlier run's model"
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    ok(run(runner, "train", "-o", "other.model", "--vocab-size", "300"))  # the two ways it names
    ok(run(runner, "train", "--force", "--vocab-size", "300"))
    assert Tokenizer(tmp_path / "bytepiece.model").vocab_size == 300


def test_every_command_with_an_output_checks_it_before_working(runner, model, text_file, tmp_path, monkeypatch):
    import bytepiece.distributed
    from bytepiece import Trainer
    from bytepiece.cli import encode as cli_encode

    def no_work(*args, **kwargs):
        raise AssertionError("worked before checking the output")

    monkeypatch.setattr(cli_encode, "load_tokenizer", no_work)
    monkeypatch.setattr(Trainer, "train_files", no_work)
    monkeypatch.setattr(bytepiece.distributed, "encode_files", no_work)
    existing = tmp_path / "existing"
    existing.write_text("keep")
    for command in (["encode", "-m", model], ["decode", "-m", model], ["train", "--vocab-size", "300"]):
        fails(run(runner, *command, "-o", existing, text_file), 1, str(existing), "--force")
    for command in (["encode-shards", "-m", model], ["encode", "-m", model, "--dask-local", "1"]):
        fails(run(runner, *command, "-o", existing, text_file), 1, str(existing), "not a folder")
    missing = tmp_path / "no" / "such" / "folder" / "out"
    for command in (["encode", "-m", model], ["decode", "-m", model], ["train", "--vocab-size", "300"]):
        fails(run(runner, *command, "-o", missing, text_file), 1, str(missing), "does not exist")
    under_a_file = existing / "shards"
    fails(run(runner, "encode-shards", "-m", model, "-o", under_a_file, text_file), 1, "is not a folder")
    assert existing.read_text() == "keep"


def test_train_errors(runner, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe broken\n")
    fails(run(runner, "train", "-o", tmp_path / "x", "--vocab-size", "300", bad), 1, "bad.txt", "--errors")
    assert not (tmp_path / "x").exists()
    ok(run(runner, "train", "-o", tmp_path / "x", "--vocab-size", "300", "--errors", "replace", bad))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    fails(run(runner, "train", "-o", tmp_path / "y", "--vocab-size", "300", empty), 1, "empty")
    assert run(runner, "train", "-o", tmp_path / "y", "--vocab-size", "100", empty).exit_code == 2
    assert run(runner, "train", "-o", tmp_path / "y", tmp_path / "missing.txt").exit_code == 2


def test_train_balance_reaches_the_trainer(runner, tmp_path):
    from bytepiece import Trainer

    text = "".join(f"The quick brown fox {i} jumps over the lazy dog.\n" for i in range(200))
    text += "".join(f"东京和北京是两座城市，第{'一二三四五六七八九'[i % 9]}天我们见面。\n" for i in range(40))
    corpus = tmp_path / "mixed.txt"
    corpus.write_text(text, encoding="utf-8")
    files = {}
    cases = {
        "plain": (["--script-floor", "0"], {"em_script_floor": 0}),
        "floor": (["--script-floor", "0.4"], {"em_script_floor": 0.4}),
        "tempered": (["--script-floor", "0", "--balance", "0.3"], {"em_script_floor": 0, "em_balance": 0.3}),
        "tagged": (["--em-seed", "tagged"], {"em_seed": "tagged"}),
    }
    for name, (args, options) in cases.items():
        target = tmp_path / f"{name}.model"
        ok(run(runner, "train", "-o", target, "--vocab-size", "400", *args, corpus))
        direct = Trainer(max_vocab_size=400, verbose=False, **options)
        direct.train_files([corpus])
        direct.save(tmp_path / "direct.model")
        assert target.read_bytes() == (tmp_path / "direct.model").read_bytes(), name
        files[name] = target.read_bytes()
    assert len(set(files.values())) == 4
    for option, bad in [
        ("--em-seed", "bytes"),
        ("--balance", "0"),
        ("--balance", "1.5"),
        ("--balance", "x"),
        ("--script-floor", "-0.1"),
        ("--script-floor", "0.6"),
        ("--script-floor", "x"),
    ]:
        assert run(runner, "train", "-o", tmp_path / "z", option, bad, corpus).exit_code == 2


def test_train_memory_budgets_reach_the_trainer_and_the_summary(runner, corpus, tmp_path, monkeypatch):
    from bytepiece import Trainer

    roomy = ok(run(runner, "train", "-o", tmp_path / "roomy.model", "--vocab-size", "300", corpus))
    assert "n-gram memory budget" not in roomy.stdout
    seen = {}
    real_train_files = Trainer.train_files

    def spy(self, *args, **kwargs):
        seen.update(ngram_memory=self.ngram_memory, em_sample_bytes=self.em_sample_bytes)
        return real_train_files(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_files", spy)
    tight = ok(
        run(
            runner,
            "train",
            "-o",
            tmp_path / "tight.model",
            "--vocab-size",
            "300",
            "--ngram-memory",
            "0.05",
            "--em-sample",
            "0.01",
            corpus,
        )
    )
    assert seen == {"ngram_memory": 50_000, "em_sample_bytes": 10_000}
    assert "n-gram memory budget (0.05 MB) hit" in tight.stdout and "approximate" in tight.stdout
    assert Tokenizer(tmp_path / "tight.model").vocab_size == 300
    for bad in (["--ngram-memory", "-1"], ["--em-sample", "0"], ["--ngram-memory", "x"]):
        assert run(runner, "train", "-o", tmp_path / "z", *bad, corpus).exit_code == 2


def test_train_out_of_memory_names_the_budgets_to_lower(runner, corpus, tmp_path, monkeypatch):
    from bytepiece import Trainer

    def exhausted(self, *args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Trainer, "train_files", exhausted)
    target = tmp_path / "oom.model"
    fails(
        run(runner, "train", "-o", target, "--vocab-size", "300", "--ngram-memory", "700", corpus),
        1,
        "out of memory",
        "n-gram budget 700 MB",
        "--ngram-memory",
        "--em-sample",
    )
    assert not target.exists()
    result = run(runner, "--debug", "train", "-o", target, "--vocab-size", "300", corpus)
    assert result.exit_code == 1 and isinstance(result.exception, MemoryError)


def test_train_no_em_and_bad_output_folder(runner, corpus, tmp_path):
    target = tmp_path / "legacy.model"
    ok(run(runner, "train", "-o", target, "--vocab-size", "300", "--no-em", corpus))
    assert Tokenizer(target).vocab_size <= 300
    missing = tmp_path / "no" / "such" / "m.model"
    fails(run(runner, "train", "-o", missing, "--vocab-size", "300", corpus), 1, str(missing), "does not exist")


def test_output_folder_must_exist(runner, model, tmp_path):
    missing = tmp_path / "nowhere" / "out.ids"
    fails(run(runner, "encode", "-m", model, "-o", missing, input="x"), 1, str(missing), "does not exist")
    fails(run(runner, "decode", "-m", model, "-o", missing, input="3"), 1, str(missing))


LINE_TEXT = st.lists(
    st.tuples(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
        st.sampled_from(["\n", "\r\n", "\n\n", ""]),
    ),
    max_size=6,
).map(lambda parts: "".join(a + b for a, b in parts))


@pytest.mark.slow
@given(LINE_TEXT)
@settings(max_examples=25, deadline=None)
def test_round_trip_of_any_text(text):
    model_arg = str(VENDORED_MODEL)
    runner = CliRunner()
    for flags, expected in (([], unicodedata.normalize("NFC", text)), (["--no-normalize"], text)):
        ids = ok(run(runner, "encode", "-m", model_arg, *flags, input=text.encode())).stdout_bytes
        lines = text.count("\n") + (not text.endswith("\n") and text != "")
        assert ids.count(b"\n") == lines
        assert ok(run(runner, "decode", "-m", model_arg, input=ids)).stdout_bytes == expected.encode()


def test_interrupted_encode_leaves_no_output(runner, model, text_file, tmp_path, monkeypatch):
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    real = Tokenizer.encode_batch
    monkeypatch.setattr(Tokenizer, "encode_batch", interrupted)
    monkeypatch.setattr(cli_common, "BATCH_LINES", 1)
    target = tmp_path / "out.ids"
    result = run(runner, "encode", "-m", model, "-o", target, "--threads", "1", text_file)
    assert result.exit_code == 130 and "Error: interrupted" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.txt"]


def test_empty_inputs(runner, model, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert ok(run(runner, "encode", "-m", model, empty)).stdout_bytes == b""
    assert ok(run(runner, "decode", "-m", model, input=b"")).stdout_bytes == b""
    assert "empty" in ok(run(runner, "info", "-m", model, "--text", empty)).stdout


@pytest.mark.slow
def test_encode_follows_the_models_normalization_and_default_alpha(runner, model_path, tmp_path):
    nfd = "cafe\u0301 re\u0301sume\u0301\n".encode()
    raw_model = tmp_path / "raw.json"
    Tokenizer(model_path, normalize=False).save(raw_model)
    ids = ok(run(runner, "encode", "-m", raw_model, input=nfd)).stdout_bytes
    assert ok(run(runner, "decode", "-m", raw_model, input=ids)).stdout_bytes == nfd
    nfc_ids = ok(run(runner, "encode", "-m", model_path, input=nfd)).stdout_bytes
    assert (
        ok(run(runner, "decode", "-m", model_path, input=nfc_ids)).stdout_bytes
        == unicodedata.normalize("NFC", nfd.decode()).encode()
    )

    sampling_model = tmp_path / "sampling.json"
    Tokenizer(model_path, alpha=0.3).save(sampling_model)
    text = ("the quick brown fox jumps over the lazy dog\n" * 20).encode()
    viterbi = ok(run(runner, "encode", "-m", model_path, input=text)).stdout_bytes
    first = ok(run(runner, "encode", "-m", sampling_model, "--seed", "4", input=text)).stdout_bytes
    again = ok(run(runner, "encode", "-m", sampling_model, "--seed", "4", input=text)).stdout_bytes
    assert first == again != viterbi
    assert ok(run(runner, "encode", "-m", sampling_model, "--alpha", "-1", input=text)).stdout_bytes == viterbi


def test_train_help_states_the_trainers_balance_defaults():
    import inspect

    from bytepiece.trainer import EM_MAX_PIECE_LENGTH, MAX_PIECE_LENGTH, Trainer

    params = inspect.signature(Trainer).parameters
    result = CliRunner().invoke(main, ["train", "--help"])
    text = " ".join(result.output.split())
    assert f"(default: the Trainer's, {params['em_script_floor'].default};" in text
    assert f"(default: the Trainer's, {params['em_balance'].default} = off)" in text
    assert f"(default: the Trainer's, {params['em_seed'].default})" in text
    assert f"(default: the Trainer's, {EM_MAX_PIECE_LENGTH}; {MAX_PIECE_LENGTH} with --no-em" in text


# ---------------------------------------------------------------------------
# info: pieces that split a character


# What each handmade piece is: (starts inside a character, ends inside one, well-formed).
UTF8_SHAPES = {
    b"ab": (False, False, True),
    "中".encode(): (False, False, True),
    "中文!".encode(): (False, False, True),
    b"\xe4\xb8": (False, True, True),  # the first two bytes of 中
    b"a\xe4": (False, True, True),
    b"\xf0\x9f\x99": (False, True, True),  # the first three of 🙂
    b"\xb8\xad": (True, False, True),  # the last two of 中
    b"\xad\xe6": (True, True, True),  # the end of 中, the start of 文
    b"\x80\x80\x80": (True, False, True),  # continuation bytes only: a start inside
    b"\xff\xfe": (False, False, False),
    b"\xc0\x80": (False, False, False),  # an overlong NUL
    b"\xe0\x80": (False, False, False),  # the start of an overlong form
    b"\xed\xa0\x80": (False, False, False),  # a surrogate
    b"\xf4\x90": (False, False, False),  # the start of a code point above U+10FFFF
    b"\x80\x80\x80\x80": (True, False, False),  # four continuation bytes in a row
    b"\xe4a": (False, False, False),  # a lead byte without its continuation bytes
    b"a\x80": (False, False, False),  # a continuation byte where a character starts
}


def test_utf8_shape_of_handmade_pieces():
    from bytepiece.cli.info import utf8_shape

    for piece, shape in UTF8_SHAPES.items():
        assert utf8_shape(piece) == shape, piece


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12), st.data())
def test_utf8_shape_of_every_slice_of_valid_text(text, data):
    """Any slice of valid UTF-8 is well-formed; it starts inside a character exactly when
    its first byte is a continuation byte, and ends inside one exactly when the byte after
    it is (except for slices of continuation bytes only, which only start inside)."""
    from bytepiece.cli.info import utf8_shape

    raw = text.encode("utf-8")
    a = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(a + 1, len(raw)))
    piece = raw[a:b]
    starts, ends, well_formed = utf8_shape(piece)
    continuation = [0x80 <= x < 0xC0 for x in raw] + [False]
    assert well_formed
    assert starts == continuation[a]
    assert ends == (continuation[b] and not all(continuation[a:b]))
    if not starts and not ends:
        piece.decode("utf-8")  # whole characters


def test_info_counts_pieces_that_split_a_character_apart_from_bytes_that_are_not_utf8(runner, tmp_path):
    """A default model has pieces that end inside a character (ensure_unicode forbids only
    starting inside one); info says which, instead of calling them all "not valid UTF-8"."""
    from bytepiece import save_model

    counts = {bytes([b]): 1 for b in range(256)}
    counts.update(dict.fromkeys(UTF8_SHAPES, 5))
    path = tmp_path / "handmade.model"
    save_model(path, counts)
    report = json.loads(ok(run(runner, "info", "-m", path, "--json")).stdout)
    assert report["multi-byte pieces that split a character"] == 6
    assert report["multi-byte pieces that start inside a character"] == 3
    assert report["multi-byte pieces that end inside a character"] == 4
    assert report["multi-byte pieces that are not UTF-8 at all"] == 8
    assert not any("not valid UTF-8" in key for key in report)
    text = ok(run(runner, "info", "-m", path)).stdout
    assert "split a character:   6 multi-byte pieces (start inside one: 3, end inside one: 4)" in text
    assert "not UTF-8 at all:    8 multi-byte pieces" in text


def test_no_ensure_unicode_help_says_what_the_default_forbids(runner, corpus, tmp_path):
    help_text = " ".join(ok(run(runner, "train", "--help")).stdout.split())
    assert "start inside a UTF-8 character (by default none does" in help_text
    assert "may end inside one" in help_text
    target = tmp_path / "default.model"
    ok(run(runner, "train", "-o", target, "--vocab-size", "400", corpus))
    report = json.loads(ok(run(runner, "info", "-m", target, "--json")).stdout)
    assert report["multi-byte pieces that start inside a character"] == 0
    assert report["multi-byte pieces that are not UTF-8 at all"] == 0


# ---------------------------------------------------------------------------
# --quiet


def test_quiet_silences_progress_and_summaries_but_not_errors(runner, model, text_file, corpus, tmp_path):
    plain = ok(run(runner, "encode", "-m", model, text_file))
    shown = ok(run(runner, "encode", "-m", model, "--progress", text_file))
    assert "encode: done in" in shown.stderr
    quiet = ok(run(runner, "encode", "-m", model, "-q", text_file))
    assert quiet.stderr == "" and quiet.stdout_bytes == plain.stdout_bytes  # the data is not touched
    assert run(runner, "encode", "-m", model, "--quiet", "--progress", text_file).exit_code == 2
    back = ok(run(runner, "decode", "-m", model, "--quiet", input=plain.stdout_bytes))
    assert back.stderr == "" and back.stdout_bytes == TEXT
    assert run(runner, "decode", "-m", model, "-q", "--progress", input="3").exit_code == 2
    fails(run(runner, "decode", "-m", model, "-q", input="3 x\n"), 1, "'x' is not an id")  # errors still print

    trained = ok(run(runner, "train", "-o", tmp_path / "q.model", "--vocab-size", "300", "-q", corpus))
    assert trained.stdout == "" and trained.stderr == "" and (tmp_path / "q.model").exists()
    evaluated = ok(
        run(runner, "train", "-o", tmp_path / "e.model", "--vocab-size", "300", "-q", "--eval", corpus, corpus)
    )
    assert evaluated.stdout.startswith(f"{tmp_path / 'e.model'}: vocabulary size 300, ")
    assert len(evaluated.stdout.splitlines()) == 1 and "bytes/token" in evaluated.stdout
    assert run(runner, "train", "-o", tmp_path / "p.model", "-q", "--progress", corpus).exit_code == 2

    shards = ok(run(runner, "encode-shards", "-m", model, "-o", tmp_path / "shards", "--quiet", text_file))
    assert shards.stdout == "" and shards.stderr == "" and (tmp_path / "shards" / "index.json").exists()
    loud = ok(run(runner, "encode-shards", "-m", model, "-o", tmp_path / "shards2", text_file))
    assert "shard(s)" in loud.stdout


@pytest.mark.parametrize(
    ("option", "recorded"),
    [([], "none"), (["--normalize", "nfc"], "NFC"), (["--no-em"], "NFC"), (["--normalize", "NFKC"], "NFKC")],
)
def test_train_records_the_normalization_it_trained_with(runner, tmp_path, option, recorded):
    """By default a trained model keeps text as it is (decoding gives back what was
    encoded, the Kelvin sign and decomposed accents too); --normalize picks a form, and
    --no-em (0.6.3's mode) keeps 0.6.3's NFC. The model records it and info says it."""
    from bytepiece import Tokenizer

    text = "".join(f"Caf\u0065\u0301 at 300 \u212a, line {i} of the corpus.\n" for i in range(300))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text, encoding="utf-8")
    target = tmp_path / "out.model"
    ok(run(runner, "train", "-o", str(target), "--vocab-size", "300", *option, str(corpus)))
    tok = Tokenizer(str(target))
    assert tok.normalization == recorded
    sample = "Caf\u0065\u0301 \u212a"
    assert (tok.decode(tok.encode(sample)) == sample) is (recorded == "none")
    assert tok.decode(tok.encode(sample)) == (sample if recorded == "none" else unicodedata.normalize(recorded, sample))
    out = ok(run(runner, "info", "-m", str(target))).stdout
    assert f"normalization:       {recorded} (" in out
