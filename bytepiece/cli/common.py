"""What the commands share: their common options, reading inputs, writing outputs, errors.

Why it is built this way:

- Inputs are read as bytes, one line at a time, in batches of lines
  (:func:`line_batches`), so memory stays flat on files of any size. A line keeps
  its ending, so the ids of a file decode back to exactly that file.
- An output file is checked before any work is done (:func:`refuse_existing`) and
  written through :func:`bytepiece.atomic.atomic_write` (:func:`open_output`): a
  run that fails or is interrupted leaves the old file or none, never half of one,
  and never replaces a file without ``--force``.
- A command reports a runtime error by raising :class:`CliError`; the group in
  ``bytepiece.cli`` turns it, and any other exception, into one ``Error: ...`` line.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import IO

import click

from .._parallel import usable_cores
from ..progress import Progress

BATCH_LINES = 1000  # lines per batch (per thread, for encode)
BATCH_BYTES = 1 << 22  # ... or fewer, once a batch holds this many bytes
DEFAULT_MAX_LINE = 256_000_000  # bytes: the longest input line (--max-line)


class CliError(click.ClickException):
    """A runtime error: printed as one ``Error: ...`` line, exit status 1."""


# ---------------------------------------------------------------------------
# Options shared by several commands


#: Upper bounds of counting options: beyond them a value is a usage error (status 2),
#: not an OverflowError deep inside.
MAX_THREADS = 1024
MAX_LOCAL_WORKERS = 256
MAX_DRAWS = 10**9


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf (a usage error, status 2)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number is not None and not math.isfinite(number):
            self.fail(f"must be a finite number, not {value}", param, ctx)
        return number


def check_alpha(ctx, param, value):
    """click callback: --alpha must be finite and at most MAX_ALPHA (a usage error,
    status 2, otherwise)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, not {value}")
    from .._core.lattice import MAX_ALPHA

    if value is not None and value > MAX_ALPHA:
        raise click.BadParameter(
            f"must be at most {MAX_ALPHA:g} (past that, rounding decides near ties), not {value:g}"
        )
    return value


def max_line_option(f=None, *, what: str = "input"):
    """--max-line MB: the longest line read (0: no limit)."""

    def decorate(f):
        return click.option(
            "--max-line",
            "max_line",
            type=Megabytes(),
            default=DEFAULT_MAX_LINE / 1e6,
            show_default=True,
            metavar="MB",
            help=f"Longest {what} line, in MB (0: no limit). A longer one stops the run with an "
            "error naming it, instead of filling the memory (an input without newlines, such as "
            "/dev/zero, is one endless line).",
        )(f)

    return decorate(f) if f is not None else decorate


class Megabytes(click.ParamType):
    """A size in MB (a finite number >= 0) given as bytes: None for 0 (no limit)."""

    name = "MB"

    def convert(self, value, param, ctx):
        if value is None:
            return value
        try:
            mb = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of MB", param, ctx)
        if not math.isfinite(mb) or mb < 0 or mb > 1e12:
            self.fail(f"must be a finite number of MB from 0 to 1e12, not {value}", param, ctx)
        return None if mb == 0 else max(1, round(mb * 1e6))


def boundary_options(f):
    """--split-digits N and --boundary-regex REGEX: boundary constraints on each text
    (bytepiece.constraints), as a Boundaries in the parameter "boundaries"."""

    def compile_regex(ctx, param, value):
        if value is None:
            return None
        try:
            regex = re.compile(value)
        except re.error as error:
            raise click.BadParameter(f"{value!r} is not a regular expression: {error}") from None
        if regex.match(""):  # (a lookahead or \b matches no text only where it applies)
            raise click.BadParameter(
                f"{value!r} matches the empty string, so it would require a boundary almost everywhere; "
                "make it need some text ('x+', not 'x*'), or use a lookaround such as '(?=[A-Z])' for a "
                "boundary where it matches"
            )
        return regex

    f = click.option(
        "--boundary-regex",
        metavar="REGEX",
        callback=compile_regex,
        default=None,
        help="Every match of this Python regular expression is a whole run of pieces: no piece "
        "crosses its start or end (e.g. '\\S+' keeps words apart, '\\{\\{.*?\\}\\}' template fields).",
    )(f)
    return click.option(
        "--split-digits",
        type=click.IntRange(min=1),
        metavar="N",
        default=None,
        help="Keep digits in groups of N, right-aligned as numbers are written (1234567 as 1 234 567 "
        "with 3), never merged with what is around them.",
    )(f)


