"""Atomic file output: write to a temporary file beside the target, then rename.

Every file the project writes (models, encoded outputs) goes through
:func:`atomic_write`, so an interrupted or failing write leaves the previous
file (or no file) in place, never a truncated one. A writer killed outright
cannot remove its temporary file; the next write to the same target does.

What a path names decides how it is written (as ``cp``, ``tee`` and shells do):

- a regular file, or nothing yet: atomically, as above;
- a symbolic link: the file it points to is replaced atomically, the link is kept;
- a character device (``/dev/null``), a FIFO, or one of this process's open file
  descriptors (``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``,
  ``/proc/self/fd/N``): written *into*, in place (there is nothing to rename over,
  so this is not atomic);
- anything else (a directory, a socket, a block device) is refused with an
  :class:`OSError` naming the path, before anything is written.

Where the file system does not allow hard links (FAT, exFAT, some FUSE mounts), the
no-overwrite rename (``overwrite=False``) falls back to creating the target
exclusively and renaming over that placeholder: it still never replaces a file it
did not create.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterator
from typing import IO, Union

PathLike = Union[str, "os.PathLike[str]"]

# Write errors that concern the file being written even when the OS names no file.
_OUTPUT_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EFBIG", "EDQUOT", "EIO", "EROFS") if hasattr(errno, name)
)
# os.link fails with these where the file system has no hard links.
_NO_LINKS = frozenset(
    getattr(errno, name) for name in ("EPERM", "EOPNOTSUPP", "ENOTSUP", "ENOSYS", "EMLINK") if hasattr(errno, name)
)
# A temporary output file: created here and only here (as mkstemp opens its files).
_TEMPORARY_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
) | getattr(os, "O_BINARY", 0)
_FD_PATH = re.compile(r"^/(?:dev/fd|proc/self/fd)/([0-9]+)$")
_STD_PATHS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}

#: What :func:`output_kind` says about a path.
FILE, STREAM = "file", "stream"


def _own_fd(path: str) -> int | None:
    """The file descriptor that /dev/stdout, /dev/fd/N or /proc/self/fd/N names, else None."""
    norm = os.path.normpath(os.path.abspath(path))
    if norm in _STD_PATHS:
        return _STD_PATHS[norm]
    match = _FD_PATH.match(norm)
    return int(match.group(1)) if match else None


def _kind_name(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def output_kind(path: PathLike) -> str:
    """How :func:`atomic_write` would write ``path``: :data:`FILE` (atomically, at
    :func:`output_target`) or :data:`STREAM` (into it, in place). Raises
    :class:`OSError` naming the path for what it refuses (a directory, a socket, a
    block device)."""
    path = os.fspath(path)
    if _own_fd(path) is not None:
        return STREAM
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return FILE  # nothing there yet (or a link to nothing: its target is created)
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return STREAM
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file to write", path)
    raise OSError(errno.EINVAL, f"is {_kind_name(mode)}, not a regular file: refusing to replace it", path)


def check_output(path: PathLike) -> None:
    """Raise, before any work, the OSError naming ``path`` that :func:`atomic_write` would
    raise for where the path points: a directory, socket or block device there, no folder
    to hold it, or one this process cannot write to. (What only the write can tell, a
    full disk, is still the write's.)"""
    if output_kind(path) == STREAM:
        return
    folder = os.path.dirname(os.path.abspath(output_target(path)))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"the folder {folder} does not exist", os.fspath(path))
    if not os.access(folder, os.W_OK):
        raise PermissionError(errno.EACCES, f"the folder {folder} is not writable", os.fspath(path))


def output_target(path: PathLike) -> str:
    """The file an atomic write of ``path`` replaces: the path itself, or the file a
    symbolic link at ``path`` points to (followed to its end)."""
    path = os.fspath(path)
    return os.path.realpath(path) if os.path.islink(path) else path


