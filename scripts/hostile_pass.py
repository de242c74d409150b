#!/usr/bin/env python3
"""A hostile-input pass over the installed CLI and API; prints what it tried and found.

    python scripts/hostile_pass.py                 # everything (several minutes)
    python scripts/hostile_pass.py --part api      # only the API pass
    python scripts/hostile_pass.py --jobs 2        # CLI runs in parallel

CLI: every command (encode in three formats and sampled, decode in three formats,
sample, info, train, encode-shards) against odd inputs (empty, NUL bytes, invalid
UTF-8, encoded surrogates, a BOM, a 3 MB line, 100,000 lines, random bytes, /dev/null,
a FIFO, stdin, a missing path, a directory, /dev/zero, ids and pieces and JSON that are
wrong in every way), and against odd output targets (stdout to a full device or closed,
a new, existing or forced file, a character device, a FIFO, a symlink, a dangling
symlink, a directory, a socket, a missing folder, /dev/stdout). Each run is a process
of its own under a 3 GB address-space limit and a time limit. A run passes when it
exits 0, 1 (one line, ``Error: ...``, no traceback, no "run --debug" fallback) or 2
(a usage error), leaves devices, FIFOs, sockets and symlinks as they were, leaves an
existing file untouched unless forced, leaves no temporary file or stdin copy, and,
when it succeeds on an exact input, its output decodes back to that input.

API: every numeric argument of the Tokenizer, its queries and the Trainer with values
of every numeric type (Python int, bool, float, huge ints, nan, inf, numpy's integers,
floats and bool, Fraction, Decimal, complex, str, bytes, None, arrays). A call passes
when it returns or raises TypeError or ValueError (or a subclass), and when equal values
of different types (5 and numpy.int64(5), 0.5 and numpy.float32(0.5)) give the same
result. Calls run in a child process, so a crash is seen and named.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import math
import os
import pathlib
import random
import resource
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
MODEL = REPO / "tests" / "data" / "bytepiece.plus.40k.zip"
CORPUS = REPO / "corpora" / "en.heldout.txt"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
ENV.pop("BYTEPIECE_DEBUG", None)
MEMORY_LIMIT = 3 << 30
TIME_LIMIT = 120

# ---------------------------------------------------------------------------
# CLI inputs: name -> bytes, or a special kind made per run


def text_inputs() -> dict:
    rng = random.Random(7)
    return {
        "empty": b"",
        "newlines only": b"\n\n\n",
        "crlf, no final newline": b"Hello world\r\nsecond line\r\nlast",
        "nul bytes": b"a\x00b\x00\n\x00\x00\n",
        "invalid utf-8": b"caf\xe9 \xff\xfe \xc0\x80 \xed\xa0\x80 ok\n",
        "bom": b"\xef\xbb\xbfHello\n",
        "one 3 MB line": b"word " * 600_000 + b"\n",
        "100,000 lines": b"short line\n" * 100_000,
        "random bytes": bytes(rng.randrange(256) for _ in range(65_536)),
        "emoji": ("\U0001f9ff\U0001f600 " * 500 + "\n").encode(),
        "special names": b"<pad> <bos> <eos> <|endoftext|> \\x3cpad>\n",
        "only spaces": b" " * 1_000_000,
        "combining marks": ("e\u0301" * 1000 + "\u1100\u1161\u11a8\n").encode(),
    }


SPECIAL_INPUTS = ("/dev/null", "fifo", "stdin", "missing", "directory", "/dev/zero", "symlink")

# decode inputs, per format
DECODE_INPUTS = {
    "ids": {
        "negative": b"-1\n",
        "huge": b"100000000000000000000000000000\n",
        "float": b"1.5\n",
        "hex": b"0x10\n",
        "underscores": b"1_1962\n",
        "tabs and crlf": b"11962\t15659\r\n\r\n",
        "words": b"hello\n",
        "nul": b"\x00\n",
        "invalid utf-8": b"\xff\xfe\n",
        "one long line": b" ".join([b"11962", b"15659"] * 200_000) + b"\n",
        "many blank lines": b"\n" * 50_000,
    },
    "pieces": {
        "bad escape": b"Hello \\q\n",
        "short hex escape": b"\\x4\n",
        "surrogate escape": b"\\ud800\n",
        "unknown piece": b"\\x3cunk>\n",
        "special names": b"<pad> <bos> <eos> Hello\n",
        "invalid utf-8": b"\xff\n",
        "trailing backslash": b"abc\\\n",
        "one long line": b"Hello \xe2\x96\x81world " * 100_000 + b"\n",
    },
    "jsonl": {
        "null": b"null\n",
        "list": b"[1, 2]\n",
        "ids null": b'{"ids": null}\n',
        "float ids": b'{"ids": [1.0]}\n',
        "bool ids": b'{"ids": [true]}\n',
        "huge float": b'{"ids": [1e400]}\n',
        "nan": b'{"ids": [NaN]}\n',
        "huge int": b'{"ids": [' + b"9" * 5000 + b"]}\n",
        "deep": b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "invalid utf-8": b'{"ids": [1], "x": "\xff"}\n',
        "truncated": b'{"ids": [1, 2\n',
        "negative": b'{"ids": [-5]}\n',
    },
}

TARGETS = (
    "stdout",
    "stdout full",
    "stdout closed",
    "new file",
    "existing file",
    "existing file, --force",
    "char device, --force",
    "fifo",
    "symlink to a file, --force",
    "dangling symlink",
    "directory, --force",
    "socket, --force",
    "missing folder",
    "/dev/stdout",
)


class Case:
    def __init__(self, name: str, argv: list, input_kind: str, data, target: str, exact: bool = False, fmt=None):
        self.name, self.argv, self.input_kind, self.data, self.target = name, argv, input_kind, data, target
        self.exact, self.fmt = exact, fmt


def cli_cases(quick: bool) -> list:
    inputs = text_inputs()
    cases = []
    encoders = {
        "encode ids": ["encode", "--no-normalize"],
        "encode pieces": ["encode", "--no-normalize", "-f", "pieces"],
        "encode jsonl": ["encode", "--no-normalize", "-f", "jsonl"],
        "encode sampled": ["encode", "--alpha", "0.1", "--seed", "1", "--no-normalize"],
    }
    kinds = list(inputs) + list(SPECIAL_INPUTS)
    # every command x every input, to stdout
    for name, argv in encoders.items():
        fmt = {"encode pieces": "pieces", "encode jsonl": "jsonl"}.get(name, "ids")
        for kind in kinds:
            cases.append(Case(name, argv, kind, inputs.get(kind), "stdout", exact=True, fmt=fmt))
    for kind in kinds:
        cases.append(Case("info --text", ["info", "--text"], kind, inputs.get(kind), "stdout"))
        cases.append(Case("train", ["train", "-q", "--vocab-size", "300"], kind, inputs.get(kind), "new file"))
        cases.append(Case("encode-shards", ["encode-shards", "-q"], kind, inputs.get(kind), "new folder"))
    for kind, data in inputs.items():
        if len(data) < 100_000 and b"\x00" not in data:  # (an argument cannot hold NUL)
            cases.append(Case(f"sample [{kind}]", ["sample", "-n", "3"], "argument", data, "stdout"))
            cases.append(Case(f"sample --check [{kind}]", ["sample", "--check", "200"], "argument", data, "stdout"))
    for fmt, bad in DECODE_INPUTS.items():
        for kind, data in bad.items():
            cases.append(Case(f"decode {fmt}", ["decode", "-f", fmt], kind, data, "stdout"))
    for kind in SPECIAL_INPUTS:
        cases.append(Case("decode ids", ["decode"], kind, None, "stdout"))
    # every command with an output x every target, on a plain and an empty input
    for target in TARGETS:
        for kind in ("crlf, no final newline", "empty"):
            data = inputs[kind]
            for name, argv in encoders.items():
                cases.append(Case(name, argv, kind, data, target))
            cases.append(Case("decode ids", ["decode"], "ids", b"11962 15659\n", target))
            cases.append(
                Case("decode pieces", ["decode", "-f", "pieces"], "pieces", b"Hello \xe2\x96\x81world\n", target)
            )
            cases.append(Case("decode jsonl", ["decode", "-f", "jsonl"], "jsonl", b'{"ids": [11962, 15659]}\n', target))
            cases.append(Case("train", ["train", "-q", "--vocab-size", "300"], kind, data, target))
            if target.startswith("stdout"):
                cases.append(Case("sample", ["sample", "-n", "2"], "argument", b"hello world", target))
                cases.append(Case("info", ["info"], "none", None, target))
    for target in ("stdout full", "stdout closed"):
        for argv in (["--help"], ["--version"], ["encode", "--help"], ["train", "--help"]):
            cases.append(Case(" ".join(argv), argv, "none", None, target))
    for target in (
        "new folder",
        "empty folder",
        "non-empty folder",
        "non-empty folder, --force",
        "a file",
        "missing parent",
    ):
        cases.append(
            Case(
                "encode-shards",
                ["encode-shards", "-q"],
                "crlf, no final newline",
                inputs["crlf, no final newline"],
                target,
            )
        )
    if quick:
        cases = cases[::7]
    return cases


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _closing(fd):
    def pre():
        _limits()
        os.close(fd)

    return pre


def run_cli_case(case: Case) -> tuple[str, str]:
    """('pass' | 'finding', detail)."""
    try:
        return _run_cli_case(case)
    except Exception as error:
        return "finding", f"harness error: {type(error).__name__}: {error}"


def _run_cli_case(case: Case) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="bp-hostile-") as tmp:
        tmp = pathlib.Path(tmp)
        spool = tmp / "spool"
        spool.mkdir()
        env = {**ENV, "TMPDIR": str(spool)}
        argv = [str(a) for a in case.argv]
        stdin = subprocess.DEVNULL
        feed = None
        threads = []
        # the input
        paths: list[str] = []
        if case.input_kind == "argument":
            argv.append(case.data.decode("utf-8", "surrogateescape"))
        elif case.input_kind == "none":
            pass
        elif case.input_kind == "/dev/null" or case.input_kind == "/dev/zero":
            paths = [case.input_kind]
            if case.input_kind == "/dev/zero" and argv[0] in ("encode", "decode", "info"):
                argv += ["--max-line", "8"] if argv[0] != "info" else []
            if case.input_kind == "/dev/zero" and argv[0] in ("info", "train", "encode-shards"):
                return "pass", "skipped: endless input for a command that reads to the end"
        elif case.input_kind == "stdin":
            paths = ["-"] if argv[0] != "encode-shards" else ["/dev/stdin"]
            feed = b"Hello from stdin\n"
            stdin = subprocess.PIPE
        elif case.input_kind == "missing":
            paths = [str(tmp / "missing.txt")]
        elif case.input_kind == "directory":
            (tmp / "dir").mkdir()
            paths = [str(tmp / "dir")]
        elif case.input_kind == "fifo":
            fifo = tmp / "in.fifo"
            os.mkfifo(fifo)
            paths = [str(fifo)]

            def writer():
                with contextlib.suppress(OSError), open(fifo, "wb") as handle:
                    handle.write(b"Hello through a FIFO\n")

            threads.append(threading.Thread(target=writer, daemon=True))
        elif case.input_kind == "symlink":
            (tmp / "real.txt").write_bytes(b"Hello through a link\n")
            (tmp / "link.txt").symlink_to(tmp / "real.txt")
            paths = [str(tmp / "link.txt")]
        else:
            (tmp / "input").write_bytes(case.data)
            paths = [str(tmp / "input")]
        # the command and its output
        out_path = None
        before = {}
        stdout = subprocess.PIPE
        preexec = _limits
        command = argv[0]
        helping = "--help" in argv or "--version" in argv
        if command != "train" and not helping:
            argv[1:1] = ["-m", str(MODEL)]
        target = case.target
        force = target.endswith("--force") or target == "non-empty folder, --force"
        if command == "encode-shards":
            out_path = tmp / "shards"
            if target == "empty folder":
                out_path.mkdir()
            elif target.startswith("non-empty folder"):
                out_path.mkdir()
                (out_path / "mine.txt").write_text("keep")
            elif target == "a file":
                out_path.write_text("a file")
            elif target == "missing parent":
                out_path = tmp / "no" / "such" / "shards"
            argv += ["-o", str(out_path)] + (["--force"] if force else [])
        elif target == "stdout":
            if command == "train" and not helping:
                argv += ["-o", str(tmp / "m.model")]
        elif target == "stdout full":
            stdout = open("/dev/full", "wb")
            if command == "train" and not helping:
                argv += ["-o", str(tmp / "m.model")]
        elif target == "stdout closed":
            preexec = _closing(1)
            stdout = None
            if command == "train" and not helping:
                argv += ["-o", str(tmp / "m.model")]
        else:
            out_path = tmp / "out"
            if target.startswith("existing file"):
                out_path.write_bytes(b"precious")
            elif target.startswith("char device"):
                try:
                    os.mknod(out_path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
                except OSError:
                    return "pass", "skipped: cannot make a device node"
            elif target == "fifo":
                os.mkfifo(out_path)
                got = []

                def reader():
                    with contextlib.suppress(OSError), open(out_path, "rb") as handle:
                        got.append(handle.read())

                threads.append(threading.Thread(target=reader, daemon=True))
            elif target.startswith("symlink"):
                (tmp / "real.out").write_bytes(b"precious")
                out_path.symlink_to(tmp / "real.out")
            elif target == "dangling symlink":
                out_path.symlink_to(tmp / "nowhere.out")
            elif target.startswith("directory"):
                out_path.mkdir()
            elif target.startswith("socket"):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.bind(str(out_path))
                before["socket"] = sock
            elif target == "missing folder":
                out_path = tmp / "no" / "out"
            elif target == "/dev/stdout":
                out_path = pathlib.Path("/dev/stdout")
            argv += ["-o", str(out_path)] + (["--force"] if force else [])
        if out_path is not None and out_path != pathlib.Path("/dev/stdout") and os.path.lexists(out_path):
            before["mode"] = os.lstat(out_path).st_mode
            if os.path.isfile(out_path):
                before["bytes"] = pathlib.Path(out_path).read_bytes()
        if command == "train" and case.input_kind == "none":
            paths = [str(CORPUS)]
        argv += paths
        for t in threads:
            t.start()
        start = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bytepiece", *argv],
                input=feed,
                stdin=stdin if feed is None else None,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=env,
                timeout=TIME_LIMIT,
                preexec_fn=preexec,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            return "finding", f"timed out after {TIME_LIMIT} s"
        finally:
            if stdout not in (subprocess.PIPE, None):
                stdout.close()
            if case.input_kind == "fifo" and threads:
                with contextlib.suppress(OSError):  # unblock a writer nobody read
                    fd = os.open(paths[0], os.O_RDONLY | os.O_NONBLOCK)
                    os.close(fd)
            if target == "fifo":
                with contextlib.suppress(OSError):
                    fd = os.open(out_path, os.O_WRONLY | os.O_NONBLOCK)
                    os.close(fd)
            for t in threads:
                t.join(5)
            if "socket" in before:
                before["socket"].close()
        seconds = time.monotonic() - start
        err = done.stderr.decode("utf-8", "replace")
        problems = []
        if done.returncode not in (0, 1, 2):
            problems.append(f"exit status {done.returncode}")
        for bad in ("Traceback", "Exception ignored", "run `bytepiece --debug", "Segmentation"):
            if bad in err:
                problems.append(f"stderr has {bad!r}")
        if done.returncode == 1:
            lines = err.strip().splitlines()
            if len(lines) != 1 or not lines[0].startswith("Error: "):
                problems.append("exit 1 without one 'Error:' line")
            if "out of memory" in err:
                problems.append("out of memory")
            # (an input the command refuses before writing anything is the error to report)
            refused_first = any(words in err for words in ("corpus is empty", "nothing to train"))
            if target == "stdout full" and "<stdout>" not in err and not refused_first:
                problems.append("a full stdout is not named")
        if out_path is not None and "mode" in before:
            if stat.S_IFMT(os.lstat(out_path).st_mode) != stat.S_IFMT(before["mode"]):
                problems.append("the output's file type changed")
            if "bytes" in before and not force and pathlib.Path(out_path).read_bytes() != before["bytes"]:
                problems.append("an existing file was changed without --force")
        if target.startswith("symlink") and not os.path.islink(out_path):
            problems.append("the symlink was replaced")
        leftovers = [p.name for p in tmp.rglob("*") if p.name.endswith(".tmp")] + [p.name for p in spool.iterdir()]
        if leftovers:
            problems.append(f"left behind: {leftovers[:3]}")
        if (
            case.exact
            and done.returncode == 0
            and target == "stdout"
            and case.input_kind not in ("missing", "directory", "/dev/zero")
        ):
            expected = case.data
            if case.input_kind in ("/dev/null",):
                expected = b""
            elif case.input_kind == "fifo":
                expected = b"Hello through a FIFO\n"
            elif case.input_kind == "stdin":
                expected = feed
            elif case.input_kind == "symlink":
                expected = b"Hello through a link\n"
            if "--alpha" not in argv and expected is not None:
                back = _decode(done.stdout, case.fmt)
                if back != expected:
                    problems.append("encode | decode did not give the input back")
        if seconds > 60:
            problems.append(f"slow: {seconds:.0f} s")
        return ("finding", "; ".join(problems) + f" | {err.strip()[:300]}") if problems else ("pass", "")


_TOKENIZER = None


def _decode(data: bytes, fmt: str) -> bytes:
    """What `bytepiece decode -f fmt` gives for ``data`` (through the API: click's test
    runner swaps sys.stdout, which threads must not do)."""
    import json

    from bytepiece import Tokenizer
    from bytepiece.cli.encode import _PieceIds

    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = Tokenizer(MODEL)
    tok = _TOKENIZER
    out = []
    for line in data.splitlines(keepends=True):
        if fmt == "ids":
            ids = [int(w) for w in line.split()]
        elif fmt == "jsonl":
            ids = json.loads(line)["ids"] if line.strip() else []
        else:
            table = _PieceIds(tok.id_bytes)
            words = line.decode("utf-8").rstrip("\r\n").split(" ")
            ids = [table.id_of(w.rstrip("\r")) for w in words if w.rstrip("\r")]
        out.append(tok.decode_bytes(ids))
    return b"".join(out)


# ---------------------------------------------------------------------------
# API


def numeric_values():
    import decimal
    import fractions

    import numpy as np

    values = {
        "0": 0,
        "1": 1,
        "-1": -1,
        "2": 2,
        "5": 5,
        "2**31": 2**31,
        "2**63-1": 2**63 - 1,
        "2**63": 2**63,
        "2**64": 2**64,
        "-2**63": -(2**63),
        "10**30": 10**30,
        "10**400": 10**400,
        "True": True,
        "False": False,
        "0.0": 0.0,
        "-0.0": -0.0,
        "0.5": 0.5,
        "1.5": 1.5,
        "2.0": 2.0,
        "-0.5": -0.5,
        "5e-324": 5e-324,
        "1e300": 1e300,
        "inf": math.inf,
        "-inf": -math.inf,
        "nan": math.nan,
        "np.bool_(True)": np.bool_(True),
        "np.float16(0.5)": np.float16(0.5),
        "np.float32(0.5)": np.float32(0.5),
        "np.float64(0.5)": np.float64(0.5),
        "np.longdouble(0.5)": np.longdouble(0.5),
        "np.float64(nan)": np.float64("nan"),
        "np.complex128(1)": np.complex128(1),
        "1+0j": complex(1, 0),
        "Fraction(1, 2)": fractions.Fraction(1, 2),
        "Decimal('0.5')": decimal.Decimal("0.5"),
        "'1'": "1",
        "'0.5'": "0.5",
        "b'1'": b"1",
        "None": None,
        "np.array(5)": np.array(5),
        "np.array([5])": np.array([5]),
        "[5]": [5],
    }
    for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "intp"):
        values[f"np.{name}(5)"] = getattr(np, name)(5)
    values["np.uint64(2**64-1)"] = np.uint64(2**64 - 1)
    values["np.int64(-1)"] = np.int64(-1)
    return values


TEXT = "Hello world, tokenizers split text.\n\n你好"


def api_calls():
    """(name, function of (tok, value)) for every numeric argument."""

    def batch(**kw):
        return lambda tok, v: tok.encode_batch(
            [TEXT, "second"] * 40, **{k: (v if x is None else x) for k, x in kw.items()}
        )

    calls = {
        "Tokenizer(seed=v).encode(key=1)": lambda tok, v: type(tok)(tok.vocabulary, seed=v).encode(
            TEXT, alpha=0.5, key=1
        ),
        "Tokenizer(alpha=v).encode()": lambda tok, v: type(tok)(tok.vocabulary, alpha=v, seed=1).encode(TEXT, key=1),
        "encode(alpha=v, key=1)": lambda tok, v: tok.encode(TEXT, alpha=v, key=1),
        "encode(alpha=0.5, key=v)": lambda tok, v: tok.encode(TEXT, alpha=0.5, key=v),
        "tokenize(alpha=v, key=1)": lambda tok, v: tok.tokenize(TEXT, alpha=v, key=1),
        "encode_with_offsets(alpha=v, key=1)": lambda tok, v: tok.encode_with_offsets(TEXT, alpha=v, key=1),
        "encode_batch(alpha=v, keys)": lambda tok, v: tok.encode_batch([TEXT] * 3, alpha=v, keys=[1, 2, 3]),
        "encode_batch(keys=[v]*3)": lambda tok, v: tok.encode_batch([TEXT] * 3, alpha=0.5, keys=[v] * 3),
        "encode_batch(num_threads=v)": batch(num_threads=None),
        "encode_batch(num_threads=v, as_numpy)": lambda tok, v: _flat(
            tok.encode_batch([TEXT, "second"] * 40, num_threads=v, as_numpy=True)
        ),
        "encode_batch(num_threads=v, allowed_special)": lambda tok, v: tok.encode_batch(
            [TEXT] * 3, num_threads=v, allowed_special="all"
        ),
        "decode([v])": lambda tok, v: tok.decode_bytes([v]),
        "nbest(n=v)": lambda tok, v: tok.nbest("tokenizer", v),
        "sample_distinct(k=v)": lambda tok, v: tok.sample_distinct("tokenizer", v, alpha=0.5, key=1),
        "sample_distinct(alpha=v)": lambda tok, v: tok.sample_distinct("tokenizer", 3, alpha=v, key=1),
        "sample_distinct(key=v)": lambda tok, v: tok.sample_distinct("tokenizer", 3, alpha=0.5, key=v),
        "log_partition(alpha=v)": lambda tok, v: tok.log_partition(TEXT, v),
        "entropy(alpha=v)": lambda tok, v: tok.entropy(TEXT, v),
        "log_prob(alpha=v)": lambda tok, v: tok.log_prob(TEXT, tok.tokenize(TEXT), v),
        "boundary_marginals(alpha=v)": lambda tok, v: tok.boundary_marginals("tokenizer", v).tolist(),
        "score(pieces=[v])": lambda tok, v: tok.score("a", [v]),
        "id_to_piece(v)": lambda tok, v: tok.id_to_piece(v),
    }
    for option in (
        "max_vocab_size",
        "min_count",
        "order",
        "max_piece_length",
        "ngram_memory",
        "em_sample_bytes",
        "em_script_floor",
        "em_balance",
    ):
        calls[f"Trainer({option}=v)"] = _trainer_call(option)
    return calls


def _trainer_call(option):
    def call(tok, v):
        from bytepiece import Trainer

        Trainer(**{option: v, "verbose": False})
        return "constructed"

    return call


def _flat(arrays):
    ids, rows = arrays
    return [ids[rows[i] : rows[i + 1]].tolist() for i in range(len(rows) - 1)]


def _accepted(call: str, outcome: str) -> bool:
    """Outcomes that are the documented behaviour."""
    # id_to_piece is a mapping, as in BytePiece 0.6.3: an unknown id is a KeyError
    return call.startswith("id_to_piece") and outcome.startswith("finding KeyError")


def api_child(start: int) -> None:
    """Run the API cases from ``start`` on, one line per case on stdout."""
    import numpy as np

    from bytepiece import Tokenizer

    tok = Tokenizer(MODEL, seed=3)
    values = numeric_values()
    calls = api_calls()
    cases = [(c, v) for c in calls for v in values]
    for i in range(start, len(cases)):
        call, vname = cases[i]
        print(f"start {i}", flush=True)
        try:
            result = calls[call](tok, values[vname])
            if isinstance(result, np.ndarray):
                result = result.tolist()
            outcome = "ok " + repr(result)[:2000]
            bad_float = _bad_float(call, vname, result)
            if bad_float:
                outcome = "finding " + bad_float
        except (TypeError, ValueError) as error:
            outcome = f"refused {type(error).__name__}: {str(error)[:200]}"
        except BaseException as error:
            outcome = f"finding {type(error).__name__}: {str(error)[:200]}"
        print(f"done {i}\t{outcome}".replace("\n", " "), flush=True)


def _bad_float(call: str, vname: str, result) -> str | None:
    """NaN or a positive log-probability returned for a finite alpha."""
    floats = []

    def walk(x):
        if isinstance(x, float):
            floats.append(x)
        elif isinstance(x, (list, tuple)):
            for y in x:
                walk(y)

    walk(result)
    if any(math.isnan(x) for x in floats) and vname not in ("nan", "np.float64(nan)"):
        return "NaN in the result"
    if call.startswith("log_prob") and floats and floats[0] > 1e-9:
        return "a positive log-probability"
    return None


def run_api(verbose: bool) -> tuple[int, list]:
    values = numeric_values()
    calls = api_calls()
    cases = [(c, v) for c in calls for v in values]
    outcomes: dict[int, str] = {}
    start = 0
    while start < len(cases):
        child = subprocess.Popen(
            [sys.executable, __file__, "--api-child", str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
            text=True,
            preexec_fn=_limits,
        )
        current = None
        for line in child.stdout:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "start":
                current = int(rest)
            elif kind == "done":
                index, _, outcome = rest.partition("\t")
                outcomes[int(index)] = outcome
                current = None
        child.wait()
        if current is None:
            break
        outcomes[current] = f"finding crash (exit status {child.returncode}): {child.stderr.read()[-300:]}"
        start = current + 1
    findings = []
    # equal values of other types must give the Python value's result
    equal = {
        "np.int8(5)": "5",
        "np.int16(5)": "5",
        "np.int32(5)": "5",
        "np.int64(5)": "5",
        "np.uint8(5)": "5",
        "np.uint16(5)": "5",
        "np.uint32(5)": "5",
        "np.uint64(5)": "5",
        "np.intp(5)": "5",
        "np.array(5)": "5",
        "np.float16(0.5)": "0.5",
        "np.float32(0.5)": "0.5",
        "np.float64(0.5)": "0.5",
        "np.longdouble(0.5)": "0.5",
        "Fraction(1, 2)": "0.5",
        "Decimal('0.5')": "0.5",
        "2.0": "2",
        "np.uint64(2**64-1)": None,
    }
    index_of = {case: i for i, case in enumerate(cases)}
    for i, (call, vname) in enumerate(cases):
        outcome = outcomes.get(i, "finding no outcome")
        if outcome.startswith("ok") and vname in equal and equal[vname] is not None:
            base = outcomes.get(index_of.get((call, equal[vname]), -1), "")
            if base.startswith("ok") and base != outcome:
                outcome = f"finding differs from {equal[vname]}'s result"
        if _accepted(call, outcome):
            outcome = "refused " + outcome[len("finding ") :]
        if outcome.startswith("finding"):
            findings.append((call, vname, outcome[:300]))
        if verbose:
            print(f"{call:45} {vname:22} {outcome[:100]}")
    return len(cases), findings


# ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["all", "cli", "api"], default="all")
    parser.add_argument("--jobs", type=int, default=2, help="CLI runs at a time")
    parser.add_argument("--quick", action="store_true", help="every seventh CLI case")
    parser.add_argument("--only", default=None, help="only the CLI cases whose command contains this")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--api-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.api_child is not None:
        api_child(args.api_child)
        return
    if args.part in ("all", "cli"):
        cases = [c for c in cli_cases(args.quick) if args.only is None or args.only in c.name]
        start = time.monotonic()
        findings = []
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            for case, (verdict, detail) in zip(cases, pool.map(run_cli_case, cases)):
                if verdict == "finding":
                    findings.append((case.name, case.input_kind, case.target, detail))
                if args.verbose:
                    print(f"{case.name:16} {case.input_kind:24} {case.target:28} {verdict} {detail[:80]}")
        print(f"CLI: {len(cases)} runs in {time.monotonic() - start:.0f} s, {len(findings)} findings")
        for finding in findings:
            print("  FINDING", " | ".join(finding))
    if args.part in ("all", "api"):
        start = time.monotonic()
        total, findings = run_api(args.verbose)
        print(f"API: {total} calls in {time.monotonic() - start:.0f} s, {len(findings)} findings")
        for finding in findings:
            print("  FINDING", " | ".join(finding))


if __name__ == "__main__":
    main()
