"""The ``bytepiece`` command line: train, encode, decode, sample, info.

Why it is built this way:

- stdout carries only data (ids, pieces, samples, reports); progress goes to
  stderr, and only when stderr is a terminal or ``--progress`` asks for it.
- Text is read as bytes, one line at a time, in batches of lines, so memory
  stays flat on files of any size. A line keeps its line ending (``\\n`` or
  ``\\r\\n``, or nothing on a last line without one): its ids include those
  bytes, and ``decode`` writes the bytes of each id line back to back, so
  ``encode | decode`` reproduces the input byte for byte (NFC text, or any
  bytes with ``--no-normalize``).
- Each line is keyed by its line number (1-based, counted across all inputs),
  so samples with ``--alpha`` and ``--seed`` do not depend on ``--threads``
  or on how lines fall into batches.
- Every file written goes through :func:`bytepiece.atomic.atomic_write`: an
  interrupted run leaves the old file or none, never half of one.
- Runtime errors become one ``Error: ...`` line and exit status 1 (2 stays
  click's usage errors); ``bytepiece --debug ...`` shows the traceback. A
  reader that closes the pipe early (``| head``) ends the run quietly, with
  status 0.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import sys
import time
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, List, Optional, Tuple

import click

from ._version import __version__

BATCH_LINES = 1000
BATCH_BYTES = 1 << 22
SPECIAL_NAMES = ("<pad>", "<bos>", "<eos>")
FIRST_PIECE_ID = len(SPECIAL_NAMES)
ENUMERATION_LIMIT = 100_000


# ---------------------------------------------------------------------------
# Errors


class CliError(click.ClickException):
    """A runtime error: printed as one ``Error: ...`` line, exit status 1."""


class Interrupted(click.ClickException):
    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted")


def _describe(error: BaseException) -> str:
    """One line naming what went wrong and, when known, the file."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    if isinstance(error, MemoryError):
        return "out of memory"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    from .model import ModelError

    if isinstance(error, (ModelError, ValueError, OSError)) and text:
        return text
    return f"{type(error).__name__}: {text} (run `bytepiece --debug ...` for a traceback)"


def _quiet_broken_pipe() -> None:
    # Point stdout at /dev/null so that the interpreter's final flush does not fail again.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class _Group(click.Group):
    """Turns exceptions from any command into one-line errors (or tracebacks with --debug)."""

    def invoke(self, ctx: click.Context):
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            if debug:
                raise
            raise Interrupted() from None
        except BrokenPipeError:
            _quiet_broken_pipe()
            ctx.exit(0)
        except OSError as error:
            if error.errno == errno.EPIPE:
                _quiet_broken_pipe()
                ctx.exit(0)
            if debug:
                raise
            raise CliError(_describe(error)) from None
        except Exception as error:
            if debug:
                raise
            raise CliError(_describe(error)) from None


# ---------------------------------------------------------------------------
# Options shared by several commands


def _check_alpha(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, not {value}")
    return value


def _model_option(f):
    return click.option(
        "-m",
        "--model",
        "model_path",
        required=True,
        type=click.Path(exists=True, dir_okay=False),
        help="Model file: BytePiece JSON, or a zip holding one.",
    )(f)


def _output_option(f):
    f = click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")(f)
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, allow_dash=True),
        default=None,
        help="Write here (atomically) instead of stdout.",
    )(f)


def _progress_option(f):
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Show progress on stderr (default: only when stderr is a terminal).",
    )(f)


def _inputs_argument(f):
    return click.argument(
        "inputs",
        nargs=-1,
        type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    )(f)


def _dask_options(f):
    f = click.option(
        "--dask-blocksize",
        type=click.IntRange(min=1),
        default=None,
        metavar="BYTES",
        help="Bytes of input per Dask task (default 32 MiB).",
    )(f)
    f = click.option(
        "--dask-local",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Run on a Dask cluster of N worker processes on this machine.",
    )(f)
    f = click.option(
        "--dask-scheduler-file",
        type=click.Path(dir_okay=False),
        default=None,
        help="Run on the Dask cluster whose scheduler wrote this file (--scheduler-file).",
    )(f)
    return click.option(
        "--dask-scheduler",
        default=None,
        metavar="ADDRESS",
        help="Run on the Dask cluster of this scheduler (tcp://host:8786); the workers "
        "read the inputs, so paths must be visible to them. Needs bytepiece[dask].",
    )(f)


def _dask_where(address, scheduler_file, local, blocksize) -> dict:
    where = {
        k: v
        for k, v in (("address", address), ("scheduler_file", scheduler_file), ("local_workers", local))
        if v is not None
    }
    if len(where) > 1:
        raise CliError("give only one of --dask-scheduler, --dask-scheduler-file, --dask-local")
    if blocksize is not None:
        if not where:
            raise CliError("--dask-blocksize needs --dask-scheduler, --dask-scheduler-file or --dask-local")
        where["blocksize"] = blocksize
    return where


_LOADED: dict = {}


def _load_tokenizer(path: str, seed=None, normalize: bool | None = None):
    """A Tokenizer for a model file; the parsed vocabulary of the last file loaded is
    kept (keyed by path, size and mtime), so commands run in one process load it once."""
    from .model import load_model
    from .tokenizer import Tokenizer

    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    vocab = _LOADED.get(key)
    if vocab is None:
        vocab = load_model(path)
        _LOADED.clear()
        _LOADED[key] = vocab
    return Tokenizer(vocab, seed=seed, normalize=normalize)


# ---------------------------------------------------------------------------
# Progress on stderr


class _Progress:
    """A one-line progress report on stderr, redrawn at most a few times a second."""

    def __init__(self, enabled: bool | None, label: str, total: int | None = None, unit: str = "MB"):
        stderr = sys.stderr
        self.tty = bool(getattr(stderr, "isatty", lambda: False)())
        self.enabled = self.tty if enabled is None else enabled
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self.start = self.last = time.monotonic()

    def _scaled(self, n: float) -> str:
        return f"{n / 1e6:.1f}" if self.unit == "MB" else f"{int(n)}"

    def update(self, amount: int) -> None:
        self.done += amount
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 2.0):
            return
        self.last = now
        self._draw(now)

    def _draw(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self.start, 1e-9)
        shown = f"{self._scaled(self.done)}"
        if self.total:
            shown += f"/{self._scaled(self.total)} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            shown += f" {self.unit}"
        rate = f"{self._scaled(self.done / elapsed)} {self.unit}/s"
        line = f"{self.label}: {shown}, {rate}, {elapsed:.1f} s"
        if self.tty:
            click.echo("\r\x1b[K" + line, nl=final, err=True)
        else:
            click.echo(line, err=True)

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic(), final=True)


