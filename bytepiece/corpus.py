"""Reading a training corpus as a stream of blocks, and cutting text into chunks.

A corpus is either an iterable of ``str`` (each one a document, as BytePiece
0.6.3's ``Trainer.train`` takes them) or a list of files and folders. Either
way it is read one block at a time (a list of documents adding up to roughly
``block_chars`` characters), so the whole corpus is never in memory. Block
boundaries depend only on the corpus and ``block_chars``, never on the number
of workers, which keeps training deterministic.

Files are read in binary mode and split at the end of a run of newlines
(where 0.6.3's chunking would cut anyway), so a large file becomes several
documents without changing a single chunk. Invalid UTF-8 raises
:class:`CorpusEncodingError` naming the file and the byte offset, unless
``errors="replace"`` (U+FFFD) or ``errors="bytes"`` (train on the raw bytes:
no NFC, chunks cut on the bytes) is asked for.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]

#: 0.6.3 cuts chunks at this many characters.
MAX_CHUNK_CHARS = 10000
#: Files are read this many bytes at a time.
READ_SIZE = 1 << 20
ERROR_MODES = ("strict", "replace", "bytes")


class CorpusError(ValueError):
    """The corpus cannot be used (missing or unreadable path, empty corpus...)."""


class EmptyCorpusError(CorpusError):
    """The corpus holds no text at all."""


class CorpusEncodingError(CorpusError):
    """A corpus file is not valid UTF-8."""

    def __init__(self, path: str, offset: int, reason: str):
        self.path = path
        self.offset = offset
        super().__init__(
            f"{path}: not valid UTF-8 at byte offset {offset} ({reason}); "
            "pass errors='replace' to replace bad bytes, or errors='bytes' to train on raw bytes"
        )


@lru_cache(maxsize=8)
def _chunk_regex(maxlen: int, isolate_digits: bool, raw: bool):
    if maxlen > 0:
        if isolate_digits:
            pattern = rf"\d|[^\n\d]{{,{maxlen}}}\n{{1,100}}|[^\n\d]{{1,{maxlen}}}"
        else:
            pattern = rf".{{,{maxlen}}}\n{{1,100}}|.{{1,{maxlen}}}"
    else:
        pattern = r"\d|[^\n\d]*\n+|[^\n\d]+" if isolate_digits else r".*\n+|.+"
    if raw:
        # \d on bytes is ASCII digits only; 0.6.3 never ran on raw bytes, so this is our choice.
        return re.compile(pattern.encode("ascii"))
    return re.compile(pattern)


def normalize(text: str, maxlen: int = 0, isolate_digits: bool = False, form: str = "NFC") -> list[bytes]:
    """NFC (or the normal form ``form``; "none" keeps the text as it is), then the UTF-8
    chunks BytePiece 0.6.3's ``normalize`` returns.

    >>> normalize("ab\\n\\ncd", 10000)
    [b'ab\\n\\n', b'cd']
    """
    if form != "none":
        text = unicodedata.normalize(form, text)  # type: ignore[arg-type]
    return [t.encode("utf-8") for t in _chunk_regex(maxlen, isolate_digits, False).findall(text)]


def normalize_bytes(data: bytes, maxlen: int = 0, isolate_digits: bool = False) -> list[bytes]:
    """The chunking of :func:`normalize` applied to raw bytes (no NFC, no decoding)."""
    return _chunk_regex(maxlen, isolate_digits, True).findall(data)


def chunk_block(block: Sequence[str | bytes], isolate_digits: bool = False, form: str = "NFC") -> list[bytes]:
    """All chunks of a block of documents (str: normalised with ``form``; bytes: raw mode)."""
    out: list[bytes] = []
    for doc in block:
        if isinstance(doc, bytes):
            out.extend(normalize_bytes(doc, MAX_CHUNK_CHARS, isolate_digits))
        else:
            out.extend(normalize(doc, MAX_CHUNK_CHARS, isolate_digits, form))
    return out


# ---------------------------------------------------------------------------
# Paths


def expand_paths(paths: PathLike | Iterable[PathLike]) -> list[str]:
    """Files named directly, plus every file under each folder (recursively, sorted,
    hidden entries skipped). Raises CorpusError for missing or unreadable paths."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    files: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        if os.path.isdir(p):
            found: list[str] = []
            for root, dirs, names in os.walk(p, onerror=_walk_error):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(root, n) for n in names if not n.startswith("."))
            files.extend(sorted(found))
        elif os.path.exists(p):
            files.append(p)
        else:
            raise CorpusError(f"{p}: no such file or folder")
    for f in files:
        if not os.path.isfile(f):
            raise CorpusError(f"{f}: not a regular file")
        if not os.access(f, os.R_OK):
            raise CorpusError(f"{f}: not readable (permission denied)")
    return files


