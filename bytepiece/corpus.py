"""Reading a training corpus as a stream of blocks, and cutting text into chunks.

A corpus is either an iterable of ``str`` (each one a document, as BytePiece
0.6.3's ``Trainer.train`` takes them) or a list of files and folders (a folder
gives the files under it that :func:`select_files` chooses: not hidden, not
binary, matching the include/exclude patterns if any). Either
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
from fnmatch import fnmatchcase
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


#: Folders never walked into, besides hidden ones (names starting with ".").
SKIPPED_FOLDERS = frozenset({"__pycache__"})
#: Bytes of a file looked at to tell whether it is binary.
SNIFF_BYTES = 8192
#: The first bytes of formats that are never text: gzip, xz, zstd, 7z, zip, PNG, JPEG,
#: GIF, PDF, ELF, WebAssembly (and bzip2, whose "BZh" is checked further).
BINARY_SIGNATURES = (
    b"\x1f\x8b",
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",
    b"7z\xbc\xaf\x27\x1c",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"%PDF-",
    b"\x7fELF",
    b"\x00asm",
)


def looks_binary(head: bytes) -> bool:
    """Whether a file starting with ``head`` (its first :data:`SNIFF_BYTES` bytes) is
    binary: it holds a NUL byte, or starts with a known binary signature.

    >>> looks_binary(b"plain text\\n"), looks_binary(b"\\x1f\\x8b\\x08rest"), looks_binary(b"a\\x00b")
    (False, True, True)
    """
    if b"\x00" in head:
        return True
    if head.startswith(b"BZh"):  # bzip2: "BZh", the block size 1-9, then the block magic
        return len(head) >= 10 and head[3] in b"123456789" and head[4:10] == b"1AY&SY"
    return head.startswith(BINARY_SIGNATURES)


class FileSelection:
    """The files :func:`select_files` chose: ``files`` (to read, in order) and
    ``skipped_binary`` (files in folders left out because they look binary)."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.skipped_binary: list[str] = []

    def __repr__(self) -> str:
        return f"FileSelection({len(self.files)} files, {len(self.skipped_binary)} skipped as binary)"


def _patterns(patterns, name: str) -> tuple[str, ...]:
    if patterns is None:
        return ()
    if isinstance(patterns, str):
        patterns = [patterns]
    out = tuple(patterns)
    for pattern in out:
        if not isinstance(pattern, str):
            raise TypeError(f"{name} must be glob patterns (str), not {pattern!r}")
        if not pattern:
            raise CorpusError(f"{name}: an empty pattern matches no file")
    return out


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    """Whether the path ``rel`` (relative to the folder given, "/" between its parts) or
    its last part matches one of the fnmatch patterns."""
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatchcase(rel, p) or fnmatchcase(name, p) for p in patterns)


def _describe_patterns(include: tuple[str, ...], exclude: tuple[str, ...]) -> str:
    said = []
    if include:
        said.append("include " + " ".join(repr(p) for p in include))
    if exclude:
        said.append("exclude " + " ".join(repr(p) for p in exclude))
    return "; ".join(said)


def select_files(
    paths: PathLike | Iterable[PathLike],
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
) -> FileSelection:
    """The files to read for ``paths``: files named directly (always taken, whatever
    they hold), plus the files under each folder (recursively, sorted) that

    - are not hidden, nor in a hidden folder or a ``__pycache__`` folder;
    - match one of the ``include`` patterns, if any are given, and none of the
      ``exclude`` patterns (a folder matching an ``exclude`` pattern is not walked).
      Patterns are fnmatch globs (``*``, ``?``, ``[...]``; ``*`` also matches "/"),
      matched against the path relative to the folder given (with "/" between
      folders) and against the file name: ``include="*.txt"`` takes ``a.txt`` and
      ``sub/b.txt``, ``exclude="sub/*"`` leaves out everything under ``sub``;
    - do not look binary (see :func:`looks_binary`: a NUL byte in their first 8 KB, or
      the signature of gzip, zip, PNG, JPEG, PDF...): these are left out and listed in
      ``skipped_binary``.

    Raises :class:`CorpusError` for missing or unreadable paths, and
    :class:`EmptyCorpusError` (one line naming the folder and the patterns) for a
    folder that yields no file, before anything is read.

    >>> select_files(["corpora/"], include="*.train.txt", exclude="zh.*").files
    ['corpora/code.train.txt', 'corpora/en.train.txt']
    """
    include_p = _patterns(include, "include")
    exclude_p = _patterns(exclude, "exclude")
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    selection = FileSelection()
    for p in paths:
        p = os.fspath(p)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        if os.path.isdir(p):
            _select_in_folder(p, include_p, exclude_p, selection)
        elif os.path.exists(p):
            _check_file(p)
            selection.files.append(p)
        else:
            raise CorpusError(f"{p}: no such file or folder")
    return selection


def _select_in_folder(folder: str, include: tuple[str, ...], exclude: tuple[str, ...], selection: FileSelection):
    found: list[tuple[str, str]] = []  # (path, path relative to the folder)
    for root, dirs, names in os.walk(folder, onerror=_walk_error):
        rel_root = os.path.relpath(root, folder).replace(os.sep, "/")
        prefix = "" if rel_root == "." else rel_root + "/"
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS and not _matches(prefix + d, exclude)
        )
        for n in names:
            rel = prefix + n
            if n.startswith(".") or (include and not _matches(rel, include)) or _matches(rel, exclude):
                continue
            found.append((os.path.join(root, n), rel))
    skipped = 0
    taken = 0
    for f, _rel in sorted(found):
        _check_file(f)
        if _file_looks_binary(f):
            selection.skipped_binary.append(f)
            skipped += 1
        else:
            selection.files.append(f)
            taken += 1
    if not taken:
        patterns = _describe_patterns(include, exclude)
        if patterns:
            why = f"no file in this folder matches the patterns ({patterns})"
            if skipped:
                why += f", but {skipped} binary file(s) skipped"
        elif skipped:
            why = f"no file to train on in this folder ({skipped} skipped as binary)"
        else:
            why = "no file to train on in this folder (it is empty, or holds only hidden files)"
        raise EmptyCorpusError(f"{folder}: {why}")


def _check_file(f: str) -> None:
    if not os.path.isfile(f):
        raise CorpusError(f"{f}: not a regular file")
    if not os.access(f, os.R_OK):
        raise CorpusError(f"{f}: not readable (permission denied)")


def _file_looks_binary(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as error:
        raise CorpusError(f"{path}: cannot open ({error.strerror})") from error
    return looks_binary(head)


def expand_paths(
    paths: PathLike | Iterable[PathLike],
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
) -> list[str]:
    """Files named directly, plus every file under each folder (recursively, sorted;
    hidden entries, ``__pycache__`` folders and binary files skipped) that matches the
    ``include`` and ``exclude`` glob patterns: :func:`select_files` says how. Raises
    CorpusError for missing or unreadable paths and for a folder that yields no file."""
    return select_files(paths, include, exclude).files


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

    def __init__(self, paths, errors: str = "strict", include=None, exclude=None):
        if errors not in ERROR_MODES:
            raise ValueError(f"errors must be one of {ERROR_MODES}, not {errors!r}")
        selection = select_files(paths, include, exclude)
        self.files = selection.files
        self.skipped_binary = selection.skipped_binary
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