# ---------------------------------------------------------------------------
# Reading lines and writing outputs


def _input_size(paths: Sequence[str]) -> int | None:
    total = 0
    for path in paths:
        if path == "-":
            return None
        try:
            total += os.path.getsize(path)
        except OSError:
            return None
    return total


def _binary(stream) -> IO[bytes]:
    """The byte stream under sys.stdin / sys.stdout (as replaced by tests, too)."""
    return getattr(stream, "buffer", stream)


class _TextOut:
    """UTF-8 text to binary stdout, whatever the locale."""

    def __init__(self) -> None:
        self.stream = _binary(sys.stdout)

    def write(self, text: str) -> None:
        self.stream.write(text.encode("utf-8", "surrogateescape"))

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def _open_input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield _binary(sys.stdin)
    else:
        with open(path, "rb") as handle:
            yield handle


def _line_batches(paths: Sequence[str], max_lines: int = 0) -> Iterator[tuple[str, int, list[bytes]]]:
    """(input name, number of its first line, lines) in batches; lines keep their endings."""
    max_lines = max_lines or BATCH_LINES
    if not paths and getattr(sys.stdin, "isatty", lambda: False)():
        click.echo("bytepiece: reading from the terminal; end with Ctrl-D", err=True)
    for path in paths or ("-",):
        name = "<stdin>" if path == "-" else path
        with _open_input(path) as handle:
            batch: list[bytes] = []
            size = 0
            first = 1
            for line in handle:
                batch.append(line)
                size += len(line)
                if len(batch) >= max_lines or size >= BATCH_BYTES:
                    yield name, first, batch
                    first += len(batch)
                    batch, size = [], 0
            if batch:
                yield name, first, batch


def _refuse_existing(path: str, force: bool) -> None:
    """Check an output path before any work: not there (unless --force), in a writable folder."""
    if not force and os.path.lexists(path):
        raise CliError(f"{path}: already exists; use --force to overwrite it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CliError(f"{path}: the folder {folder} is not writable")


@contextlib.contextmanager
def _writing(path: str) -> Iterator[None]:
    """Name the output file (not atomic_write's temporary file) in write errors."""
    try:
        yield
    except FileExistsError:
        raise CliError(f"{path}: already exists; use --force to overwrite it") from None
    except OSError as error:
        if error.filename is None or error.filename == path or error.errno == errno.EPIPE:
            raise
        raise CliError(f"{path}: cannot write it ({error.strerror})") from None


@contextlib.contextmanager
def _output(path: str | None, force: bool) -> Iterator[IO[bytes]]:
    """Binary stdout, or an atomic file that appears only if the command succeeds."""
    if path is None or path == "-":
        stream = _binary(sys.stdout)
        yield stream
        stream.flush()
        return
    from .atomic import atomic_write

    _refuse_existing(path, force)
    with _writing(path), atomic_write(path, "wb", overwrite=force) as handle:
        yield handle


def _normalizer(tok):
    """The tokenizer's normalisation for a line of bytes (None when it has none); bytes that
    are not UTF-8 pass through untouched, so they still round-trip."""
    form = tok.normalization
    if form == "none":
        return None

    def normalize(line: bytes) -> bytes:
        if line.isascii():
            return line
        text = line.decode("utf-8", "surrogateescape")
        if unicodedata.is_normalized(form, text):
            return line
        return unicodedata.normalize(form, text).encode("utf-8", "surrogateescape")

    return normalize


# ---------------------------------------------------------------------------
# Readable pieces
#
# A piece is shown as its UTF-8 text with these escapes, so that it can be read
# back exactly: backslash is `\\`; a byte that is not part of valid UTF-8 is
# `\xNN`; newline, carriage return and tab are `\n`, `\r`, `\t`; other control
# characters are `\xNN` (or `\uNNNN` past ASCII). In the space-separated
# `pieces` format a space inside a piece is shown as `▁` (U+2581), and a real
# U+2581 as `\u2581`. A piece that would read like a special id is escaped too.

_SPACE_MARK = "\u2581"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def readable_piece(piece: bytes, spaces: bool = True) -> str:
    """The escaped text of a piece (``spaces=True``: the form used between separators)."""
    text = piece.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif ch == " " and spaces:
            out.append(_SPACE_MARK)
        elif ch == _SPACE_MARK and spaces:
            out.append("\\u2581")
        elif unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x80 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    shown = "".join(out)
    if shown in SPECIAL_NAMES:
        shown = "\\x3c" + shown[1:]
    return shown


def parse_piece(shown: str, spaces: bool = True) -> bytes:
    """Inverse of :func:`readable_piece`."""
    out = bytearray()
    i, n = 0, len(shown)
    while i < n:
        ch = shown[i]
        if ch == "\\":
            kind = shown[i + 1 : i + 2]
            if kind == "\\":
                out += b"\\"
                i += 2
            elif kind in ("n", "r", "t"):
                out += {"n": b"\n", "r": b"\r", "t": b"\t"}[kind]
                i += 2
            elif kind == "x" and _is_hex(shown[i + 2 : i + 4], 2):
                out.append(int(shown[i + 2 : i + 4], 16))
                i += 4
            elif kind == "u" and _is_hex(shown[i + 2 : i + 6], 4):
                out += chr(int(shown[i + 2 : i + 6], 16)).encode("utf-8", "surrogatepass")
                i += 6
            else:
                raise ValueError(f"bad escape {shown[i : i + 4]!r} in piece {shown!r}")
        elif ch == _SPACE_MARK and spaces:
            out += b" "
            i += 1
        else:
            out += ch.encode("utf-8")
            i += 1
    return bytes(out)


def _is_hex(s: str, width: int) -> bool:
    return len(s) == width and all(c in "0123456789abcdefABCDEF" for c in s)


class _PieceTable:
    """Readable forms of ids, computed once per id on first use."""

    def __init__(self, tok, spaces: bool):
        self.tok, self.spaces = tok, spaces
        self.cache: dict = {}

    def __getitem__(self, i: int) -> str:
        try:
            return self.cache[i]
        except KeyError:
            shown = SPECIAL_NAMES[i] if i < FIRST_PIECE_ID else readable_piece(self.tok._id_bytes[i], self.spaces)
            self.cache[i] = shown
            return shown


# ---------------------------------------------------------------------------
# The group


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="bytepiece")
@click.option(
    "--debug",
    is_flag=True,
    envvar="BYTEPIECE_DEBUG",
    help="Show the full traceback on errors (or set BYTEPIECE_DEBUG=1).",
)
def main(debug: bool) -> None:
    """BytePiece: a byte-level Unigram tokenizer.

    \b
    Examples:
      bytepiece train -o my.model --vocab-size 8000 data/
      bytepiece encode -m my.model text.txt > text.ids
      bytepiece decode -m my.model text.ids > text.txt
      bytepiece sample -m my.model "Hello world" --alpha 0.1 -n 5
      bytepiece info -m my.model --text text.txt

    Run `bytepiece COMMAND --help` for each command's options.
    """