class Boundaries:
    """The required boundaries --split-digits and --boundary-regex give a text (its bytes
    as the tokenizer sees them); ``active`` is False when neither was given."""

    def __init__(self, split_digits: int | None, regex: re.Pattern | None):
        self.split_digits = split_digits
        self.regex = regex
        self.active = split_digits is not None or regex is not None
        if self.active:  # (imported once here: positions runs for every line)
            from .. import constraints

            self._constraints = constraints

    def positions(self, data: bytes) -> list[int] | None:
        if not self.active:
            return None
        c = self._constraints
        return c.merge(
            c.digit_groups(data, self.split_digits) if self.split_digits else None,
            c.regex_boundaries(data, self.regex) if self.regex is not None else None,
        )


def model_option(f):
    return click.option(
        "-m",
        "--model",
        "model_path",
        required=True,
        type=click.Path(exists=True, dir_okay=False),
        help="Model file: BytePiece JSON, or a zip holding one.",
    )(f)


def output_option(f=None, *, folder_help: str | None = None):
    """-o/--output and --force. With ``folder_help`` -o may also name a folder (what
    for, said in the help); the command then checks which it needs."""

    def decorate(f):
        f = click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")(f)
        return click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=folder_help is not None, allow_dash=True),
            default=None,
            help="Write here (atomically) instead of stdout." + (f" {folder_help}" if folder_help else ""),
        )(f)

    return decorate(f) if f is not None else decorate


QUIET_HELP = "Print no progress and no summary of the run; errors and warnings still print."


def progress_option(f=None, *, quiet_help: str = QUIET_HELP):
    """--progress/--no-progress and -q/--quiet."""

    def decorate(f):
        f = quiet_option(f, quiet_help=quiet_help)
        return click.option(
            "--progress/--no-progress",
            default=None,
            help="Show progress on stderr (default: a progress bar when stderr is a terminal, nothing otherwise).",
        )(f)

    return decorate(f) if f is not None else decorate


def quiet_option(f=None, *, quiet_help: str = QUIET_HELP):
    def decorate(f):
        return click.option("-q", "--quiet", is_flag=True, help=quiet_help)(f)

    return decorate(f) if f is not None else decorate


def inputs_argument(f):
    return click.argument(
        "inputs",
        nargs=-1,
        type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    )(f)


# (three options alike by shape on purpose: click declares each with its own type and help)
#: The smallest --dask-blocksize: a task per few bytes (1 was allowed) spent minutes in
#: the scheduler on a 300 KB file.
MIN_DASK_BLOCKSIZE = 1024


def dask_options(f):
    f = click.option(
        "--dask-blocksize",
        type=click.IntRange(min=MIN_DASK_BLOCKSIZE, max=2**62),
        default=None,
        metavar="BYTES",
        help=f"Bytes of input per Dask task (default 32 MiB; at least {MIN_DASK_BLOCKSIZE}: each block is a task, "
        "and tiny ones spend their time in the scheduler).",
    )(f)
    f = click.option(
        "--dask-local",
        type=click.IntRange(min=1, max=MAX_LOCAL_WORKERS),
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
        "read the inputs, so paths must be visible to them. Needs Dask: pip install 'dask[distributed]'.",
    )(f)


def dask_where(address, scheduler_file, local, blocksize) -> dict:
    """The --dask options as keyword arguments for bytepiece.distributed ({} for none)."""
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


# ---------------------------------------------------------------------------
# Cores

# The default number of workers of train: every usable core, but no more than this, so
# that a command run without options on a big shared machine does not take it over
# (--workers asks for more).
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    return min(usable_cores(), MAX_DEFAULT_WORKERS)


# ---------------------------------------------------------------------------
# The model


def load_tokenizer(path: str, seed=None, normalize: bool | None = None):
    """A Tokenizer for a model file. The parsed vocabulary of the last file loaded is
    kept (keyed by the file's real path, size and mtime), so commands run in one
    process parse it once."""
    from ..tokenizer import Tokenizer

    stat = os.stat(path)
    vocab = _vocabulary(path, (os.path.realpath(path), stat.st_size, stat.st_mtime_ns))
    return Tokenizer(vocab, seed=seed, normalize=normalize)


