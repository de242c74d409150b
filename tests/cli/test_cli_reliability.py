"""The command line against hostile inputs and outputs: pieces named like special ids,
long lines, stdin copies, closed streams, full disks, out-of-range options.

In process (click's CliRunner) where that is faithful; as a real process where the
streams themselves are the subject.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import REPO, VENDORED_MODEL

from bytepiece import Tokenizer
from bytepiece.cli import main
from bytepiece.model import save_model

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
ENV.pop("BYTEPIECE_DEBUG", None)
MODEL = str(VENDORED_MODEL)


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=True)


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def fails(result, code=1, *needles):
    assert result.exit_code == code, (result.exit_code, result.output)
    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        assert "Traceback" not in result.output and "(run `bytepiece --debug" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    return result


def process(*args, input=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "bytepiece", *map(str, args)],
        input=input,
        capture_output=True,
        env=ENV,
        timeout=300,
        **kwargs,
    )


# ---------------------------------------------------------------------------
# decode --format pieces and pieces named like special ids


@pytest.fixture(scope="module")
def special_named_model(tmp_path_factory):
    """A model whose vocabulary holds the literal texts <pad>, <bos> and <eos>."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"<pad>": 50, b"<bos>": 40, b"<eos>": 30, b"hello": 20, b" world": 20})
    path = tmp_path_factory.mktemp("specials") / "specials.model"
    save_model(path, counts)
    return str(path)


def test_decode_pieces_keeps_pieces_named_like_special_ids(special_named_model):
    text = b"hello <pad> world <eos>\n<bos><pad>\n"
    tok = Tokenizer(special_named_model)
    assert any(tok.id_bytes[i] == b"<pad>" for i in tok.encode(b"<pad>"))
    for extra in ([], ["--bos", "--eos"]):
        shown = ok(run("encode", "-m", special_named_model, "-f", "pieces", *extra, input=text)).stdout_bytes
        assert b"\\x3cpad>" in shown and (b"<bos> " in shown) == bool(extra)
        back = ok(run("decode", "-m", special_named_model, "-f", "pieces", input=shown)).stdout_bytes
        assert back == text
        for fmt in ("ids", "jsonl"):
            coded = ok(run("encode", "-m", special_named_model, "-f", fmt, *extra, input=text)).stdout_bytes
            assert ok(run("decode", "-m", special_named_model, "-f", fmt, input=coded)).stdout_bytes == text
    # the names themselves are the special ids, which decode to nothing
    assert ok(run("decode", "-m", special_named_model, "-f", "pieces", input="<pad> hello <eos>\n")).stdout == "hello"
    fails(run("decode", "-m", special_named_model, "-f", "pieces", input="hello \\x3cunk>\n"), 1, "<stdin> line 1")


def test_json_lines_decode_back():
    ids = json.dumps({"ids": [11962, 15659]}) + "\n"
    assert ok(run("decode", "-m", MODEL, "-f", "jsonl", input=ids)).stdout_bytes == Tokenizer(MODEL).decode_bytes(
        [11962, 15659]
    )