# ---------------------------------------------------------------------------
# train

BUNDLED_CORPORA = "corpora"
DEFAULT_MODEL = "bytepiece.model"


def _bundled_corpus() -> list[str]:
    """The bundled ``corpora/*.train.txt``, found from the current directory (a checkout)."""
    files = sorted(str(p) for p in Path(BUNDLED_CORPORA).glob("*.train.txt"))
    if not files:
        raise CliError(
            f"no PATH given and no bundled corpus in {os.path.abspath(BUNDLED_CORPORA)}/*.train.txt; "
            "run from a bytepiece checkout or name the files to train on"
        )
    return files


def _model_paths(output: str, sizes: Sequence[int]) -> list[str]:
    """Where the models go: OUTPUT for one size, OUTPUT.SIZE for each of several (largest first)."""
    if len(sizes) <= 1:
        return [output]
    return [f"{output}.{size}" for size in sorted(sizes, reverse=True)]


def _spool_stdin(directory: str | None) -> str:
    """Copy stdin to a temporary file: training may read its corpus twice."""
    import shutil
    import tempfile

    fd, path = tempfile.mkstemp(prefix="bytepiece-stdin-", suffix=".txt", dir=directory)
    with os.fdopen(fd, "wb") as handle:
        shutil.copyfileobj(_binary(sys.stdin), handle, 1 << 20)
    return path


def _peak_memory_mb() -> float | None:
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return max(own, children) * scale / 1e6


