"""A model file's bytes: a JSON file's, or the one member of a zip, bounded in size.

Why it is its own module: reading is where a hostile or damaged file meets the loader
(a zip bomb, /dev/zero, a pipe, an archive with several members), so every read is
bounded by MAX_MODEL_BYTES and every failure becomes a ModelError naming the file. The
published models are zips in the simplest form, which are read without importing
zipfile (4 ms and 1 MB of a cold start); any other archive goes to zipfile. The parser
of the bytes is bytepiece.model (and _core.model_file).
"""

from __future__ import annotations

import io
import os
import stat
from typing import Any

from .model import ModelError

# The largest model file (or zip member, uncompressed) that is read: far above any real
# vocabulary (a million pieces take about 80 MB), and a bound on the memory a hostile
# file (a zip bomb, /dev/zero) can make the loader allocate.
MAX_MODEL_BYTES = 1 << 30


def read_model_bytes(path: str) -> bytes:
    """The model text of a file: a JSON file's bytes, or a zip's one member, at most
    MAX_MODEL_BYTES of them. A file is read once into memory, up to the limit, and
    recognised as a zip there (a pipe: ``-m /dev/stdin``, ``-m <(cat m.model)``; a
    device, cannot seek); only a regular file larger than the limit is checked for a zip
    in place (its member may still be small enough)."""
    limit = MAX_MODEL_BYTES
    # Errors opening the path keep their type (FileNotFoundError, IsADirectoryError,
    # PermissionError) for callers that test it; everything after that is the file's fault.
    with open(path, "rb") as handle:
        try:
            info = os.fstat(handle.fileno())
            regular = stat.S_ISREG(info.st_mode)
            if regular and info.st_size > limit:
                import zipfile

                if zipfile.is_zipfile(handle):
                    return _zip_member(handle, path)
                raise ModelError(_too_large(path))
            return _unzipped(_read_bounded(handle, info.st_size if regular else 0, path), path)
        except (ModelError, MemoryError):
            raise
        except Exception as error:  # zipfile, zlib, lzma, bz2, struct, OSError, UnicodeDecodeError ...
            raise ModelError(f"model {path!r}: cannot read it: {type(error).__name__}: {error}") from error


#: The signature of a zip archive's end record, and how far from the end of a file
#: zipfile.is_zipfile looks for it (the record and an archive comment of up to 64 KiB).
_END_OF_ARCHIVE = b"PK\x05\x06"
_END_SEARCH = 22 + (1 << 16)
#: How a zip archive's first entry and a gzip stream begin: a file that starts so but is
#: no archive is damaged or compressed, not a JSON model with stray bytes.
_LOCAL_HEADER = b"PK\x03\x04"
_GZIP = b"\x1f\x8b"


def _unzipped(raw: bytes, path: str) -> bytes:
    """raw itself, or its one member when it is a zip archive, as zipfile.is_zipfile
    decides: a file without the end record's signature near its end is none, and zipfile
    is not even imported for it (most models are plain JSON); an archive in the simplest
    form is read by _simple_zip_member, any other by zipfile."""
    if _END_OF_ARCHIVE not in raw[-_END_SEARCH:]:
        return _not_an_archive(raw, path)
    member = _simple_zip_member(raw)
    if member is not None:
        return member
    import zipfile

    buffer = io.BytesIO(raw)
    if zipfile.is_zipfile(buffer):
        return _zip_member(buffer, path)
    return _not_an_archive(raw, path)


def _not_an_archive(raw: bytes, path: str) -> bytes:
    """raw, to be read as JSON, unless it begins as a zip or gzip file: then it is a
    damaged archive or a compressed model, which the JSON parser would call "not UTF-8"."""
    if raw.startswith(_LOCAL_HEADER):
        raise ModelError(
            f"model {path!r}: a zip archive without its end (truncated or damaged, such as a "
            "partial download); download or copy it again"
        )
    if raw.startswith(_GZIP):
        raise ModelError(f"model {path!r}: gzip-compressed; a model is JSON or a zip holding one (gunzip it)")
    return raw


