"""The corpus as a Dask cluster's workers read it: byte ranges of files.

The driver only lists the files and their sizes and cuts them into ranges of
``blocksize`` bytes; a task moves its range's two ends forward to the next *end of a
run of newlines* (a position after a ``\\n`` and before a byte that is not one) and
reads what lies between. Those are the places where the local trainer's reader may cut
a file and where the chunking regex cuts anyway, so every chunk, and so every count, is
the same as in a local run. (A plain newline delimiter, as ``dask.bytes.read_bytes``
uses, could cut a run of blank lines in two and change a chunk.)
"""

from __future__ import annotations

import os
import re

from ..corpus import CorpusEncodingError, CorpusError, expand_paths
from .storage import fs_and_path, is_url

#: Bytes per block read by one task (before alignment to a run of newlines).
DEFAULT_BLOCKSIZE = 32 << 20
_SCAN = 1 << 16


def list_files(paths, storage_options: dict | None = None) -> list[tuple[str, int]]:
    """(path, size) of every input file. Local paths are expanded exactly as the
    local trainer does (folders recursively, sorted, hidden entries skipped) and
    made absolute; URLs are listed with fsspec the same way."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    out: list[tuple[str, int]] = []
    for p in paths:
        p = os.fsdecode(os.fspath(p))
        if not is_url(p):
            out.extend((os.path.abspath(f), os.path.getsize(f)) for f in expand_paths([p]))
            continue
        fs, root = fs_and_path(p, storage_options)
        protocol = p.split("://", 1)[0] + "://" if "://" in p else ""
        if fs.isdir(root):
            found = []
            for f in fs.find(root):
                rel = f[len(root.rstrip("/")) + 1 :] if f.startswith(root.rstrip("/") + "/") else f
                if any(part.startswith(".") for part in rel.split("/")):
                    continue
                found.append(f)
            for f in sorted(found):
                out.append((protocol + f if protocol and "://" not in f else f, fs.size(f)))
        elif fs.exists(root):
            out.append((p, fs.size(root)))
        else:
            raise CorpusError(f"{p}: no such file or folder")
    return out


def list_blocks(
    paths, blocksize: int = DEFAULT_BLOCKSIZE, storage_options: dict | None = None
) -> list[tuple[str, int, int]]:
    """(path, offset, length) byte ranges covering every input file; a task reading one
    moves both ends to the next end of a run of newlines (see :func:`read_block`)."""
    if blocksize < 1:
        raise ValueError(f"blocksize must be positive, not {blocksize!r}")
    blocks = []
    for path, size in list_files(paths, storage_options):
        for offset in range(0, size, blocksize):
            blocks.append((path, offset, min(blocksize, size - offset)))
    return blocks


_RUN_END = re.compile(rb"\n[^\n]")


def _aligned(handle, pos: int, size: int) -> int:
    """The first position p >= pos that is 0, the end of the file, or right after a
    newline and before a byte that is not a newline."""
    if pos <= 0:
        return 0
    if pos >= size:
        return size
    handle.seek(pos - 1)
    start = pos - 1  # file offset of buf[0]
    buf = handle.read(_SCAN)
    while True:
        m = _RUN_END.search(buf)
        if m:
            return start + m.start() + 1
        more = handle.read(_SCAN)
        if not more:
            return size
        keep = buf[-1:]  # a run may continue across the read
        start += len(buf) - 1
        buf = keep + more


def read_block(path: str, offset: int, length: int, storage_options: dict | None = None) -> tuple[int, bytes]:
    """(start, bytes) of the block owning byte range [offset, offset + length) of a file:
    from the first end of a run of newlines at or after offset to the first one at or
    after offset + length. Consecutive ranges give consecutive blocks that tile the file."""
    if is_url(path):
        fs, p = fs_and_path(path, storage_options)
        size = fs.size(p)
        opener = lambda: fs.open(p, "rb")
    else:
        size = os.path.getsize(path)
        opener = lambda: open(path, "rb")
    with opener() as handle:
        start = _aligned(handle, offset, size)
        end = _aligned(handle, offset + length, size)
        if end <= start:
            return start, b""
        handle.seek(start)
        return start, handle.read(end - start)


class BlockEncodingError(CorpusEncodingError):
    """A CorpusEncodingError that survives pickling (a worker's error reaches the driver)."""

    def __init__(self, path: str, offset: int, reason: str):
        super().__init__(path, offset, reason)
        self.reason = reason

    def __reduce__(self):
        return (BlockEncodingError, (self.path, self.offset, self.reason))


def block_documents(block, errors: str, storage_options) -> tuple[list, int, int]:
    """(documents, start, bytes) of a block: a file range (path, offset, length) is read
    here; a list is already the documents (str), sent by the driver (Trainer.train)."""
    if isinstance(block, list):
        return block, 0, 0
    path, offset, length = block
    start, data = read_block(path, offset, length, storage_options)
    if not data:
        return [], start, 0
    if errors == "bytes":
        return [data], start, len(data)
    try:
        text = data.decode("utf-8", "strict" if errors == "strict" else "replace")
    except UnicodeDecodeError as error:
        raise BlockEncodingError(path, start + error.start, error.reason) from None
    return [text], start, len(data)