def _bytes_per_token(tok, paths: Sequence[str]) -> tuple[int, int]:
    total_bytes = tokens = 0
    normalize = _normalizer(tok)
    for _name, _first, batch in _line_batches(paths):
        datas = batch if normalize is None else [normalize(line) for line in batch]
        tokens += sum(len(ids) for ids in tok.encode_batch(datas))
        total_bytes += sum(len(d) for d in datas)
    return total_bytes, tokens


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, allow_dash=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model file to write (atomically). With several --vocab-size values: OUTPUT.SIZE each.",
)
@click.option("--force", is_flag=True, help="Overwrite existing model files.")
@click.option(
    "--vocab-size",
    "vocab_sizes",
    type=click.IntRange(min=259),
    multiple=True,
    help="Vocabulary size, counting the 256 single bytes and the 3 special ids "
    "(default: the Trainer's, 10000). Repeat for several models in one run, "
    "e.g. --vocab-size 8000 --vocab-size 32000.",
)
@click.option(
    "--order",
    type=click.IntRange(min=1),
    default=6,
    show_default=True,
    help="Longest byte n-gram counted in the first stage.",
)
@click.option(
    "--min-count",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Drop pieces seen fewer times than this.",
)
@click.option(
    "--max-piece-length",
    type=click.IntRange(min=1),
    default=None,
    help="Longest piece, in bytes (default: the Trainer's, 24; 36 with --no-em, as 0.6.3).",
)
@click.option("--isolate-digits", is_flag=True, help="Keep every digit a piece of its own.")
@click.option("--no-ensure-unicode", is_flag=True, help="Allow multi-byte pieces that are not whole UTF-8 characters.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads for counting and pruning; the model is the same for any number.",
)
@click.option(
    "--errors",
    "encoding_errors",
    type=click.Choice(["strict", "replace", "bytes"]),
    default="strict",
    show_default=True,
    help="Invalid UTF-8 in the corpus: stop with an error, replace it (U+FFFD), or train on raw bytes.",
)
@click.option(
    "--no-em",
    is_flag=True,
    help="Stop after BytePiece 0.6.3's algorithm, without the Unigram EM refinement "
    "(the vocabulary 0.6.3 itself would train).",
)
@click.option(
    "--em-seed",
    type=click.Choice(["ngrams", "tagged"]),
    default=None,
    help="Where the EM starts: the most frequent byte n-grams (default: the Trainer's, "
    "ngrams), or also 0.6.3's tagged and pruned vocabulary (tagged: slower, and "
    "measurably worse on held-out text; the previous default).",
)
@click.option(
    "--script-floor",
    type=click.FloatRange(min=0, max=0.5),
    default=None,
    help="Script balance of the EM stage for mixed corpora: a script with less than "
    "this share of the text weighs as if it had this share, or 3 times its own "
    "if that is less (default: the Trainer's, 0.25; 0 = plain likelihood). Higher "
    "gives minority scripts (e.g. Chinese among English) more pieces. "
    "Example: --script-floor 0.3",
)
@click.option(
    "--balance",
    type=click.FloatRange(min=0, min_open=True, max=1),
    default=None,
    help="Tempered script shares before the floor: a script with share p of the "
    "text weighs as p**BALANCE (default: the Trainer's, 1.0 = off). Example: --balance 0.5",
)
@click.option(
    "--eval",
    "eval_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Held-out text: report bytes per token on it for each model. Repeatable.",
)
@click.option(
    "--ngram-memory",
    type=click.FloatRange(min=0),
    default=None,
    metavar="MB",
    help="Memory budget of the n-gram table (default: the Trainer's, 4000 MB; 0 = none). "
    "On a corpus whose n-grams do not fit, the rarest are dropped and the counts become "
    "approximate (a message says so) instead of the run running out of memory. "
    "Example: --ngram-memory 500",
)
@click.option(
    "--em-sample",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="MB",
    help="EM runs on a uniform sample of the corpus this big (default: the Trainer's, 64 MB).",
)
@_dask_options
@_progress_option
def train(
    paths,
    output,
    force,
    vocab_sizes,
    order,
    min_count,
    max_piece_length,
    isolate_digits,
    no_ensure_unicode,
    workers,
    encoding_errors,
    no_em,
    em_seed,
    script_floor,
    balance,
    eval_paths,
    ngram_memory,
    em_sample,
    dask_scheduler,
    dask_scheduler_file,
    dask_local,
    dask_blocksize,
    progress,
):
    """Train a vocabulary on text files, folders (every file in them) or stdin (-).

    With no PATH, trains on the bundled corpora/*.train.txt of a bytepiece
    checkout (run from its top folder) and writes bytepiece.model. Prints a
    summary when done; progress goes to stderr. Ctrl-C leaves no model file.

    The corpus is streamed (read once; twice with --no-em or --em-seed tagged;
    never held), so memory does not grow
    with it past two budgets: the n-gram table (--ngram-memory) and the EM
    sample (--em-sample). A corpus whose n-grams do not fit the first drops
    its rarest n-grams (the summary says so) rather than running out of memory.

    \b
    Examples:
      bytepiece train
      bytepiece train -o big.model --ngram-memory 500 --em-sample 32 big-corpus/
      bytepiece train -o my.model --vocab-size 16000 data/ extra.txt
      bytepiece train -o my.model --vocab-size 8000 --vocab-size 32000 \\
          --eval corpora/en.heldout.txt corpora/en.train.txt
      cat *.txt | bytepiece train -o my.model --vocab-size 4000 -
    """
    from . import trainer as trainer_module

    dask = _dask_where(dask_scheduler, dask_scheduler_file, dask_local, dask_blocksize)
    if dask and "-" in paths and "local_workers" not in dask:
        raise CliError("stdin (-) cannot be read by the workers of a remote Dask cluster; give files")
    sizes = sorted(set(vocab_sizes), reverse=True)
    targets = _model_paths(output, sizes)
    for target in targets:
        _refuse_existing(target, force)
    if not paths:
        paths = _bundled_corpus()
    verbose = _Progress(progress, "train").enabled
    options = {
        "order": order,
        "max_piece_length": max_piece_length,
        "min_count": min_count,
        "isolate_digits": isolate_digits,
        "ensure_unicode": not no_ensure_unicode,
        "verbose": verbose,
    }
    if no_em:
        options["em"] = False
    if em_seed is not None:
        options["em_seed"] = em_seed
    if script_floor is not None:
        options["em_script_floor"] = script_floor
    if balance is not None:
        options["em_balance"] = balance
    if ngram_memory is not None:
        options["ngram_memory"] = round(ngram_memory * 1e6)
    if em_sample is not None:
        options["em_sample_bytes"] = max(1, round(em_sample * 1e6))
    if sizes:
        options["max_vocab_size"] = sizes if len(sizes) > 1 else sizes[0]
    trainer = trainer_module.Trainer(**options)
    start = time.monotonic()
    spooled = None
    try:
        if "-" in paths:
            spooled = _spool_stdin(None)
            paths = [spooled if p == "-" else p for p in paths]
        if dask:  # counting on the cluster; --workers threads prune and run EM here
            from .distributed import train_files_on_dask

            train_files_on_dask(trainer, list(paths), workers=workers, errors=encoding_errors, **dask)
        else:
            trainer.train_files(list(paths), workers=workers, errors=encoding_errors)
    except trainer_module.CorpusError as error:
        path = getattr(error, "path", None)
        if path is not None:  # invalid UTF-8: say it in the command line's terms
            shown = "<stdin>" if path == spooled else path
            raise CliError(
                f"{shown}: not valid UTF-8 at byte offset {error.offset}; "
                "use --errors replace (or --errors bytes) to train anyway"
            ) from None
        raise
    except MemoryError:
        if click.get_current_context().find_root().params.get("debug"):
            raise
        raise CliError(
            f"out of memory while training (n-gram budget {trainer.ngram_memory / 1e6:g} MB, EM sample "
            f"{trainer.em_sample_bytes / 1e6:g} MB); lower --ngram-memory (and --em-sample) to fit this "
            "machine: rare n-grams are then dropped instead"
        ) from None
    finally:
        if spooled is not None:
            with contextlib.suppress(OSError):
                os.unlink(spooled)
    seconds = time.monotonic() - start
    from .model import load_model, save_model

    if len(targets) != len(trainer.pieces):  # one size left to the trainer's default
        targets = _model_paths(output, [0] * len(trainer.pieces))
    for pieces, target in zip(trainer.pieces, targets):
        with _writing(target):
            save_model(target, pieces, overwrite=force)
    out = _TextOut()
    peak = _peak_memory_mb()
    corpus_bytes = getattr(trainer, "stats", {}).get("corpus_bytes")
    out.write(
        f"trained on {len(paths)} path(s)"
        + (f", {corpus_bytes / 1e6:.1f} MB" if corpus_bytes else "")
        + f" in {seconds:.1f} s"
        + (f", peak memory {peak:.0f} MB" if peak else "")
        + "\n"
    )
    if getattr(trainer, "stats", {}).get("ngram_budget_hit"):
        out.write(
            f"n-gram memory budget ({trainer.ngram_memory / 1e6:g} MB) hit: the rarest n-grams were "
            "dropped, so counts are approximate (raise --ngram-memory for exact ones)\n"
        )
    for pieces, target in zip(trainer.pieces, targets):
        line = f"{target}: vocabulary size {len(pieces) + FIRST_PIECE_ID}"
        if eval_paths:
            from .tokenizer import Tokenizer

            tok = Tokenizer(load_model(target))
            nbytes, tokens = _bytes_per_token(tok, eval_paths)
            line += f", {nbytes / max(tokens, 1):.3f} bytes/token on {', '.join(eval_paths)}"
        out.write(line + "\n")
    out.flush()


