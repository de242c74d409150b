"""The pieces' scores, kept on disk so that a new process need not import numpy to load a model.

A tokenizer scores each piece with numpy's log of its count minus numpy's log of the
total, BytePiece 0.6.3's arithmetic: Viterbi's ties and every sample follow those bits.
numpy's log is not the C library's everywhere (on x86-64 with AVX-512 numpy has a
vectorised log of its own that differs in the last bit now and then), so the scores
cannot be computed without numpy, and importing numpy costs more than the rest of a cold
start together (a process that imports bytepiece, loads a model and encodes a line:
a CLI call, a data-loader worker, a Dask task).

The scores are a pure function of the counts and of which log numpy runs on this
machine. So they are computed with numpy once and written to a small file (8 bytes per
piece) whose name is a hash of:

- the counts, as int64 (a vocabulary with float counts is not kept);
- the numpy that computes them: its compiled core's path, size and modification time;
- what chooses numpy's log when it runs: the CPU's feature flags, as Linux lists them,
  and numpy's ``NPY_ENABLE_CPU_FEATURES``/``NPY_DISABLE_CPU_FEATURES`` settings;
- the byte order.

A later process with the same counts on the same machine and numpy reads the file
instead of importing numpy. Its checksum covers its name too, so a file copied or
renamed to another vocabulary's name is not taken for that vocabulary's scores. A
process that has imported numpy already computes the scores, which is faster, and leaves
the cache alone: a research loop over many vocabularies, or a data-loader worker, writes
nothing. Where any of those cannot be read (no numpy found, no ``/proc/cpuinfo``)
nothing is kept. A file that is short, not ours or fails its checksum is ignored and
written again; a folder that cannot be written just means the scores are computed every
time. Files are written atomically, so concurrent processes never read half of one.

The folder is ``$BYTEPIECE_CACHE_DIR``, else ``$XDG_CACHE_HOME/bytepiece``, else
``~/.cache/bytepiece``; ``BYTEPIECE_CACHE_DIR=`` (empty) turns the cache off. Deleting
the folder is always safe.
"""

from __future__ import annotations

import array
import importlib.util
import os
import struct
import sys
from collections.abc import Sequence

from ._core.lattice import count_total
from ._numpy import np
from .keys import blake2b

_MAGIC = b"BPSCORE2"
_HEADER = struct.Struct("<8sQ16s")  # magic, number of scores, BLAKE2b-128 of the file's name and scores
_FLAGS_LINES = (b"flags", b"Features")  # x86's and ARM's lines in /proc/cpuinfo


def piece_scores(counts: Sequence[int | float]) -> array.array[float]:
    """log(count) - log(total) of every piece, as numpy computes it, in an
    ``array('d')`` (one type whether computed or read from the cache). Only a process
    that has not imported numpy yet reads or writes the cache: one that has computes
    them, which is faster than reading them, so a program that builds many tokenizers
    writes at most one file (its first computation imports numpy)."""
    path = None if numpy_imported() else cache_path(counts)
    if path is not None:
        kept = read_scores(path, len(counts))
        if kept is not None:
            return kept
    scores = array.array("d")
    scores.frombytes(memoryview(np.log(np.asarray(counts, dtype=np.float64)) - np.log(count_total(counts))).cast("B"))
    if path is not None:
        write_scores(path, scores)
    return scores


def numpy_imported() -> bool:
    return "numpy" in sys.modules


def cache_dir() -> str | None:
    """The cache's folder, or None when it is turned off."""
    where = os.environ.get("BYTEPIECE_CACHE_DIR")
    if where is not None:
        return where or None
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.path.expanduser("~")
        if home.startswith("~"):  # (no home to expand to: nowhere to keep them)
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "bytepiece")


def cache_path(counts: Sequence[int | float]) -> str | None:
    """The file that keeps these counts' scores on this machine, or None when they are
    not kept (cache off, counts that are not all int64, or the machine not identified)."""
    folder = cache_dir()
    if folder is None:
        return None
    if isinstance(counts, array.array) and counts.typecode == "q":  # (a loaded model's)
        raw = counts.tobytes()
    else:
        try:
            raw = array.array("q", counts).tobytes()
        except (TypeError, OverflowError):  # float counts, or beyond int64
            return None
    machine = numpy_identity()
    if machine is None:
        return None
    digest = blake2b(b"bytepiece piece scores 1\0", digest_size=16)
    digest.update(machine.encode("utf-8", "surrogateescape"))
    digest.update(raw)
    return os.path.join(folder, f"scores-{digest.hexdigest()}.f64")


def numpy_identity() -> str | None:
    """What decides numpy's log here, as one string (see the module's docstring), or None
    when it cannot all be read. numpy is located, not imported."""
    core = numpy_core()
    flags = cpu_flags()
    if core is None or flags is None:
        return None
    try:
        st = core.stat()
    except OSError:
        return None
    settings = [os.environ.get(f"NPY_{what}_CPU_FEATURES", "") for what in ("ENABLE", "DISABLE")]
    return "\n".join([core.path, str(st.st_size), str(st.st_mtime_ns), flags, *settings, sys.byteorder])


def numpy_core() -> os.DirEntry[str] | None:
    """numpy's compiled core (``_multiarray_umath``), found without importing numpy."""
    try:
        spec = importlib.util.find_spec("numpy")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        for sub in ("_core", "core"):  # numpy 2, numpy 1
            try:
                with os.scandir(os.path.join(root, sub)) as entries:
                    for entry in entries:
                        if entry.name.startswith("_multiarray_umath."):
                            return entry
            except OSError:
                pass
    return None


def cpu_flags() -> str | None:
    """The first processor's feature flags from /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    for line in head.splitlines():
        if line.startswith(_FLAGS_LINES) and b":" in line:
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return None


def read_scores(path: str, n: int) -> array.array[float] | None:
    """The n scores kept at path, or None when there is no such file or it is not whole."""
    try:
        with open(path, "rb") as f:
            data = f.read(_HEADER.size + 8 * n + 1)
    except OSError:
        return None
    if len(data) != _HEADER.size + 8 * n:
        return None
    magic, count, check = _HEADER.unpack_from(data)
    body = memoryview(data)[_HEADER.size :]
    if magic != _MAGIC or count != n or _checksum(path, body) != check:
        return None
    scores = array.array("d")
    scores.frombytes(body)
    return scores


def write_scores(path: str, scores: array.array[float]) -> None:
    """Keep the scores at path; a folder that cannot be made or written is left alone."""
    from .atomic import atomic_write

    body = scores.tobytes()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_write(path, "wb") as f:
            f.write(_HEADER.pack(_MAGIC, len(body) // 8, _checksum(path, body)))
            f.write(body)
    except OSError:
        pass


def _checksum(path: str, body: bytes | memoryview) -> bytes:
    """BLAKE2b-128 of the file's name (which hashes the counts and the machine) and the
    scores: the file vouches for the vocabulary it is named after."""
    digest = blake2b(os.path.basename(path).encode("utf-8", "surrogateescape"), digest_size=16)
    digest.update(body)
    return digest.digest()