@functools.lru_cache(maxsize=1)
def _vocabulary(path: str, identity: tuple):
    from ..model import load_model

    return load_model(path)


def normalized(tok, lines: list[bytes]) -> list[bytes]:
    """Lines of bytes as ``tok`` sees them (the list itself when it does not normalise)."""
    if not tok.normalize:
        return lines
    normalize = tok.normalize_bytes
    return [normalize(line) for line in lines]


# ---------------------------------------------------------------------------
# Progress on stderr


def progress_meter(enabled: bool | None, stage: str, total: int | None = None, quiet: bool = False) -> Progress:
    """The progress report of a command (a bar on a terminal, ``encode: done in ...``);
    with ``enabled=None`` (no --progress/--no-progress) it is on when stderr is a
    terminal, and --quiet turns it off."""
    if quiet:
        if enabled:
            raise click.UsageError("--quiet and --progress contradict each other; give one")
        enabled = False
    return Progress(enabled, stage, total, prefix="")


def input_size(paths: Sequence[str]) -> int | None:
    """Bytes in all the inputs, or None when one is stdin or cannot be measured."""
    total = 0
    for path in paths:
        if path == "-":
            return None
        try:
            total += os.path.getsize(path)
        except OSError:
            return None
    return total


# ---------------------------------------------------------------------------
# Reading inputs


def binary_stream(stream) -> IO[bytes]:
    """The byte stream under sys.stdin / sys.stdout (as replaced by tests, too)."""
    return getattr(stream, "buffer", stream)


#: How errors name stdout (a write to a full disk, a closed pipe...).
STDOUT = "<stdout>"


def require_stdout(what: str = "the output") -> None:
    """Stop before any work when stdout is closed (``>&-``): there is nowhere to write
    ``what``."""
    if sys.stdout is None:
        raise CliError(f"stdout is closed: there is nowhere to write {what}")


def require_stdin() -> None:
    if sys.stdin is None:
        raise CliError("stdin is closed: there is no input to read (name the input files)")


def stdout_errors() -> contextlib.AbstractContextManager[None]:
    """Name stdout in a write error that names no file (a full disk, a file too large);
    a closed pipe (EPIPE) keeps its own handling."""
    return naming_errors(STDOUT, keep=(errno.EPIPE,))


def naming_input(name: str) -> contextlib.AbstractContextManager[None]:
    """Name the input in a read error that names no file (EIO from a failing disk or a
    network file system), which would otherwise pass for a write error on the output."""
    return naming_errors(name)


@contextlib.contextmanager
def naming_errors(name: str, keep: tuple[int, ...] = ()) -> Iterator[None]:
    """An OSError that names no file, raised again naming ``name`` (errnos in ``keep``
    pass as they are)."""
    try:
        yield
    except OSError as error:
        if error.filename is not None or error.errno in keep:
            raise
        raise OSError(error.errno, error.strerror, name) from error


@contextlib.contextmanager
def open_input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        require_stdin()
        yield binary_stream(sys.stdin)
    else:
        with open(path, "rb") as handle:
            yield handle


def line_batches(
    paths: Sequence[str], threads: int = 1, max_line: int | None = DEFAULT_MAX_LINE, option: bool = True
) -> Iterator[tuple[str, int, list[bytes]]]:
    """(input name, number of its first line, lines) in batches of BATCH_LINES lines per
    thread (or BATCH_BYTES bytes); lines keep their endings. No paths: stdin. A line
    longer than ``max_line`` bytes (None: no limit) stops with a CliError naming it,
    before more than that is read of it (``option``: the command has --max-line to raise
    the limit). A read error names the input. The consumer's own errors do not pass
    through here: a generator is suspended at its yield while the batch is used."""
    max_lines = BATCH_LINES * threads
    if not paths and getattr(sys.stdin, "isatty", lambda: False)():
        click.echo("bytepiece: reading from the terminal; end with Ctrl-D", err=True)
    for path in paths or ("-",):
        name = "<stdin>" if path == "-" else path
        with open_input(path) as handle:
            batch: list[bytes] = []
            size = 0
            first = 1
            if max_line is None:
                lines: Iterator[bytes] = iter(handle)
            else:
                lines = iter(functools.partial(handle.readline, max_line + 1), b"")
            with naming_input(name):
                for line in lines:
                    if max_line is not None and len(line) > max_line:
                        raise CliError(too_long(name, first + len(batch), max_line, option))
                    batch.append(line)
                    size += len(line)
                    if len(batch) >= max_lines or size >= BATCH_BYTES:
                        yield name, first, batch
                        first += len(batch)
                        batch, size = [], 0
            if batch:
                yield name, first, batch