# ---------------------------------------------------------------------------
# encode


@main.command()
@_model_option
@_inputs_argument
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["ids", "pieces", "jsonl"]),
    default="ids",
    show_default=True,
    help="ids: space-separated ids; pieces: readable pieces (see below); "
    "jsonl: one JSON object per line with ids, pieces, byte offsets and "
    "character offsets (within the line, as Tokenizer.encode_with_offsets).",
)
@click.option(
    "--alpha",
    type=float,
    default=None,
    callback=_check_alpha,
    help="Sample segmentations with probability proportional to exp(alpha * score) "
    "instead of the single best one (e.g. --alpha 0.1). Negative means best.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed for --alpha: the same seed gives the same samples (each line is keyed "
    "by its line number). Without it the samples are random.",
)
@click.option("--bos", is_flag=True, help="Start each line with <bos> (id 1).")
@click.option("--eos", is_flag=True, help="End each line with <eos> (id 2).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for encoding (default: as many as useful). Never changes the output.",
)
@click.option(
    "--no-normalize", is_flag=True, help="Encode the bytes as they are; by default text is NFC-normalised first."
)
@_output_option
@_progress_option
@_dask_options
def encode(
    model_path,
    inputs,
    fmt,
    alpha,
    seed,
    bos,
    eos,
    threads,
    no_normalize,
    output,
    force,
    progress,
    dask_scheduler,
    dask_scheduler_file,
    dask_local,
    dask_blocksize,
):
    """Encode text files (or stdin) to ids, one output line per input line.

    Each input line is encoded with its line ending, so the ids of a file
    decode back to exactly that file (`bytepiece decode`). Files are read in
    batches of lines: memory stays small on inputs of any size.

    With a --dask option the workers of a Dask cluster encode the files into
    numpy token shards in the folder -o (as `bytepiece encode-shards`; the same
    ids, whatever the cluster or block size).

    \b
    pieces format: pieces separated by spaces, shown as text with escapes:
      a space inside a piece is ▁ (and a real ▁ is \\u2581),
      a newline \\n (also \\r, \\t), a backslash \\\\,
      a byte that is not valid UTF-8 \\xNN.

    \b
    Examples:
      bytepiece encode -m my.model corpus.txt > corpus.ids
      cat corpus.txt | bytepiece encode -m my.model --format pieces | head
      bytepiece encode -m my.model --alpha 0.1 --seed 7 --eos -o train.ids corpus.txt
      bytepiece encode -m my.model --dask-local 4 -o tokens/ corpus/
    """
    where = _dask_where(dask_scheduler, dask_scheduler_file, dask_local, dask_blocksize)
    if where:
        if output in (None, "-"):
            raise CliError("--dask options write numpy shards: give their folder with -o")
        if fmt != "ids" or not inputs or "-" in inputs:
            raise CliError("--dask options encode files (not stdin) into id shards: no --format pieces/jsonl")
        _encode_shards(model_path, inputs, output, alpha, seed, bos, eos, no_normalize, where)
        return
    if output not in (None, "-"):
        _refuse_existing(output, force)
    tok = _load_tokenizer(model_path, seed=seed, normalize=False if no_normalize else None)
    if alpha is None:
        alpha = tok.alpha  # the model's own default (-1: Viterbi)
    sampling = alpha >= 0
    normalize = _normalizer(tok)
    pieces = _PieceTable(tok, spaces=(fmt == "pieces")) if fmt != "ids" else None
    id_bytes = tok._id_bytes
    id_text = [str(i) for i in range(tok.vocab_size)]
    meter = _Progress(progress, "encode", _input_size(inputs))
    with _output(output, force) as out:
        line_number = 0
        # a batch per thread, so that threads have work; keys make batching invisible
        cores = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        for _name, _first, batch in _line_batches(inputs, BATCH_LINES * max(1, cores)):
            meter.update(sum(len(line) for line in batch))
            datas = batch if normalize is None else [normalize(line) for line in batch]
            keys = range(line_number + 1, line_number + 1 + len(datas)) if sampling else None
            results = tok.encode_batch(
                datas, add_bos=bos, add_eos=eos, alpha=alpha if sampling else -1, keys=keys, num_threads=threads
            )
            if fmt == "ids":
                text = "\n".join([" ".join([id_text[i] for i in ids]) for ids in results]) + "\n"
            elif fmt == "pieces":
                text = "".join(" ".join([pieces[i] for i in ids]) + "\n" for ids in results)
            else:
                from .tokenizer import char_spans  # the spans encode_with_offsets reports

                lines = []
                for k, (data, ids) in enumerate(zip(datas, results), line_number + 1):
                    starts, ends, at = [], [], 0
                    for i in ids:
                        starts.append(at)
                        at += len(id_bytes[i])
                        ends.append(at)
                    lines.append(
                        json.dumps(
                            {
                                "line": k,
                                "ids": ids,
                                "pieces": [pieces[i] for i in ids],
                                "offsets": [list(span) for span in zip(starts, ends)],
                                "char_offsets": [list(span) for span in char_spans(data, starts, ends)],
                            },
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                text = "".join(lines)
            out.write(text.encode("utf-8"))
            line_number += len(datas)
    meter.close()


# ---------------------------------------------------------------------------
# encode-shards


@main.command("encode-shards")
@_model_option
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o", "--output", required=True, help="Folder for the shards (created; may be a URL the workers can write to)."
)
@click.option(
    "--alpha",
    type=float,
    default=None,
    callback=_check_alpha,
    help="Sample segmentations (e.g. --alpha 0.1); each line is keyed by its line number. "
    "Default: the model's own (Viterbi unless the model file records one).",
)
@click.option("--seed", type=int, default=None, help="Seed for --alpha (default: random, kept in index.json).")
@click.option("--bos", is_flag=True, help="Start each line with <bos> (id 1).")
@click.option("--eos", is_flag=True, help="End each line with <eos> (id 2).")
@click.option("--no-normalize", is_flag=True, help="Encode the bytes as they are (no NFC).")
@_dask_options
def encode_shards(
    model_path,
    inputs,
    output,
    alpha,
    seed,
    bos,
    eos,
    no_normalize,
    dask_scheduler,
    dask_scheduler_file,
    dask_local,
    dask_blocksize,
):
    """Encode files, folders or URLs into numpy token shards, on a Dask cluster.

    Writes OUTPUT/part-NNNNN.ids.npy and .rows.npy per block and OUTPUT/index.json
    (see docs/distributed.md). Lines are encoded as `bytepiece encode` encodes them,
    with the same keys, so the ids do not depend on the cluster or the block size.
    Without a --dask option the blocks are encoded in this process.

    \b
    Examples:
      bytepiece encode-shards -m my.model -o tokens/ --dask-local 4 corpus/
      bytepiece encode-shards -m my.model -o s3://bucket/tokens/ --dask-scheduler tcp://10.0.0.1:8786 s3://bucket/corpus/
    """
    where = _dask_where(dask_scheduler, dask_scheduler_file, dask_local, dask_blocksize)
    _encode_shards(model_path, inputs, output, alpha, seed, bos, eos, no_normalize, where)


def _encode_shards(model_path, inputs, output, alpha, seed, bos, eos, no_normalize, where: dict) -> None:
    from .distributed import encode_files

    index = encode_files(
        list(inputs),
        model_path,
        output,
        alpha=alpha,
        seed=seed,
        add_bos=bos,
        add_eos=eos,
        normalize=not no_normalize,
        **where,
    )
    click.echo(f"{index['lines']} lines, {index['tokens']} tokens in {len(index['parts'])} shard(s) in {output}")


# ---------------------------------------------------------------------------
# decode


@main.command()
@_model_option
@_inputs_argument
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["ids", "pieces", "jsonl"]),
    default="ids",
    show_default=True,
    help="What the input lines hold (as written by `bytepiece encode`).",
)
@_output_option
@_progress_option
def decode(model_path, inputs, fmt, output, force, progress):
    """Decode id lines (or stdin) back to text.

    The bytes of each line's ids are written back to back, with nothing added:
    line endings come from the ids themselves, so `encode | decode` gives back
    the input byte for byte. Special ids (<pad>, <bos>, <eos>) decode to nothing.

    \b
    Examples:
      bytepiece decode -m my.model corpus.ids > corpus.txt
      bytepiece encode -m my.model a.txt | bytepiece decode -m my.model | cmp - a.txt
    """
    if output not in (None, "-"):
        _refuse_existing(output, force)
    tok = _load_tokenizer(model_path)
    table = tok._id_bytes
    size = len(table)
    by_piece = None
    meter = _Progress(progress, "decode", _input_size(inputs))
    with _output(output, force) as out:
        for name, first, batch in _line_batches(inputs):
            meter.update(sum(len(line) for line in batch))
            chunks = []
            for number, line in enumerate(batch, first):
                try:
                    if fmt == "ids":
                        ids = [int(word) for word in line.split()]
                    elif fmt == "jsonl":
                        if not line.strip():
                            continue
                        record = json.loads(line)
                        ids = record["ids"] if isinstance(record, dict) else None
                        if not isinstance(ids, list) or not all(type(i) is int for i in ids):
                            raise ValueError('no list of integer ids under "ids"')
                    else:
                        if by_piece is None:
                            by_piece = {p: i for i, p in enumerate(table) if i >= FIRST_PIECE_ID}
                            by_piece.update({s.encode(): i for i, s in enumerate(SPECIAL_NAMES)})
                        ids = []
                        for word in line.decode("utf-8").split(" "):
                            word = word.rstrip("\r\n")
                            if not word:
                                continue
                            raw = word.encode() if word in SPECIAL_NAMES else parse_piece(word)
                            if raw not in by_piece:
                                raise ValueError(f"{word!r} is not a piece of this model")
                            ids.append(by_piece[raw])
                except (ValueError, KeyError, UnicodeDecodeError) as error:
                    detail = str(error) if fmt != "ids" else f"{_first_bad_word(line)!r} is not an id"
                    raise CliError(f"{name} line {number}: {detail}") from None
                for i in ids:
                    if not 0 <= i < size:
                        raise CliError(f"{name} line {number}: id {i} is not in the vocabulary (0 .. {size - 1})")
                chunks.append(b"".join([table[i] for i in ids]))
            out.write(b"".join(chunks))
    meter.close()