def _walk_error(error: OSError) -> None:
    raise CorpusError(f"{error.filename}: cannot list folder ({error.strerror})") from error


def _split_point(buf: bytes) -> int:
    """The last position p with buf[p-1] == '\\n' and buf[p] != '\\n' (0 if none)."""
    i = len(buf) - 1
    while True:
        i = buf.rfind(b"\n", 0, i)
        if i < 0:
            return 0
        if buf[i + 1] != 10:
            return i + 1
        # inside a run of newlines: look further left


def iter_file_documents(path: str, errors: str = "strict", read_size: int = READ_SIZE) -> Iterator[str | bytes]:
    """The contents of one file as a stream of documents of roughly read_size bytes, each
    ending where a run of newlines ends (or at the end of the file)."""
    if errors not in ERROR_MODES:
        raise ValueError(f"errors must be one of {ERROR_MODES}, not {errors!r}")
    offset = 0  # file offset of buf[0]
    buf = b""
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise CorpusError(f"{path}: cannot open ({error.strerror})") from error
    with handle:
        while True:
            try:
                data = handle.read(read_size)
            except OSError as error:
                raise CorpusError(f"{path}: read error at byte {offset + len(buf)} ({error.strerror})") from error
            if data:
                buf += data
                cut = _split_point(buf)
                if cut == 0 and len(buf) < 16 * read_size:
                    continue  # no safe place to cut yet: read more
                if cut == 0:
                    cut = _safe_fallback_cut(buf)
            else:
                cut = len(buf)
            if cut:
                yield _decode(buf[:cut], path, offset, errors)
                offset += cut
                buf = buf[cut:]
            if not data:
                return


def _safe_fallback_cut(buf: bytes) -> int:
    # A 16 MB line: cut at a UTF-8 character boundary (chunks may then differ
    # from 0.6.3's at this one place, which only happens on pathological input).
    cut = len(buf) - 1
    while cut > 0 and 0x80 <= buf[cut] < 0xC0:
        cut -= 1
    return cut


def _decode(data: bytes, path: str, offset: int, errors: str) -> str | bytes:
    if errors == "bytes":
        return data
    try:
        return data.decode("utf-8", errors="strict" if errors == "strict" else "replace")
    except UnicodeDecodeError as error:
        raise CorpusEncodingError(path, offset + error.start, error.reason) from None


# ---------------------------------------------------------------------------
# Sources: re-iterable streams of documents with a size estimate for progress.


class TextSource:
    """Documents from an iterable of str (iterated once per pass)."""

    def __init__(self, texts: Iterable[str]):
        if isinstance(texts, (str, bytes)):
            raise TypeError(
                "texts must be an iterable of str (documents), not a single "
                f"{type(texts).__name__}; use train_files() for paths"
            )
        self.texts = texts
        self.count: int | None
        try:
            self.count = len(texts)  # type: ignore[arg-type]
        except TypeError:
            self.count = None
        self.total_bytes = None

    def __iter__(self) -> Iterator[str]:
        for i, text in enumerate(self.texts):
            if not isinstance(text, str):
                raise TypeError(f"texts must be str; item {i} is {type(text).__name__}")
            yield text

    def describe(self) -> str:
        return f"{self.count} texts" if self.count is not None else "texts"


def reiterable_texts(texts: Iterable[str]) -> TextSource:
    """A TextSource of documents that may be read more than once: a generator (whose
    second pass would find nothing) is refused."""
    source = TextSource(texts)
    if iter(texts) is texts:
        raise TypeError(
            "texts must be re-iterable (a list, or an object whose __iter__ "
            "starts over): it may be read twice; a generator can be read only once"
        )
    return source


class FileSource:
    """Documents read from files and folders."""

    def __init__(self, paths, errors: str = "strict"):
        if errors not in ERROR_MODES:
            raise ValueError(f"errors must be one of {ERROR_MODES}, not {errors!r}")
        self.files = expand_paths(paths)
        self.errors = errors
        self.count = None
        self.total_bytes = sum(os.path.getsize(f) for f in self.files)

    def __iter__(self) -> Iterator[str | bytes]:
        for f in self.files:
            yield from iter_file_documents(f, self.errors)

    def describe(self) -> str:
        return f"{len(self.files)} file(s), {self.total_bytes / 1e6:.1f} MB"


def iter_blocks(source: Iterable[str | bytes], block_chars: int, max_docs: int = 0) -> Iterator[list[str | bytes]]:
    """Groups documents into blocks of about block_chars characters (and at most
    max_docs documents when max_docs > 0)."""
    block: list[str | bytes] = []
    size = 0
    for doc in source:
        block.append(doc)
        size += len(doc)
        if size >= block_chars or (max_docs and len(block) >= max_docs):
            yield block
            block, size = [], 0
    if block:
        yield block