def too_long(name: str, number: int, max_line: int, option: bool = True) -> str:
    """The error for a line over the limit; ``option``: the command has --max-line."""
    if not option:
        return f"{name} line {number}: longer than {max_line / 1e6:g} MB, the longest line this command reads"
    return (
        f"{name} line {number}: longer than {max_line / 1e6:g} MB; raise --max-line "
        "(0: no limit) if such a line is meant"
    )


# ---------------------------------------------------------------------------
# Writing outputs


class TextOut:
    """UTF-8 text to binary stdout, whatever the locale. When stdout is closed, the text
    goes to stderr with ``or_stderr`` (a report that must not be lost), else stopping
    with a CliError."""

    def __init__(self, or_stderr: bool = False) -> None:
        if sys.stdout is None and or_stderr and sys.stderr is not None:
            self.stream = binary_stream(sys.stderr)
        else:
            require_stdout()
            self.stream = binary_stream(sys.stdout)

    def write(self, text: str) -> None:
        with stdout_errors():
            self.stream.write(text.encode("utf-8", "surrogateescape"))

    def flush(self) -> None:
        with stdout_errors():
            self.stream.flush()


def refuse_existing(path: str, force: bool) -> None:
    """Check an output path before any work: not there (unless --force), in a writable
    folder. A character device, a FIFO or /dev/stdout is written into (nothing is
    replaced, so no --force is needed); a symbolic link's target is what gets replaced;
    a directory, socket or block device is refused."""
    from ..atomic import STREAM, check_output, output_kind

    try:
        if output_kind(path) == STREAM:
            return
        if not force and os.path.lexists(path):
            raise CliError(f"{path}: already exists; use --force to overwrite it")
        check_output(path)  # (the folder: there, and writable)
    except OSError as error:
        raise CliError(f"{path}: {error.strerror}") from None


def refuse_output_folder(path: str, force: bool = False) -> None:
    """Check a folder that will receive shards, before any work: a folder (or a path that
    can become one) that this process can write to, and empty unless --force. URLs are
    left to the workers (and to encode_files, which refuses a folder that is not empty)."""
    if "://" in path or "::" in path:
        return
    if os.path.lexists(path) and not os.path.isdir(path):
        raise CliError(f"{path}: exists and is not a folder; give a folder for the shards")
    if not force and os.path.isdir(path) and os.listdir(path):
        raise CliError(
            f"{path}: the folder is not empty; use --force to replace the shards in it "
            "(files that are not its shards are left alone)"
        )
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise CliError(f"{path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"{path}: the folder {existing} is not writable")


def refuse_missing_inputs(paths: Sequence[str]) -> None:
    """Local inputs that do not exist stop the run before anything is made."""
    for path in paths:
        if "://" not in path and "::" not in path and not os.path.exists(path):
            raise CliError(f"{path}: no such file or folder")


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """Say "already exists" when the output appeared while the command ran (without
    --force). Write errors name the output already (atomic_write names its path, not
    its temporary file)."""
    try:
        yield
    except FileExistsError:
        raise CliError(f"{path}: already exists; use --force to overwrite it") from None


@contextlib.contextmanager
def open_output(path: str | None, force: bool) -> Iterator[IO[bytes]]:
    """Binary stdout, or an atomic file that appears only if the command succeeds."""
    if path is None or path == "-":
        require_stdout("the output; give -o FILE")
        stream = binary_stream(sys.stdout)
        with stdout_errors():
            yield stream
            stream.flush()
        return
    from ..atomic import atomic_write

    refuse_existing(path, force)
    with writing(path), atomic_write(path, "wb", overwrite=force) as handle:
        yield handle