def _first_bad_word(line: bytes) -> str:
    for word in line.split():
        try:
            int(word)
        except ValueError:
            return word.decode("utf-8", "replace")
    return line.decode("utf-8", "replace").strip()


# ---------------------------------------------------------------------------
# sample


@main.command()
@_model_option
@click.argument("text")
@click.option(
    "-n",
    "--samples",
    "count",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many segmentations to draw.",
)
@click.option(
    "--alpha",
    type=float,
    default=0.1,
    show_default=True,
    callback=_check_alpha,
    help="Sharpness: segmentations are drawn with probability proportional to "
    "exp(alpha * score); 0 is uniform, larger is closer to the best one.",
)
@click.option("--seed", type=int, default=None, help="Seed; the same seed shows the same samples.")
@click.option(
    "--check",
    "check",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Draw N samples and compare their frequencies with the exact probabilities "
    "of every segmentation (chi-square test). TEXT must be short enough to enumerate.",
)
@click.option("--no-normalize", is_flag=True, help="Do not NFC-normalise TEXT.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads for --check.")
def sample(model_path, text, count, alpha, seed, check, no_normalize, threads):
    """Show sampled segmentations of TEXT with their exact probabilities.

    Each line is: probability, `*` when it is the best (Viterbi) segmentation,
    then the pieces (written as in `encode --format pieces`). Probabilities are
    exact: exp(alpha * score) over the sum of that over every segmentation,
    computed on the lattice.

    \b
    Examples:
      bytepiece sample -m my.model "unbelievable" --alpha 0.1 -n 5 --seed 1
      bytepiece sample -m my.model "tokenizer" --check 100000
    """
    if alpha < 0:
        raise click.BadParameter("must be >= 0 to sample", param_hint="'--alpha'")
    tok = _load_tokenizer(model_path, seed=seed, normalize=False if no_normalize else None)
    data = text.encode("utf-8", "surrogateescape")
    normalize = _normalizer(tok)
    if normalize is not None:
        data = normalize(data)
    if not data:
        raise CliError("TEXT is empty: nothing to segment")
    shown = _PieceTable(tok, spaces=True)
    segmentations = _enumerate_for_check(tok, data) if check is not None else None
    logz = _log_partition(tok, data, alpha)
    best = tok.encode(data)
    out = _TextOut()
    draws = tok.encode_batch([data] * count, alpha=alpha, keys=list(range(count)), num_threads=threads)
    out.write(
        f"# {len(data)} bytes, alpha={alpha:g}, log Z={logz:.6f}; best (*): "
        f"p={_prob(tok, best, alpha, logz, data):.6g}, {' '.join(shown[i] for i in best)}\n"
    )
    for ids in draws:
        mark = "*" if ids == best else " "
        out.write(f"{_prob(tok, ids, alpha, logz, data):.6g}\t{mark}\t{' '.join(shown[i] for i in ids)}\n")
    if check is not None:
        _check_sampler(tok, data, alpha, logz, segmentations, check, threads, shown, out)
    out.flush()