def _simple_zip_member(data: bytes) -> bytes | None:
    """The one member of a zip archive in its simplest form -- nothing before it, no
    archive comment, no zip64 record, one entry: a file, stored or deflated, not
    encrypted -- read without zipfile, whose import is 4 ms and 1 MB of a cold start (the
    published models are such archives). It answers only after the checks zipfile makes
    on the way to that member's bytes (the headers, the names, the extra fields, the size
    and the CRC), so that it answers what zipfile reads; for any other archive, or
    anything unexpected, None, and zipfile reads the file (and names the problem)."""
    import struct
    import zlib

    end = len(data) - 22
    if end < 46 or data[end : end + 4] != _END_OF_ARCHIVE or data[end - 20 : end - 16] == b"PK\x06\x07":
        return None
    disk, start_disk, here, entries, size, at, comment = struct.unpack_from("<4H2LH", data, end + 4)
    if disk or start_disk or here != 1 or entries != 1 or comment or size < 46 or at + size != end:
        return None
    # The central directory's entry (zipfile's structCentralDir).
    (sig, _, _, version, _, flags, method, _, _, crc, packed, unpacked, name_size, extra_size, comment_size, _, _, _,
     offset) = struct.unpack_from("<4s4B4HL2L5H2L", data, at)  # fmt: skip
    name = data[at + 46 : at + 46 + name_size]
    extra = data[at + 46 + name_size : at + 46 + name_size + extra_size]
    if sig != b"PK\x01\x02" or size != 46 + name_size + extra_size + comment_size or version > 63:
        return None
    if flags & 0x61 or method not in (0, 8) or unpacked > MAX_MODEL_BYTES:  # (encrypted, patched; compression)
        return None
    try:
        text = name.decode("utf-8" if flags & 0x800 else "cp437")
    except UnicodeDecodeError:
        return None
    if not text or "\0" in text or text.endswith("/"):  # (a directory is not the member)
        return None
    while len(extra) >= 4:  # (zipfile refuses a corrupt extra field and reads zip64 sizes from one)
        kind, length = struct.unpack_from("<2H", extra)
        if length + 4 > len(extra) or kind == 1:
            return None
        extra = extra[length + 4 :]
    # The member's local header (structFileHeader): the same name, then the data.
    if offset + 30 > at:
        return None
    sig, _, _, local_flags, _, _, _, _, _, _, local_name_size, local_extra_size = struct.unpack_from(
        "<4s2B4HL2L2H", data, offset
    )
    begin = offset + 30 + local_name_size + local_extra_size
    if sig != b"PK\x03\x04" or data[offset + 30 : offset + 30 + local_name_size] != name:
        return None
    if (local_flags ^ flags) & 0x800 or begin + packed > at:
        return None
    body = memoryview(data)[begin : begin + packed]
    if method == 0:
        member = bytes(body) if packed == unpacked else None
    else:
        inflate = zlib.decompressobj(-15)
        try:
            member = inflate.decompress(body, unpacked + 1)
        except zlib.error:
            return None
        if len(member) != unpacked or not inflate.eof or inflate.unused_data:
            return None
    if member is None or zlib.crc32(member) != crc:
        return None
    return member


def _too_large(path: str) -> str:
    return f"model {path!r}: larger than {MAX_MODEL_BYTES} bytes, too large for a model"


def _read_bounded(handle: Any, expected: int, path: str) -> bytes:
    """Everything handle has left, refused once it is more than MAX_MODEL_BYTES; reads
    expected + 1 bytes first (the size of a regular file: one read), then blocks."""
    limit = MAX_MODEL_BYTES
    parts = []
    size = 0
    want = min(expected, limit) + 1
    while True:
        block = handle.read(want)
        if not block:
            break
        parts.append(block)
        size += len(block)
        if size > limit:
            raise ModelError(_too_large(path))
        want = min(1 << 20, limit + 1 - size)
    return b"".join(parts)


def _zip_member(archive_file: Any, path: str) -> bytes:
    """The one file of a zipped model (its size checked before it is read)."""
    import zipfile

    archive_file.seek(0)
    with zipfile.ZipFile(archive_file) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise ModelError(f"model {path!r}: a zipped model must hold exactly one file, found {len(members)}")
        if members[0].file_size > MAX_MODEL_BYTES:
            raise ModelError(_too_large(path))
        with archive.open(members[0]) as member:
            raw = member.read(MAX_MODEL_BYTES + 1)
    if len(raw) > MAX_MODEL_BYTES:
        raise ModelError(_too_large(path))
    return raw
