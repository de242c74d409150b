"""Atomic file output: write to a temporary file beside the target, then rename.

Every file the project writes (models, encoded outputs) goes through
:func:`atomic_write`, so an interrupted or failing write leaves the previous
file (or no file) in place, never a truncated one. A writer killed outright
cannot remove its temporary file; the next write to the same target does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_write(
    path: PathLike, mode: str = "w", *, overwrite: bool = True, encoding: str | None = None
) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path``.

    >>> with atomic_write("out.txt") as f:   # doctest: +SKIP
    ...     f.write("all or nothing")

    ``mode`` is ``"w"`` (text, UTF-8 unless ``encoding`` says otherwise) or
    ``"wb"``. With ``overwrite=False`` an existing ``path`` raises
    :class:`FileExistsError` before anything is written, and the final rename
    refuses to clobber a file that appeared meanwhile.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}")
    path = os.fspath(path)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path}: file exists (refusing to overwrite)")
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    _sweep_dead_writers(directory, base)
    import tempfile  # (here, so that `import bytepiece` does not load it)

    fd, tmp = tempfile.mkstemp(prefix=f".{base}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        handle: IO
        if mode == "w":
            handle = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="")
        else:
            handle = os.fdopen(fd, "wb")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _set_default_permissions(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with FileExistsError instead of clobbering
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _sweep_dead_writers(directory: str, base: str) -> None:
    """Remove temporaries left beside ``base`` by writers that were killed outright
    (SIGKILL, power loss): their names carry the writer's pid, and a pid that no
    longer runs cannot be writing. A live pid (even a reused one) is left alone."""
    prefix = f".{base}."
    try:
        entries = [e.name for e in os.scandir(directory) if e.name.startswith(prefix) and e.name.endswith(".tmp")]
    except OSError:
        return
    for name in entries:
        pid_text = name[len(prefix) :].split(".", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
        except (PermissionError, OverflowError, ValueError):
            pass  # alive under another user, or not a pid: leave it


# Read once at import: os.umask can only be read by setting it, which races with other threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _set_default_permissions(path: str) -> None:
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    os.chmod(path, 0o666 & ~_UMASK)