def _score(tok, ids: Sequence[int], data: bytes | None = None) -> float:
    if data is not None and hasattr(tok, "score"):  # the lattice's own sum, when available
        return float(tok.score(data, list(ids)))
    logprobs = tok._logprobs
    return math.fsum(float(logprobs[i - FIRST_PIECE_ID]) for i in ids)


def _prob(tok, ids: Sequence[int], alpha: float, logz: float, data: bytes) -> float:
    return math.exp(alpha * _score(tok, ids, data) - logz)


def _log_partition(tok, data: bytes, alpha: float) -> float:
    if hasattr(tok, "log_partition"):
        with contextlib.suppress(TypeError):
            return float(tok.log_partition(data, alpha))
    raise TypeError(f"{type(tok).__name__} has no log_partition")


def _chunk_starts(data: bytes) -> list[int]:
    """Positions where the lattice starts a new chunk (after a run of newlines)."""
    return [p for p in range(1, len(data)) if data[p - 1] == 10 and data[p] != 10]


def enumerate_segmentations(data: bytes, pieces: dict, max_len: int, limit: int = ENUMERATION_LIMIT):
    """Every segmentation of ``data`` into pieces (as id tuples), in the lattice's chunks.

    ``pieces`` maps piece bytes to ids. Raises ValueError when there are more than ``limit``.
    """
    n = len(data)
    starts = set(_chunk_starts(data))
    # ends[s]: ids and ends of the pieces that start at s and do not cross a chunk start
    ends: list[list[tuple[int, int]]] = []
    for s in range(n):
        here = []
        for e in range(s + 1, min(n, s + max_len) + 1):
            if e - 1 in starts and e - 1 > s:
                break
            i = pieces.get(data[s:e])
            if i is not None:
                here.append((i, e))
        ends.append(here)
    counts = [0] * (n + 1)
    counts[n] = 1
    for s in range(n - 1, -1, -1):
        counts[s] = sum(counts[e] for _, e in ends[s])
    if counts[0] > limit:
        raise ValueError(f"the text has {counts[0]} segmentations; at most {limit} can be enumerated")
    found: list[tuple[int, ...]] = []

    def walk(s: int, prefix: tuple[int, ...]) -> None:
        if s == n:
            found.append(prefix)
            return
        for i, e in ends[s]:
            walk(e, prefix + (i,))

    sys_limit = sys.getrecursionlimit()
    if n + 100 > sys_limit:
        sys.setrecursionlimit(n + 100)
    try:
        walk(0, ())
    finally:
        sys.setrecursionlimit(sys_limit)
    return found


def _enumerate_for_check(tok, data: bytes) -> list[tuple[int, ...]]:
    pieces = {p: i for i, p in enumerate(tok._id_bytes) if i >= FIRST_PIECE_ID}
    max_len = max(len(p) for p in tok._id_bytes)
    try:
        return enumerate_segmentations(data, pieces, max_len)
    except ValueError as error:
        raise CliError(f"--check: {error}; try a shorter TEXT") from None


def _check_sampler(tok, data, alpha, logz, segmentations, draws, threads, shown, out) -> None:
    log_weights = [alpha * _score(tok, seg) for seg in segmentations]
    top = max(log_weights)
    logz_enum = top + math.log(math.fsum(math.exp(w - top) for w in log_weights))
    exact = {seg: math.exp(w - logz_enum) for seg, w in zip(segmentations, log_weights)}
    observed: dict = {}
    done = 0
    while done < draws:
        step = min(100_000, draws - done)
        for ids in tok.encode_batch([data] * step, alpha=alpha, keys=range(done, done + step), num_threads=threads):
            key = tuple(ids)
            observed[key] = observed.get(key, 0) + 1
        done += step
    unknown = [seg for seg in observed if seg not in exact]
    if unknown:
        raise CliError(
            f"--check: the sampler produced a segmentation that enumeration did not find: "
            f"{' '.join(shown[i] for i in unknown[0])}"
        )
    statistic, dof, pooled = chi_square([(exact[seg] * draws, observed.get(seg, 0)) for seg in segmentations])
    p_value = chi_square_sf(statistic, dof) if dof > 0 else 1.0
    out.write(
        f"# check: {draws} draws, {len(segmentations)} segmentations, "
        f"log Z by enumeration={logz_enum:.6f} (lattice {logz:.6f})\n"
    )
    out.write("# exact\tempirical\tcount\tpieces\n")
    ranked = sorted(segmentations, key=lambda seg: -exact[seg])
    for seg in ranked[:20]:
        c = observed.get(seg, 0)
        out.write(f"{exact[seg]:.6g}\t{c / draws:.6g}\t{c}\t{' '.join(shown[i] for i in seg)}\n")
    if len(ranked) > 20:
        rest = ranked[20:]
        c = sum(observed.get(seg, 0) for seg in rest)
        out.write(f"{math.fsum(exact[s] for s in rest):.6g}\t{c / draws:.6g}\t{c}\t({len(rest)} more segmentations)\n")
    note = f", {pooled} rare ones pooled" if pooled else ""
    out.write(f"# chi-square={statistic:.4f} df={dof} p-value={p_value:.4g}{note}\n")


