"""The command line against hostile inputs and outputs: pieces named like special ids,
long lines, stdin copies, closed streams, full disks, out-of-range options.

In process (click's CliRunner) where that is faithful; as a real process where the
streams themselves are the subject.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from cli_helpers import fails, invoke, ok
from conftest import REPO, VENDORED_MODEL

from bytepiece import Tokenizer
from bytepiece.model import save_model

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
ENV.pop("BYTEPIECE_DEBUG", None)
MODEL = str(VENDORED_MODEL)


def run(*args, input=None):
    return invoke(*args, input=input)


def process(*args, input=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "bytepiece", *map(str, args)],
        input=input,
        stdout=stdout,
        stderr=stderr,
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


def test_jsonl_decode_of_deeply_nested_json_names_the_line(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"ids": [5]}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    fails(run("decode", "-m", MODEL, "-f", "jsonl", path), 1, "deep.jsonl line 2", "nested too deeply")


def test_json_lines_decode_back():
    ids = json.dumps({"ids": [11962, 15659]}) + "\n"
    assert ok(run("decode", "-m", MODEL, "-f", "jsonl", input=ids)).stdout_bytes == Tokenizer(MODEL).decode_bytes(
        [11962, 15659]
    )


# ---------------------------------------------------------------------------
# long lines


LINES = (
    "Hello world, this is a test.\r\n"
    "Second line: café, naïve, 東京, emoji 🙂 and tabs\tinside\n"
    "\n"
    "back\\slash and ▁ the marker itself\n"
    "last line without a newline"
).encode()


@pytest.mark.parametrize("block", [1, 2, 7, 64, 1 << 18])
@pytest.mark.parametrize("fmt", ["ids", "pieces"])
def test_decode_in_blocks_of_any_size_gives_the_same_bytes_and_lines(monkeypatch, block, fmt):
    from bytepiece.cli import encode as encode_module

    coded = ok(run("encode", "-m", MODEL, "-f", fmt, input=LINES)).stdout_bytes
    monkeypatch.setattr(encode_module, "DECODE_BLOCK", block)
    assert ok(run("decode", "-m", MODEL, "-f", fmt, input=coded)).stdout_bytes == LINES
    one_line = coded.replace(b"\n", b" ") if fmt == "ids" else coded.replace(b"\n", b" ")
    assert ok(run("decode", "-m", MODEL, "-f", fmt, input=one_line)).stdout_bytes == LINES
    bad = coded.split(b"\n")
    bad[3] = bad[3] + (b" 12x" if fmt == "ids" else b" \\q")
    fails(run("decode", "-m", MODEL, "-f", fmt, input=b"\n".join(bad)), 1, "<stdin> line 4")
    bad = coded.split(b"\n")
    bad[2] = b"99999999" if fmt == "ids" else b"\xff"
    fails(run("decode", "-m", MODEL, "-f", fmt, input=b"\n".join(bad)), 1, "<stdin> line 3")


def test_a_line_longer_than_max_line_is_an_error_naming_it(tmp_path):
    path = tmp_path / "long.txt"
    path.write_bytes(b"short line\n" + b"x" * 1_500_000 + b"\nshort again\n")
    fails(run("encode", "-m", MODEL, "--max-line", "1", path), 1, "long.txt line 2", "--max-line")
    assert ok(run("encode", "-m", MODEL, "--max-line", "2", path)).stdout.count("\n") == 3
    assert ok(run("encode", "-m", MODEL, "--max-line", "0", path)).stdout.count("\n") == 3
    jsonl = tmp_path / "long.jsonl"
    jsonl.write_text('{"ids": [5]}\n' + '{"ids": [' + ", ".join(["5"] * 600_000) + "]}\n")
    fails(run("decode", "-m", MODEL, "-f", "jsonl", "--max-line", "1", jsonl), 1, "long.jsonl line 2")
    assert ok(run("decode", "-m", MODEL, "-f", "jsonl", jsonl)).stdout_bytes == Tokenizer(MODEL).id_bytes[5] * 600_001
    for bad in ("-1", "nan", "inf", "x", "1e400"):
        fails(run("encode", "-m", MODEL, "--max-line", bad, path), 2)


def test_an_endless_line_stops_at_the_limit():
    done = process("encode", "-m", MODEL, "--max-line", "4", "/dev/zero")
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr.decode().strip() == (
        "Error: /dev/zero line 1: longer than 4 MB; raise --max-line (0: no limit) if such a line is meant"
    )


@pytest.mark.slow
def test_decoding_one_long_line_streams():
    """One line of ids used to be read and split whole: about 100 bytes per id."""
    script = (
        "import sys\n"
        "from bytepiece.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        # (VmHWM: ru_maxrss would also count the forked parent's pages before exec)
        "sys.stderr.write([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
    )
    peaks = []
    for count in (100_000, 3_000_000):
        line = b" ".join([b"11962", b"15659", b"35"] * (count // 3)) + b"\n"
        for fmt, data in (("ids", line), ("pieces", None)):
            if data is None:
                data = ok(run("encode", "-m", MODEL, "-f", "pieces", input=LINES)).stdout_bytes.replace(b"\n", b" ")
                data = data * (count // 20)
            done = subprocess.run(
                [sys.executable, "-c", script, "decode", "-m", MODEL, "-f", fmt],
                input=data,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=ENV,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-2000:]
            peaks.append(int(done.stderr.split()[-1]))
    assert peaks[2] - peaks[0] < 40_000 and peaks[3] - peaks[1] < 40_000, peaks  # KiB


# ---------------------------------------------------------------------------
# train - (its copy of stdin)

CORPUS = (REPO / "corpora" / "en.heldout.txt").read_bytes()


class InterruptedInput(io.RawIOBase):
    """stdin that gives some text, then Ctrl-C."""

    def __init__(self):
        self.sent = False

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.sent:
            raise KeyboardInterrupt
        self.sent = True
        data = CORPUS[: len(buffer)]
        buffer[: len(data)] = data
        return len(data)


@pytest.fixture
def spool_dir(tmp_path, monkeypatch):
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_train_stdin_interrupted_while_copying_leaves_no_copy(tmp_path, spool_dir):
    result = run("train", "-o", tmp_path / "m.model", "--vocab-size", "300", "-", input=InterruptedInput())
    assert result.exit_code == 130, result.output
    assert list(spool_dir.iterdir()) == [] and not (tmp_path / "m.model").exists()


def test_train_stdin_on_a_full_tmpdir_leaves_no_copy_and_says_so(tmp_path):
    """A file-size limit makes the copy fail as a full disk would (EFBIG; Python ignores
    SIGXFSZ); the copy must not stay behind, keeping the disk full."""
    import resource

    folder = tmp_path / "tmp"
    folder.mkdir()

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    done = subprocess.run(
        [sys.executable, "-m", "bytepiece", "train", "-o", tmp_path / "m.model", "--vocab-size", "300", "-"],
        input=CORPUS * 3,
        capture_output=True,
        env={**ENV, "TMPDIR": str(folder)},
        timeout=300,
        preexec_fn=small_files,
    )
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.decode().splitlines()
    assert line.startswith(f"Error: cannot copy stdin to {folder}/bytepiece-stdin-") and "TMPDIR" in line, line
    assert list(folder.iterdir()) == [] and not (tmp_path / "m.model").exists()


def test_train_stdin_closed_is_one_line_and_leaves_no_copy(tmp_path):
    folder = tmp_path / "tmp"
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "bytepiece", "train", "-o", tmp_path / "m.model", "--vocab-size", "300", "-"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={**ENV, "TMPDIR": str(folder)},
        timeout=300,
        preexec_fn=lambda: os.close(0),
    )
    assert done.returncode == 1 and done.stderr.decode().strip() == (
        "Error: stdin is closed: there is no corpus to read from -"
    ), done.stderr
    assert list(folder.iterdir()) == []


def test_a_copy_left_by_a_killed_run_is_removed_by_the_next(tmp_path, spool_dir):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = spool_dir / f"bytepiece-stdin-{int(dead.stdout)}-abc.txt"
    left.write_bytes(b"left behind")
    ok(run("train", "-o", tmp_path / "m.model", "--vocab-size", "300", "-q", "-", input=CORPUS[:20_000]))
    assert list(spool_dir.iterdir()) == []


@pytest.mark.slow
def test_train_stdin_terminated_while_copying_leaves_no_copy(tmp_path):
    """SIGTERM (`timeout`, a scheduler) while `train -` copied stdin left the copy in
    $TMPDIR, as SIGKILL does; now the copy goes, and the run ends by the signal."""
    import signal
    import time

    spool = tmp_path / "tmp"
    spool.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bytepiece", "train", "-o", tmp_path / "m.model", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**ENV, "TMPDIR": str(spool)},
    )
    deadline = time.monotonic() + 60
    while not list(spool.iterdir()):  # (the copy exists once the first block is in)
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        proc.stdin.write(CORPUS[:65536])
        proc.stdin.flush()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, err[-2000:])
    assert list(spool.iterdir()) == [] and not (tmp_path / "m.model").exists()


# ---------------------------------------------------------------------------
# closed and full streams, out-of-range options


def _one_error_line(done, needle):
    err = done.stderr.decode()
    assert done.returncode == 1, (done.returncode, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error: ") and "Traceback" not in err, err
    assert "Exception ignored" not in err and needle in err, err


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_writing_to_a_full_device_is_one_line_naming_stdout(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("hello world\n")
    cases = [
        ["--help"],
        ["--version"],
        ["encode", "--help"],
        ["encode", "-m", MODEL, text],
        ["decode", "-m", MODEL, "-f", "ids"],
        ["sample", "-m", MODEL, "hello"],
        ["info", "-m", MODEL],
    ]
    for args in cases:
        with open("/dev/full", "wb") as full:
            done = process(*args, input=b"11962 15659\n", stdout=full)
        _one_error_line(done, "<stdout>: No space left on device")
    with open("/dev/full", "wb") as full:
        done = process(
            "train", "-o", tmp_path / "m.model", "--vocab-size", "300", REPO / "corpora" / "en.heldout.txt", stdout=full
        )
    _one_error_line(done, "the summary was lost")
    assert (tmp_path / "m.model").exists()


def _closed(fd):
    return lambda: os.close(fd)


@pytest.mark.slow
def test_closed_stdout_and_stdin_are_one_line_each(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("hello world\n")
    for args, what in (
        (["encode", "-m", MODEL, text], "stdout is closed"),
        (["decode", "-m", MODEL, text], "stdout is closed"),
        (["sample", "-m", MODEL, "hello"], "stdout is closed"),
        (["info", "-m", MODEL], "stdout is closed"),
    ):
        done = process(*args, preexec_fn=_closed(1))
        _one_error_line(done, what)
    for args in (["encode", "-m", MODEL], ["decode", "-m", MODEL, "-"], ["info", "-m", MODEL, "--text", "-"]):
        done = subprocess.run(
            [sys.executable, "-m", "bytepiece", *map(str, args)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=ENV,
            timeout=120,
            preexec_fn=_closed(0),
        )
        _one_error_line(done, "stdin is closed")
    # with -o, a closed stdout does not matter; train puts its summary on stderr
    assert process("encode", "-m", MODEL, "-o", tmp_path / "ids", text, preexec_fn=_closed(1)).returncode == 0
    done = process(
        "train",
        "-o",
        tmp_path / "m.model",
        "--vocab-size",
        "300",
        REPO / "corpora" / "en.heldout.txt",
        preexec_fn=_closed(1),
    )
    assert done.returncode == 0 and b"vocabulary size 300" in done.stderr, done.stderr
    assert (tmp_path / "m.model").exists()
    assert process("--help", preexec_fn=_closed(1)).returncode == 0


HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--vocab-size", HUGE],
        ["train", "--min-count", HUGE],
        ["train", "--workers", HUGE],
        ["train", "--order", "9"],
        ["train", "--max-piece-length", HUGE],
        ["train", "--ngram-memory", "inf"],
        ["train", "--ngram-memory", "nan"],
        ["train", "--ngram-memory", "1e300"],
        ["train", "--em-sample", "nan"],
        ["train", "--em-sample", "1e300"],
        ["train", "--script-floor", "nan"],
        ["train", "--balance", "nan"],
        ["train", "--dask-local", HUGE],
        ["encode", "-m", MODEL, "--threads", HUGE],
        ["encode", "-m", MODEL, "--dask-blocksize", HUGE, "--dask-local", "1"],
        ["encode-shards", "-m", MODEL, "-o", "OUT", "--dask-blocksize", "1023", "--dask-local", "1"],
        ["sample", "-m", MODEL, "x", "-n", HUGE],
        ["sample", "-m", MODEL, "x", "--check", HUGE],
        ["sample", "-m", MODEL, "x", "--threads", HUGE],
        ["decode", "-m", MODEL, "--max-line", "nan"],
    ],
)
def test_out_of_range_numbers_are_usage_errors(args, tmp_path):
    args = [tmp_path / "out" if a == "OUT" else a for a in args]
    if args[0] == "train":
        args = [*args, "-o", tmp_path / "m.model", str(REPO / "corpora" / "en.heldout.txt")]
    result = run(*args, input="x\n")
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output and "Error: Invalid value" in result.stderr
    assert not (tmp_path / "m.model").exists() and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# inputs that fail to read, and --eval

# A file whose read fails with EIO and no file name, as a failing disk or network file
# system gives: this process's memory, unmapped at offset 0 (Linux).
UNREADABLE = "/proc/self/mem"
needs_proc_mem = pytest.mark.skipif(not os.path.exists(UNREADABLE), reason="needs Linux's /proc/self/mem")


@needs_proc_mem
@pytest.mark.parametrize(
    "command",
    [
        ["encode", "-m", MODEL],
        ["encode", "-m", MODEL, "-o", "OUT"],
        ["decode", "-m", MODEL, "-o", "OUT"],
        ["decode", "-m", MODEL, "-f", "jsonl"],
        ["info", "-m", MODEL, "--text"],
    ],
    ids=["encode", "encode-o", "decode-o", "decode-jsonl", "info-text"],
)
def test_a_read_error_names_the_input_not_the_output(tmp_path, command):
    """A read error naming no file passed through the output's error handling and came
    out as `Error: <stdout>: Input/output error` (or named the -o file); info said only
    `[Errno 5] Input/output error`."""
    out = tmp_path / "out.txt"
    args = [out if a == "OUT" else a for a in command] + [UNREADABLE]
    fails(run(*args), 1, f"{UNREADABLE}: Input/output error")
    assert not out.exists() and os.listdir(tmp_path) == []


def _train_with_eval(tmp_path, eval_path):
    model = tmp_path / "m.model"
    result = run(
        "train", "-q", "-o", model, "--vocab-size", "300", REPO / "corpora" / "en.heldout.txt", "--eval", eval_path
    )
    return result, model


@needs_proc_mem
def test_an_eval_file_that_fails_to_read_fails_the_run_before_the_model_is_written(tmp_path):
    """--eval was measured after the model was written: a failed run (status 1) left
    a model behind, and the read error named no file."""
    result, model = _train_with_eval(tmp_path, UNREADABLE)
    fails(result, 1, f"{UNREADABLE}: Input/output error")
    assert not model.exists() and os.listdir(tmp_path) == []


@pytest.mark.slow
def test_an_endless_eval_or_info_line_stops_without_naming_a_missing_option(tmp_path):
    """train --eval and info --text stop at a 256 MB line, and told the user to raise
    --max-line, which neither command has."""
    result, model = _train_with_eval(tmp_path, "/dev/zero")
    fails(result, 1, "/dev/zero line 1: longer than 256 MB, the longest line this command reads")
    assert not model.exists()
    info = fails(run("info", "-m", MODEL, "--text", "/dev/zero"), 1, "/dev/zero line 1: longer than 256 MB")
    assert "--max-line" not in info.stderr


def test_an_empty_eval_file_is_said_to_hold_no_text(tmp_path):
    """An empty --eval file was reported as `0.000 bytes/token`."""
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result, model = _train_with_eval(tmp_path, empty)
    ok(result)
    assert f"no text to measure in {empty}" in result.stdout and model.exists()


def test_a_jsonl_record_without_ids_is_named_as_such():
    """A JSON object without an "ids" key gave `Error: <stdin> line 1: 'ids'` (a bare
    KeyError), where other bad records get the format's message."""
    fails(run("decode", "-m", MODEL, "-f", "jsonl", input='{"ids": [5]}\n{"x": 1}\n'), 1, "<stdin> line 2", '"ids"')
    assert "no list of integer ids" in run("decode", "-m", MODEL, "-f", "jsonl", input='{"x": 1}\n').stderr


def test_debug_shows_the_traceback_of_an_os_error(tmp_path):
    """With --debug an OSError from a command (a full disk) was still one line, naming
    stdout even when the output was a file."""
    text = tmp_path / "in.txt"
    text.write_text("hello world\n")
    result = run("--debug", "encode", "-m", MODEL, text, "-o", "/dev/full")
    assert result.exit_code == 1 and isinstance(result.exception, OSError), (result.exception, result.output)
    assert result.exception.errno == 28  # ENOSPC, as raised: not renamed
    fails(run("encode", "-m", MODEL, text, "-o", "/dev/full"), 1, "/dev/full: No space left on device")


@pytest.mark.parametrize("command", [["encode", "-m", MODEL], ["sample", "-m", MODEL, "hi"]])
def test_an_alpha_above_the_limit_is_a_usage_error(command):
    """--alpha 10000.5 was a runtime error (status 1) after the model had loaded."""
    assert run(*command, "--alpha", "10000", input="hi\n").exit_code == 0
    result = run(*command, "--alpha", "10000.5", input="hi\n")
    assert result.exit_code == 2 and "must be at most 10000" in result.stderr, result.output