@contextlib.contextmanager
def atomic_write(
    path: PathLike, mode: str = "w", *, overwrite: bool = True, encoding: str | None = None
) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path``.

    >>> with atomic_write("out.txt") as f:
    ...     _ = f.write("all or nothing")
    >>> from pathlib import Path
    >>> Path("out.txt").read_text()
    'all or nothing'

    ``mode`` is ``"w"`` (text, UTF-8 unless ``encoding`` says otherwise) or
    ``"wb"``. With ``overwrite=False`` an existing ``path`` raises
    :class:`FileExistsError` before anything is written, and the final rename
    refuses to clobber a file that appeared meanwhile. A symbolic link is followed
    (its target is replaced); a character device, a FIFO or ``/dev/stdout`` is
    written into; see the module's docstring.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}")
    path = os.fspath(path)
    if output_kind(path) == STREAM:
        with _named_errors(path), _stream_handle(path, mode, encoding) as stream:
            yield stream
            stream.flush()
        return
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "file exists (refusing to overwrite)", path)
    target = output_target(path)
    directory = os.path.dirname(os.path.abspath(target))
    base = os.path.basename(target)
    _sweep_dead_writers(directory, base)
    tmp = None
    try:
        # `tmp` names the temporary file before it exists, so that an interrupt (Ctrl-C,
        # a SIGTERM handler) landing as it is created still finds it to remove.
        while tmp is None:
            tmp = os.path.join(directory, f".{base}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
            try:
                with _named_errors(path, tmp):  # (a missing folder names the output)
                    fd = os.open(tmp, _TEMPORARY_FLAGS, 0o600)
            except FileExistsError:
                tmp = None  # (another's file: pick another name)
        with _named_errors(path, tmp):
            with _fd_handle(fd, mode, encoding) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            _set_default_permissions(tmp)
            if overwrite:
                os.replace(tmp, target)
            else:
                _rename_no_clobber(tmp, target)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


@contextlib.contextmanager
def _stream_handle(path: str, mode: str, encoding: str | None) -> Iterator[IO]:
    """A handle that writes into a device, a FIFO or an open descriptor of ours."""
    own = _own_fd(path)
    if own is not None:
        try:
            fd = os.dup(own)
        except OSError as error:
            raise OSError(error.errno, f"cannot write there ({error.strerror})", path) from None
    else:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    with _fd_handle(fd, mode, encoding) as handle:
        yield handle


def _fd_handle(fd: int, mode: str, encoding: str | None) -> IO:
    """A file object over descriptor fd: text ("w": UTF-8 unless told, newlines as written)
    or binary ("wb")."""
    if mode == "w":
        return os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="")
    return os.fdopen(fd, "wb")


@contextlib.contextmanager
def _named_errors(path: str, tmp: str | None = None) -> Iterator[None]:
    """Name ``path`` in a write error (disk full, file too large, ...) that names no file
    or names the temporary file."""
    try:
        yield
    except OSError as error:
        if error.filename is not None and error.filename != tmp:
            raise
        if error.filename is None and error.errno not in _OUTPUT_ERRNOS:
            raise
        raise _with_filename(error, path) from error


def _with_filename(error: OSError, path: str) -> OSError:
    try:
        named = type(error)(error.errno, error.strerror, path)
    except TypeError:  # an OSError subclass with other arguments
        named = OSError(error.errno, error.strerror, path)
    return named


def _rename_no_clobber(tmp: str, target: str) -> None:
    """Move ``tmp`` to ``target`` unless ``target`` exists (FileExistsError then).

    A hard link is atomic and fails on an existing name. Where the file system has
    none, ``target`` is created exclusively (the same refusal) and ``tmp`` renamed
    over that placeholder of ours."""
    try:
        os.link(tmp, target)  # fails with FileExistsError instead of clobbering
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in _NO_LINKS:
            raise
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        os.close(os.open(target, flags, 0o666 & ~_UMASK))
        try:
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(target)  # our empty placeholder
            raise
        return
    os.unlink(tmp)


def _sweep_dead_writers(directory: str, base: str) -> None:
    """Remove temporaries left beside ``base`` by writers that were killed outright
    (SIGKILL, power loss): their names carry the writer's pid."""
    remove_files_of_dead_processes(directory, f".{base}.", ".tmp", ".")


def remove_files_of_dead_processes(folder: str, prefix: str, suffix: str, separator: str) -> None:
    """Remove the files ``PREFIX<pid>SEPARATOR...SUFFIX`` in ``folder`` whose pid no longer
    runs: scratch files of processes killed outright, which a live process names after
    its own pid. A live pid (even a reused one), this process's own, or a name that is no
    pid is left alone."""
    try:
        names = [e.name for e in os.scandir(folder) if e.name.startswith(prefix) and e.name.endswith(suffix)]
    except OSError:
        return
    for name in names:
        pid_text = name[len(prefix) :].split(separator, 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
        except (PermissionError, OverflowError, ValueError):
            pass  # alive under another user, or not a pid: leave it


# Read once at import: os.umask can only be read by setting it, which races with other threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _set_default_permissions(path: str) -> None:
    # The temporary file is created 0600; give the result the permissions a plain open() would.
    os.chmod(path, 0o666 & ~_UMASK)