def chi_square(cells: Sequence[tuple[float, int]], min_expected: float = 5.0) -> tuple[float, int, int]:
    """Pearson's statistic over (expected, observed) cells; cells expecting fewer than
    ``min_expected`` are pooled into one. Returns (statistic, degrees of freedom, pooled)."""
    kept = [(e, o) for e, o in cells if e >= min_expected]
    rare = [(e, o) for e, o in cells if e < min_expected]
    if rare:
        kept.append((math.fsum(e for e, _ in rare), sum(o for _, o in rare)))
    statistic = math.fsum((o - e) ** 2 / e for e, o in kept if e > 0)
    return statistic, max(len(kept) - 1, 0), len(rare)


def chi_square_sf(x: float, dof: int) -> float:
    """P(X >= x) for a chi-square variable with ``dof`` degrees of freedom (no scipy)."""
    if x <= 0:
        return 1.0
    return _upper_gamma_regularized(dof / 2.0, x / 2.0)


def _upper_gamma_regularized(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a): a power series below a + 1, a continued fraction above."""
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        k = a
        for _ in range(10_000):
            k += 1.0
            term *= x / k
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    # Lentz's method for the continued fraction of Gamma(a, x).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(1.0, math.exp(log_front) * h)


# ---------------------------------------------------------------------------
# info


@main.command()
@_model_option
@click.option(
    "--text",
    "text_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Also measure bytes per token (best segmentation) on this text file; repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a report.")
@click.option("--no-normalize", is_flag=True, help="Do not NFC-normalise the --text files.")
def info(model_path, text_paths, as_json, no_normalize):
    """Describe a model: sizes, special ids, piece lengths, compression on a text.

    \b
    Examples:
      bytepiece info -m my.model
      bytepiece info -m my.model --text corpora/en.heldout.txt
    """
    import zipfile

    tok = _load_tokenizer(model_path, normalize=False if no_normalize else None)
    normalize = _normalizer(tok)
    vocab = tok.vocabulary
    lengths: dict = {}
    for piece in vocab.pieces:
        lengths[len(piece)] = lengths.get(len(piece), 0) + 1
    not_utf8 = 0
    multi_digit = 0
    for piece in vocab.pieces:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            not_utf8 += len(piece) > 1
        if len(piece) > 1 and sum(48 <= b <= 57 for b in piece) > 1:
            multi_digit += 1
    report: dict = {
        "model": model_path,
        "file format": "zip" if zipfile.is_zipfile(model_path) else "json",
        "file bytes": os.path.getsize(model_path),
        "vocabulary size": tok.vocab_size,
        "pieces": len(vocab),
        "special ids": {name: i for i, name in enumerate(SPECIAL_NAMES)},
        "longest piece (bytes)": max(lengths),
        "piece lengths (bytes: pieces)": dict(sorted(lengths.items())),
        "multi-byte pieces that are not valid UTF-8": not_utf8,
        "pieces with two or more digits": multi_digit,
        "total count": sum(vocab.counts),
        "normalization": tok.normalization,
        "default alpha": tok.alpha,
        "special tokens": tok.special_tokens,
    }
    measured = []
    for path in text_paths:
        total_bytes = tokens = chars = 0
        for _name, _first, batch in _line_batches([path]):
            datas = batch if normalize is None else [normalize(line) for line in batch]
            for ids in tok.encode_batch(datas):
                tokens += len(ids)
            total_bytes += sum(len(d) for d in datas)
            chars += sum(len(d.decode("utf-8", "replace")) for d in datas)
        measured.append(
            {
                "text": "<stdin>" if path == "-" else path,
                "bytes": total_bytes,
                "characters": chars,
                "tokens": tokens,
                "bytes per token": round(total_bytes / tokens, 4) if tokens else None,
                "characters per token": round(chars / tokens, 4) if tokens else None,
            }
        )
    if measured:
        report["texts"] = measured
    out = _TextOut()
    if as_json:
        out.write(json.dumps(report, ensure_ascii=False) + "\n")
        out.flush()
        return
    out.write(f"model:               {model_path} ({report['file format']}, {report['file bytes']} bytes)\n")
    out.write(f"vocabulary size:     {tok.vocab_size} ({len(vocab)} pieces + {FIRST_PIECE_ID} special ids)\n")
    out.write("special ids:         " + ", ".join(f"{n}={i}" for i, n in enumerate(SPECIAL_NAMES)) + "\n")
    out.write(f"longest piece:       {max(lengths)} bytes\n")
    out.write(f"not valid UTF-8:     {not_utf8} multi-byte pieces\n")
    out.write(f"with 2+ digits:      {multi_digit} pieces\n")
    out.write(f"normalization:       {report['normalization']}\n")
    alpha = report["default alpha"]
    out.write(f"default alpha:       {alpha:g}" + (" (Viterbi)" if alpha < 0 else "") + "\n")
    specials = report["special tokens"]
    out.write("special tokens:      " + (", ".join(f"{t}={i}" for t, i in specials.items()) or "none") + "\n")
    out.write("piece lengths (bytes, pieces):\n")
    widest = max(lengths.values())
    for length, n in sorted(lengths.items()):
        bar = "#" * max(1, round(40 * n / widest))
        out.write(f"  {length:>3} {n:>7}  {bar}\n")
    for m in measured:
        if not m["tokens"]:
            out.write(f"text {m['text']}: empty\n")
            continue
        out.write(
            f"text {m['text']}: {m['bytes']} bytes, {m['tokens']} tokens, "
            f"{m['bytes per token']} bytes/token, {m['characters per token']} characters/token\n"
        )
    out.flush()
