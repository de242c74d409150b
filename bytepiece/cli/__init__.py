"""The ``bytepiece`` command line: train, encode, decode, encode-shards, sample, info.

This module holds the group (:func:`main`, the console script and ``python -m
bytepiece``) and how a run ends; each family of commands has a module of its own
(``train``, ``encode`` with ``decode`` and ``encode-shards``, ``sample``, ``info``),
and what they share is in ``common``. A command's module is imported when the
command runs (or its help is shown), so ``bytepiece encode`` does not load the
other commands.

Why it is built this way:

- stdout carries only data (ids, pieces, samples, reports); progress goes to
  stderr, and only when stderr is a terminal (a bar, redrawn in place) or
  ``--progress`` asks for it (then only stage lines, no bar); ``--quiet`` leaves
  only errors and warnings.
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
  interrupted run leaves the old file or none, never half of one. SIGTERM (``timeout``,
  ``docker stop``, a batch scheduler) is raised as an exception in the main thread, so
  that temporary files are removed on the way out as after Ctrl-C; the process then
  ends by that signal, as its parent expects.
- Runtime errors become one ``Error: ...`` line and exit status 1 (2 stays
  click's usage errors); ``bytepiece --debug ...`` shows the traceback. A
  reader that closes the pipe early (``| head``) ends the run quietly, with
  status 0.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

import click

from .. import __version__
from .common import STDOUT, CliError

__all__ = ["main", "CliError"]


class Interrupted(click.ClickException):
    """Ctrl-C: ``Error: interrupted``, exit status 130 (as a shell reports SIGINT)."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted")


class _Terminated(BaseException):
    """SIGTERM, raised where the main thread is: a BaseException, so that only cleanup
    (``finally``, ``except BaseException``) sees it on its way to :meth:`_Group.main`."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()


@contextlib.contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    """Turn SIGTERM into _Terminated while a run lasts, unless a handler of someone
    else's is installed (the CLI called from a program that handles it) or this is not
    the main thread (where handlers cannot be set)."""
    installed = threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    )
    if installed:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _describe(error: BaseException) -> str:
    """One line naming what went wrong and, when known, the file."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    if isinstance(error, MemoryError):
        return "out of memory"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    from ..model import ModelError

    if isinstance(error, (ModelError, ValueError, OSError)) and text:
        return text
    return f"{type(error).__name__}: {text} (run `bytepiece --debug ...` for a traceback)"


def _quiet_broken_pipe() -> None:
    # Point stdout at /dev/null so that the interpreter's final flush does not fail again.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _raised_by_echo(error: BaseException) -> bool:
    """Whether ``error`` was raised while click.echo wrote to stdout (a --help, a summary)."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is click.utils.echo.__code__:
            return not tb.tb_frame.f_locals.get("err")
        tb = tb.tb_next
    return False


# command name -> (module of this package, the click command in it)
# (a table, alike by shape with other tables such as training.options.TRAINER_ARGUMENTS)
_COMMANDS = {
    "decode": ("encode", "decode_command"),
    "encode": ("encode", "encode_command"),
    "encode-shards": ("encode", "encode_shards_command"),
    "info": ("info", "info_command"),
    "lattice": ("lattice", "lattice_command"),
    "sample": ("sample", "sample_command"),
    "train": ("train", "train_command"),
}


class _Group(click.Group):
    """Loads each command from its module on first use, and turns exceptions from any
    command into one-line errors (or tracebacks with --debug)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS and cmd_name not in self.commands:
            module, name = _COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(f"{__name__}.{module}"), name), cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in _COMMANDS:  # click suggests the nearest of self.commands
            for cmd_name in _COMMANDS:
                self.get_command(ctx, cmd_name)
        return super().resolve_command(ctx, args)

    def main(self, *args, **kwargs):
        """click's main, plus: a failure to write what click itself prints (--help and
        --version to a full disk, say) is one line on stderr and status 1, not a
        traceback."""
        self._debug_raised: OSError | None = None
        try:
            with _sigterm_as_exception():
                return super().main(*args, **kwargs)
        except _Terminated:
            # What the run had half made is gone; now end as SIGTERM ends a process.
            os.kill(os.getpid(), signal.SIGTERM)
            raise SystemExit(128 + signal.SIGTERM) from None  # (not reached, but where signals are delayed)
        except OSError as error:
            if kwargs.get("standalone_mode") is False or error is self._debug_raised:
                raise  # (--debug: a command's error with its traceback)
            _quiet_broken_pipe()
            if error.errno == errno.EPIPE:
                sys.exit(0)
            with contextlib.suppress(Exception):
                click.echo(f"Error: {STDOUT}: {error.strerror or error}", err=True)
            sys.exit(1)

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
                self._debug_raised = error
                raise
            if error.filename is None and _raised_by_echo(error):  # (click writing a command's --help)
                error = OSError(error.errno, error.strerror, STDOUT)
            if error.filename == STDOUT:
                _quiet_broken_pipe()  # (what is left in stdout's buffer must not fail again at exit)
            raise CliError(_describe(error)) from None
        except RecursionError:
            if debug:
                raise
            raise CliError("input nested too deeply to read") from None
        except Exception as error:
            if debug:
                raise
            raise CliError(_describe(error)) from None


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
      bytepiece lattice -m my.model "Hello world" --alpha 0.1
      bytepiece info -m my.model --text text.txt

    Run `bytepiece COMMAND --help` for each command's options.
    """
