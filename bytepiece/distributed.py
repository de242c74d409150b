"""Training and encoding on a Dask cluster, and count files that merge later.

Nothing here imports Dask until a cluster is asked for: ``pip install
bytepiece[dask]`` adds it. See docs/distributed.md for how to run it on
several machines.

>>> from bytepiece.distributed import DaskTrainer            # doctest: +SKIP
>>> t = DaskTrainer(max_vocab_size=8000, address="tcp://10.0.0.1:8786")
>>> t.train_files(["s3://bucket/corpus/"])                    # doctest: +SKIP
>>> t.save("my.model")                                        # doctest: +SKIP

Why it is built this way:

- The workers read the input themselves. The driver only lists the files and
  their sizes and cuts them into byte ranges of ``blocksize``; a task moves
  its range's two ends forward to the next *end of a run of newlines* (a
  position after a ``\\n`` and before a byte that is not one) and reads what
  lies between. Those are the places where the local trainer's reader may
  cut a file and where the chunking regex cuts anyway, so every chunk, and
  so every count, is the same as in a local run. (A plain newline delimiter,
  as ``dask.bytes.read_bytes`` uses, could cut a run of blank lines in two
  and change a chunk.) Files are opened with fsspec, so paths may be local
  (on a filesystem every machine mounts) or URLs of an object store.
- Documents (``Trainer.train(texts)``, :meth:`DaskTrainer.train`) cannot be
  read by the workers, so the driver reads them, groups them into blocks with
  the local trainer's ``iter_blocks`` and scatters one block at a time; at most
  ``IN_FLIGHT_PER_THREAD`` map tasks per worker thread are unfinished, so the
  driver and the cluster hold a few blocks, never the corpus. A chunk never
  spans two documents, so the grouping changes no count.
- Each block goes through the trainer's own Cython map kernels
  (``count_ngrams_block``, ``count_pieces_block``) and the tables are summed
  in a tree of merge tasks (``split_every`` tables per task) on the workers,
  submitted as the map results come in; only the final table travels to the
  driver. Merging is integer addition, so the order of the tree does not
  matter: the model is byte-identical to ``Trainer.train_files`` (or
  ``Trainer.train``) on one machine (unless the ``ngram_memory`` budget is
  hit, which makes counts approximate in any engine).
- The pruned n-gram model is scattered to every worker once, and the piece
  counting tasks refer to it.
- The EM sample is the chunks with the smallest hashes; each block keeps its
  own bottom sample and each merge keeps the bottom of the union, which
  equals the bottom sample of the whole corpus.
- Pruning and EM run on the driver, exactly as in the local trainer.
- :class:`Counts` holds one stage's merged tables; it saves to a file and
  merges with others, so a corpus can be counted in shards on different days
  or machines and finished later.
- :func:`encode_files` writes token shards on the workers. Lines are keyed by
  their global line number (1-based, across all inputs, as ``bytepiece
  encode`` keys them), found by a cheap line-counting pass first, so samples
  do not depend on how the corpus was cut into blocks.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import time
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ._core import ngram_model as _ngram_model
from ._core import ngram_table as _ngram_table
from ._core import piece_table as _piece_table
from .atomic import atomic_write
from .corpus import (
    ERROR_MODES,
    CorpusEncodingError,
    CorpusError,
    EmptyCorpusError,
    TextSource,
    chunk_block,
    expand_paths,
    iter_blocks,
)
from .trainer import Trainer, TrainerError, _chunk_key, _Progress

__all__ = [
    "DaskTrainer",
    "Counts",
    "count_ngrams",
    "count_pieces",
    "merge_counts",
    "load_counts",
    "train_from_counts",
    "train_files_on_dask",
    "train_texts_on_dask",
    "list_blocks",
    "read_block",
    "encode_files",
    "load_encoded",
    "iter_encoded",
    "connect",
]

#: Bytes per block read by one task (before alignment to a run of newlines).
DEFAULT_BLOCKSIZE = 32 << 20
#: Tables merged by one reduce task.
DEFAULT_SPLIT_EVERY = 8
#: Unfinished map tasks per worker thread (so per block held by the cluster) at any time.
IN_FLIGHT_PER_THREAD = 2
_SCAN = 1 << 16
_COUNTS_MAGIC = b"BPCOUNT1"
_SHARDS_FORMAT = "bytepiece-shards/1"


# ---------------------------------------------------------------------------
# Connecting


def _import_distributed():
    try:
        import distributed  # noqa: F401
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("Dask is not installed: pip install 'bytepiece[dask]'") from error
    return distributed


def connect(
    client=None, address: str | None = None, scheduler_file: str | None = None, local_workers: int | None = None
):
    """(client, close) for one of: an existing ``client``, a scheduler ``address``
    (``tcp://host:8786``), a ``scheduler_file`` written by ``dask scheduler
    --scheduler-file``, or ``local_workers`` processes on this machine. ``close()``
    shuts down only what this call opened."""
    given = [x is not None for x in (client, address, scheduler_file, local_workers)]
    if sum(given) > 1:
        raise ValueError("give one of client, address, scheduler_file, local_workers")
    if client is not None:
        return client, lambda: None
    distributed = _import_distributed()
    if address is not None:
        c = distributed.Client(address)
        return c, c.close
    if scheduler_file is not None:
        c = distributed.Client(scheduler_file=os.fspath(scheduler_file))
        return c, c.close
    if local_workers is not None:
        # No dashboard, and the scheduler's HTTP server on a free port: with
        # dashboard_address=None it still binds 8787 and, when another cluster on the
        # machine holds that port, warns and moves.
        cluster = distributed.LocalCluster(
            n_workers=int(local_workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
        )
        c = distributed.Client(cluster)

        def close():
            c.close()
            cluster.close()

        return c, close
    raise ValueError("no cluster: pass client=, address=, scheduler_file= or local_workers=")


# ---------------------------------------------------------------------------
# Files and blocks


def _fs_and_path(path: str, storage_options: dict | None = None):
    import fsspec.core

    return fsspec.core.url_to_fs(path, **(storage_options or {}))


def _is_url(path: str) -> bool:
    return "://" in path or "::" in path


def list_files(paths, storage_options: dict | None = None) -> list[tuple[str, int]]:
    """(path, size) of every input file. Local paths are expanded exactly as the
    local trainer does (folders recursively, sorted, hidden entries skipped) and
    made absolute; URLs are listed with fsspec the same way."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    out: list[tuple[str, int]] = []
    for p in paths:
        p = os.fsdecode(os.fspath(p))
        if not _is_url(p):
            out.extend((os.path.abspath(f), os.path.getsize(f)) for f in expand_paths([p]))
            continue
        fs, root = _fs_and_path(p, storage_options)
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
    if _is_url(path):
        fs, p = _fs_and_path(path, storage_options)
        size = fs.size(p)
        opener = lambda: fs.open(p, "rb")  # noqa: E731
    else:
        size = os.path.getsize(path)
        opener = lambda: open(path, "rb")  # noqa: E731
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


def _block_docs(block, errors: str, storage_options) -> tuple[list, int, int]:
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


# ---------------------------------------------------------------------------
# Map and merge tasks (module level, so they pickle by reference)


def _bottom_sample(chunks: list[bytes], budget: int) -> list[tuple]:
    """(hash, chunk) of the chunks with the smallest hashes (the trainer's chunk hash), up
    to budget bytes: the trainer's EM sample, whatever the blocks."""
    return _trim_sample(sorted((_chunk_key(c), c) for c in chunks), budget)


def _trim_sample(keyed: list[tuple], budget: int) -> list[tuple]:
    """The prefix of sorted (hash, chunk) pairs that fits in budget bytes."""
    size = 0
    for i, (_, c) in enumerate(keyed):
        size += len(c)
        if size > budget:
            return keyed[:i]
    return keyed


def _ngrams_task(block, s):
    docs, _, _ = _block_docs(block, s["errors"], s["storage_options"])
    chunks = chunk_block(docs, s["isolate_digits"])
    return _ngram_table.count_ngrams_block(chunks, s["order"], s["budget"])


def _merge_ngrams_task(parts, s):
    table = _ngram_table.NgramTable(s["order"], s["budget"])
    for part in parts:
        table.merge(part)
    return table


def _pieces_task(block, s, model):
    docs, _, _ = _block_docs(block, s["errors"], s["storage_options"])
    chunks = chunk_block(docs, s["isolate_digits"])
    if model is None:  # the n-gram EM seed: no tagging, only the EM sample
        pieces, pairs = _piece_table.PieceTable(), None
    else:
        pieces, pairs = _ngram_model.count_pieces_block(chunks, model, s["ensure_unicode"], s["pair_length"] or 1)
    sample = _bottom_sample(chunks, s["sample_bytes"]) if s["sample_bytes"] else []
    return pieces, (pairs if s["pair_length"] else None), sample, sum(map(len, chunks))


def _merge_pieces_task(parts, s):
    pieces = _piece_table.PieceTable()
    pairs = _piece_table.PieceTable() if s["pair_length"] else None
    sample: list = []
    nbytes = 0
    for p, q, smp, n in parts:
        pieces.merge(p)
        if pairs is not None and q is not None:
            pairs.merge(q)
        sample.extend(smp)
        nbytes += n
    if sample:
        sample.sort()
        sample = _trim_sample(sample, s["sample_bytes"])
    return pieces, pairs, sample, nbytes


def _map_reduce(
    client,
    blocks,
    map_func,
    merge_func,
    settings,
    extra=(),
    split_every=DEFAULT_SPLIT_EVERY,
    in_flight: int | None = None,
):
    """merge_func over map_func of every block (None if there is none): on the cluster, or
    here, one block at a time, when client is None.

    ``blocks`` is any iterable, consumed as the tasks go: at most ``in_flight`` map tasks
    (by default IN_FLIGHT_PER_THREAD per worker thread) are unfinished at a time, so
    neither the driver nor the cluster holds more blocks than that. A block of documents
    (a list) is scattered to a worker and counted there; a file range is read by its
    task. Results merge on the workers as soon as ``split_every`` of them are at hand
    (a tree, each level holding fewer than that); only the root comes to the driver."""
    if client is None:
        acc = None
        for block in blocks:
            part = map_func(block, settings, *extra)
            acc = merge_func([part] if acc is None else [acc, part], settings)
        return acc
    from distributed import wait

    k = max(2, int(split_every))
    limit = max(1, int(in_flight or IN_FLIGHT_PER_THREAD * sum(client.nthreads().values())))
    levels: list[list] = []  # levels[i]: results that each merge k**i blocks
    running: set = set()  # map tasks not finished yet

    def add(future, level: int = 0) -> None:
        while True:
            if level == len(levels):
                levels.append([])
            levels[level].append(future)
            if len(levels[level]) < k:
                return
            future = client.submit(merge_func, levels[level], settings, pure=False)
            levels[level] = []
            level += 1

    try:
        for block in blocks:
            while len(running) >= limit:
                with client.as_current():  # (wait() asks for the default Client)
                    done = wait(running, return_when="FIRST_COMPLETED").done
                for f in done:
                    if f.status == "error":
                        f.result()  # a worker's error stops the run now, not at the end
                running -= done
            if isinstance(block, list):
                block = client.scatter([block], hash=False)[0]  # (a list would scatter item by item)
            future = client.submit(map_func, block, settings, *extra, pure=False)
            del block  # the cluster has it; the driver keeps no block
            running.add(future)
            add(future)
        rest = [f for level in levels for f in level]
        levels.clear()
        running.clear()
        if not rest:
            return None
        while len(rest) > 1:
            rest = [client.submit(merge_func, rest[i : i + k], settings, pure=False) for i in range(0, len(rest), k)]
        return rest[0].result()
    finally:
        levels.clear()
        running.clear()
        rest = None  # dropping the futures releases them on the cluster


# ---------------------------------------------------------------------------
# Counts: one stage's merged tables, saved and merged


def _canonical_digest(data: bytes, header: int, unit: str) -> str:
    """A digest of a serialised NgramTable / NgramModel that ignores hash-table layout
    (entries sorted by key), so equal tables give equal digests."""
    h = hashlib.blake2b(digest_size=16)
    h.update(data[: header + 256 * 8])
    off = header + 256 * 8
    while off < len(data):
        (n,) = struct.unpack_from("<q", data, off)
        off += 8
        keys = np.frombuffer(data, dtype="<u8", count=n, offset=off)
        vals = np.frombuffer(data, dtype=unit, count=n, offset=off + 8 * n)
        off += 16 * n
        order = np.argsort(keys, kind="stable")
        h.update(struct.pack("<q", n))
        h.update(keys[order].tobytes())
        h.update(vals[order].tobytes())
    return h.hexdigest()


#: What piece counts made without tagging (the n-gram EM seed) record as their model.
UNTAGGED = "untagged"


def model_digest(model) -> str:
    """Digest of an NgramModel's content (UNTAGGED for None: no model, no tagging)."""
    return UNTAGGED if model is None else _canonical_digest(model.to_bytes(), 16, "<f8")


def _pack_sample(sample: list[tuple]) -> bytes:
    parts = [struct.pack("<q", len(sample))]
    for key, chunk in sample:
        parts.append(struct.pack("<Qq", key, len(chunk)))
        parts.append(chunk)
    return b"".join(parts)


def _unpack_sample(data: bytes) -> list[tuple]:
    (n,) = struct.unpack_from("<q", data, 0)
    off = 8
    out = []
    for _ in range(n):
        key, length = struct.unpack_from("<Qq", data, off)
        off += 16
        out.append((key, data[off : off + length]))
        off += length
    return out


class Counts:
    """The merged tables of one counting stage over some files.

    ``stage`` is ``"ngrams"`` (``table``: an NgramTable) or ``"pieces"``
    (``table``: a PieceTable of pieces, ``pairs``: adjacent-pair counts for EM
    or None, ``sample``: the EM sample as (hash, chunk) pairs). ``settings``
    are the trainer options the counts depend on (merging checks they agree);
    ``sources`` names the files counted. Save with :meth:`save`, read back with
    :func:`load_counts`, combine with :func:`merge_counts`.
    """

    def __init__(
        self, stage: str, settings: dict, table, pairs=None, sample=None, sources: Sequence[str] = (), nbytes: int = 0
    ):
        if stage not in ("ngrams", "pieces"):
            raise ValueError(f"stage must be 'ngrams' or 'pieces', not {stage!r}")
        self.stage = stage
        self.settings = dict(settings)
        self.table = table
        self.pairs = pairs
        self.sample = list(sample or [])
        self.sources = list(sources)
        self.nbytes = int(nbytes)

    def __repr__(self) -> str:
        return f"Counts({self.stage!r}, {len(self.table)} entries, {self.nbytes} bytes, {len(self.sources)} source(s))"

    def digest(self) -> str:
        """A digest of the n-gram counts (ngrams stage only); equal counts, equal digest."""
        if self.stage != "ngrams":
            raise ValueError("digest() is for n-gram counts")
        return _canonical_digest(self.table.to_bytes(), 40, "<i8")

    def save(self, path, storage_options: dict | None = None) -> None:
        """Write to ``path`` (atomically for a local path; a URL goes through fsspec)."""
        sections = [self.table.to_bytes()]
        if self.stage == "pieces":
            sections.append(self.pairs.to_bytes() if self.pairs is not None else b"")
            sections.append(_pack_sample(self.sample))
        header = json.dumps(
            {
                "stage": self.stage,
                "settings": self.settings,
                "sources": self.sources,
                "nbytes": self.nbytes,
                "sections": len(sections),
            },
            sort_keys=True,
        ).encode()
        parts = [_COUNTS_MAGIC, struct.pack("<q", len(header)), header]
        for s in sections:
            parts += [struct.pack("<q", len(s)), s]
        _write_path(os.fspath(path), b"".join(parts), storage_options)


def load_counts(path, storage_options: dict | None = None) -> Counts:
    """Read a file written by :meth:`Counts.save`."""
    path = os.fspath(path)
    if _is_url(path):
        fs, p = _fs_and_path(path, storage_options)
        with fs.open(p, "rb") as f:
            data = f.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    if data[:8] != _COUNTS_MAGIC:
        raise ValueError(f"{path}: not a bytepiece counts file")
    (hlen,) = struct.unpack_from("<q", data, 8)
    header = json.loads(data[16 : 16 + hlen])
    off = 16 + hlen
    sections = []
    for _ in range(header["sections"]):
        (n,) = struct.unpack_from("<q", data, off)
        sections.append(data[off + 8 : off + 8 + n])
        off += 8 + n
    if header["stage"] == "ngrams":
        return Counts(
            "ngrams",
            header["settings"],
            _ngram_table.NgramTable.from_bytes(sections[0]),
            sources=header["sources"],
            nbytes=header["nbytes"],
        )
    pairs = _piece_table.PieceTable.from_bytes(sections[1]) if sections[1] else None
    return Counts(
        "pieces",
        header["settings"],
        _piece_table.PieceTable.from_bytes(sections[0]),
        pairs,
        _unpack_sample(sections[2]),
        header["sources"],
        header["nbytes"],
    )


def merge_counts(items: Iterable[Counts | str | os.PathLike[str]], allow_overlap: bool = False) -> Counts:
    """Sum counts of the same stage and settings (Counts objects or file paths). The
    result equals counting all their sources in one run. A source named twice raises
    ValueError (it would be counted twice) unless ``allow_overlap``."""
    items = [c if isinstance(c, Counts) else load_counts(c) for c in items]
    if not items:
        raise ValueError("nothing to merge")
    first = items[0]
    for c in items[1:]:
        if c.stage != first.stage:
            raise ValueError(f"cannot merge {first.stage} counts with {c.stage} counts")
        if c.settings != first.settings:
            diff = {
                k: (first.settings.get(k), c.settings.get(k))
                for k in set(first.settings) | set(c.settings)
                if first.settings.get(k) != c.settings.get(k)
            }
            raise ValueError(f"counts made with different settings: {diff}")
    sources = [s for c in items for s in c.sources]
    if not allow_overlap and len(set(sources)) != len(sources):
        dup = sorted({s for s in sources if sources.count(s) > 1})
        raise ValueError(f"these sources are in more than one of the counts: {dup}")
    s = first.settings
    if first.stage == "ngrams":
        table = _merge_ngrams_task([c.table for c in items], s)
        return Counts("ngrams", s, table, sources=sources, nbytes=sum(c.nbytes for c in items))
    pieces, pairs, sample, nbytes = _merge_pieces_task([(c.table, c.pairs, c.sample, c.nbytes) for c in items], s)
    return Counts("pieces", s, pieces, pairs, sample, sources, nbytes)


# ---------------------------------------------------------------------------
# The trainer


def _ngram_settings(trainer: Trainer, errors: str) -> dict:
    """The options n-gram counts depend on (saved with them; never credentials)."""
    return {
        "order": trainer.order,
        "isolate_digits": bool(trainer.isolate_digits),
        "budget": trainer._budget_entries(),
        "errors": errors,
    }


def _piece_settings(trainer: Trainer, errors: str, digest: str) -> dict:
    s = _ngram_settings(trainer, errors)
    s.update(
        ensure_unicode=bool(trainer.ensure_unicode),
        pair_length=(
            min(int(trainer.max_piece_length), 255) if (trainer._tagging and trainer.em and trainer.em_pairs > 0) else 0
        ),
        sample_bytes=trainer.em_sample_bytes if trainer.em else 0,
        min_count=trainer.min_count,
        model=digest,
    )
    return s


def _sources(blocks) -> list[str]:
    """The files the blocks come from (none for documents)."""
    if isinstance(blocks, _TextBlocks):
        return []
    return list(dict.fromkeys(b[0] for b in blocks))


class _TextBlocks:
    """Trainer.train's documents as blocks for the tasks: lists of str of about
    block_chars characters, grouped by the local trainer's own iter_blocks (a block is
    made only when a task is about to take it; the texts are read anew on each pass).
    Chunks never cross documents, so how they are grouped changes no count."""

    def __init__(self, texts, block_chars: int):
        self.source = TextSource(texts)
        self.block_chars = int(block_chars)

    def __iter__(self):
        return iter_blocks(self.source, self.block_chars)


class _Source:
    """What Trainer._train hands to the stages: blocks to count (file ranges, or
    _TextBlocks of documents), or counts already made."""

    def __init__(self, blocks=None, errors="strict", ngram_counts=None, piece_counts=None):
        self.blocks = blocks
        self.errors = errors
        self.ngram_counts = ngram_counts
        self.piece_counts = piece_counts
        self.total_bytes = sum(b[2] for b in blocks) if isinstance(blocks, list) else None

    def describe(self) -> str:
        if self.blocks is None:
            return "saved counts"
        if isinstance(self.blocks, _TextBlocks):
            return f"{self.blocks.source.describe()} sent in blocks of {self.blocks.block_chars} characters"
        return f"{len(_sources(self.blocks))} file(s), {len(self.blocks)} block(s), {self.total_bytes / 1e6:.1f} MB"


class DaskTrainer(Trainer):
    """:class:`~bytepiece.trainer.Trainer` whose counting stages run on a Dask cluster.

    Takes every Trainer option, plus where to run (one of ``client``,
    ``address``, ``scheduler_file``, ``local_workers``; with none, the stages
    run in this process, block by block, which is what the count files need on
    a machine without a cluster), ``blocksize`` (bytes a task reads; with
    :meth:`train`, characters of documents the driver sends per task),
    ``split_every`` (tables per merge task) and ``storage_options`` (fsspec
    options for URLs). The model is byte-identical to ``Trainer.train_files``
    (or ``Trainer.train`` for documents). ``stats["stage_seconds"]`` times each stage.
    """

    def __init__(
        self,
        *args,
        client=None,
        address: str | None = None,
        scheduler_file=None,
        local_workers: int | None = None,
        blocksize: int = DEFAULT_BLOCKSIZE,
        split_every: int = DEFAULT_SPLIT_EVERY,
        storage_options: dict | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if blocksize < 1:
            raise TrainerError(f"blocksize must be positive, not {blocksize!r}")
        self._where = {
            "client": client,
            "address": address,
            "scheduler_file": scheduler_file,
            "local_workers": local_workers,
        }
        self.blocksize = int(blocksize)
        self.split_every = int(split_every)
        self.storage_options = dict(storage_options or {})
        self._client = None

    # -- public API ------------------------------------------------------------
    def train(self, texts, workers: int = 1, batch_size: int = 1000) -> None:
        """Train on documents: any re-iterable of str, read twice (once per counting
        stage) on this machine, which sends them to the workers one block of about
        ``blocksize`` characters at a time, with a bounded number of blocks in flight
        (IN_FLIGHT_PER_THREAD per worker thread), so the corpus is never held anywhere
        whole. The workers count the blocks; ``workers`` threads run pruning and EM
        here. The model is byte-identical to ``Trainer.train(texts)``. ``batch_size``
        is accepted for 0.6.3 compatibility.
        """
        blocks = _TextBlocks(texts, self.blocksize)
        if iter(texts) is texts:
            raise TypeError(
                "texts must be re-iterable (a list, or an object whose __iter__ "
                "starts over): it is read twice; a generator can be read only once"
            )
        with self._connected():
            self._train(_Source(blocks), workers)

    def train_files(self, paths, workers: int = 1, errors: str = "strict") -> None:
        """Train on files, folders or URLs; ``workers`` threads run pruning and EM here."""
        if errors not in ERROR_MODES:
            raise ValueError(f"errors must be one of {ERROR_MODES}, not {errors!r}")
        blocks = list_blocks(paths, self.blocksize, self.storage_options)
        with self._connected():
            self._train(_Source(blocks, errors), workers)

    def count_ngrams(self, paths, errors: str = "strict") -> Counts:
        """Stage 1 over some files: the n-gram counts (save them, merge them later)."""
        blocks = list_blocks(paths, self.blocksize, self.storage_options)
        with self._connected():
            return self._ngram_counts(blocks, errors)

    def count_pieces(self, paths, ngrams: Counts, errors: str = "strict") -> Counts:
        """Stage 2 over some files, tagging with the model of the merged n-gram counts of
        the *whole* corpus (``ngrams``): the piece counts."""
        blocks = list_blocks(paths, self.blocksize, self.storage_options)
        model = self._model_of(ngrams)
        with self._connected():
            return self._piece_counts(blocks, errors, model)

    def train_from_counts(self, ngrams: Counts, pieces: Counts, workers: int = 1) -> None:
        """Finish training (pruning and EM, here) from merged counts of both stages."""
        self._check_ngrams(ngrams)
        if pieces.stage != "pieces":
            raise ValueError("pieces must be piece counts")
        self._train(_Source(ngram_counts=ngrams, piece_counts=pieces), workers)

    # -- cluster ---------------------------------------------------------------
    class _Connection:
        def __init__(self, trainer):
            self.trainer = trainer

        def __enter__(self):
            t = self.trainer
            if any(v is not None for v in t._where.values()):
                t._client, self.close = connect(**t._where)
            else:
                t._client, self.close = None, lambda: None
            return t._client

        def __exit__(self, *exc):
            self.trainer._client = None
            self.close()

    def _connected(self):
        return DaskTrainer._Connection(self)

    def _timed(self, stage: str, t0: float) -> None:
        self.stats.setdefault("stage_seconds", {})[stage] = time.perf_counter() - t0

    # -- stages ----------------------------------------------------------------
    def _ngram_counts(self, blocks, errors) -> Counts:
        s = _ngram_settings(self, errors)
        table = _map_reduce(
            self._client,
            blocks,
            _ngrams_task,
            _merge_ngrams_task,
            dict(s, storage_options=self.storage_options),
            split_every=self.split_every,
        )
        if table is None:  # no blocks
            table = _ngram_table.NgramTable(s["order"], s["budget"])
        return Counts("ngrams", s, table, sources=_sources(blocks), nbytes=table.total)

    def _piece_counts(self, blocks, errors, model, digest: str | None = None) -> Counts:
        """Piece counts; ``digest`` names the model in the settings (computed when None)."""
        s = _piece_settings(self, errors, model_digest(model) if digest is None else digest)
        merged = None
        if not (isinstance(blocks, list) and not blocks):  # no files: no model to send
            scatter = self._client is not None and model is not None
            model_ref = self._client.scatter(model, broadcast=True, hash=False) if scatter else model
            try:
                merged = _map_reduce(
                    self._client,
                    blocks,
                    _pieces_task,
                    _merge_pieces_task,
                    dict(s, storage_options=self.storage_options),
                    (model_ref,),
                    self.split_every,
                )
            finally:
                if scatter:
                    model_ref.release()
        if merged is None:  # no blocks
            merged = (_piece_table.PieceTable(), _piece_table.PieceTable() if s["pair_length"] else None, [], 0)
        pieces, pairs, sample, nbytes = merged
        return Counts("pieces", s, pieces, pairs, sample, _sources(blocks), nbytes)

    def _check_ngrams(self, ngrams: Counts) -> None:
        if ngrams.stage != "ngrams":
            raise ValueError("expected n-gram counts")
        mine = _ngram_settings(self, ngrams.settings.get("errors", "strict"))
        if ngrams.settings != mine:
            raise ValueError(f"the n-gram counts were made with other settings: {ngrams.settings} != {mine}")

    def _model_of(self, ngrams: Counts):
        """The n-gram model that tags the pieces (None with the n-gram EM seed: no tagging)."""
        self._check_ngrams(ngrams)
        return _ngram_model.NgramModel.from_table(ngrams.table, self.min_count) if self._tagging else None

    # -- the two stages of Trainer._train, overridden ---------------------------
    def _count_ngrams(self, source, workers: int):
        progress = _Progress(self.verbose, "count n-grams", source.total_bytes)
        t0 = time.perf_counter()
        if source.ngram_counts is not None:
            counts = source.ngram_counts
            self._check_ngrams(counts)
            own = False  # the caller's counts: left intact
        else:
            where = (
                "this process"
                if self._client is None
                else f"{len(self._client.scheduler_info()['workers'])} Dask worker(s)"
            )
            progress.log(f"order {self.order}, {where}, {source.describe()}")
            counts = self._ngram_counts(source.blocks, source.errors)
            own = True
        table = counts.table
        del counts
        if table.total == 0:
            raise EmptyCorpusError("the corpus is empty: no text to train on")
        # The trainer's own end of the stage. A table counted here is freed as the model is
        # built, as the local trainer frees its own, so the driver never holds the merged
        # n-gram table beside the model, the piece counts or the EM sample.
        model = self._finish_ngrams(table, progress, workers, release=own)
        self._timed("count_ngrams", t0)
        return model

    def _count_pieces(self, source, model, workers: int):
        progress = _Progress(self.verbose, "count pieces", self.stats["corpus_bytes"])
        t0 = time.perf_counter()
        if source.piece_counts is not None:
            counts = source.piece_counts
            digest = model_digest(model)
            if counts.settings.get("model") != digest:
                raise ValueError(
                    "the piece counts were made with another n-gram model than the one of "
                    "these n-gram counts (count pieces with the merged n-gram counts of the whole corpus)"
                )
            expected = _piece_settings(self, counts.settings.get("errors"), digest)
            if counts.settings != expected:
                raise ValueError(f"the piece counts were made with other settings: {counts.settings} != {expected}")
        else:
            counts = self._piece_counts(source.blocks, source.errors, model, digest="")  # never saved
        if len(counts.table) == 0 and model is not None:  # (untagged counts have no pieces)
            raise EmptyCorpusError("the corpus is empty: no text to train on")
        sample_bytes = counts.settings["sample_bytes"]
        sample = sorted(counts.sample)
        sample = [c for _, c in _trim_sample(sample, sample_bytes)] if sample_bytes else []
        piece_counts, pair_counts, sample = self._finish_pieces(counts.table, counts.pairs, sample, progress)
        self._timed("count_pieces", t0)
        self._finish_t0 = time.perf_counter()
        return piece_counts, pair_counts, sample

    def _train(self, source, workers: int) -> None:
        super()._train(source, workers)
        stages = self.stats.get("stage_seconds", {})
        self.stats["stage_seconds"] = stages
        if hasattr(self, "_finish_t0"):
            stages["prune_em"] = time.perf_counter() - self._finish_t0
            del self._finish_t0


def count_ngrams(paths, trainer: Trainer | None = None, errors: str = "strict", **where) -> Counts:
    """Stage 1 (n-gram counts) over some files with ``trainer``'s options (a default
    Trainer if None); ``where``: client=, address=, ... as :class:`DaskTrainer`, or
    nothing to count in this process."""
    return _as_dask(trainer, where).count_ngrams(paths, errors)


def count_pieces(paths, ngrams: Counts, trainer: Trainer | None = None, errors: str = "strict", **where) -> Counts:
    """Stage 2 (piece counts) over some files, with the merged n-gram counts of the whole corpus."""
    return _as_dask(trainer, where).count_pieces(paths, ngrams, errors)


def train_from_counts(trainer: Trainer, ngrams, pieces, workers: int = 1) -> Trainer:
    """Finish ``trainer`` (pruning and EM) from merged counts (Counts or file paths);
    afterwards ``trainer.pieces`` is set and ``trainer.save`` works."""
    ngrams = ngrams if isinstance(ngrams, Counts) else load_counts(ngrams)
    pieces = pieces if isinstance(pieces, Counts) else load_counts(pieces)
    dt = _as_dask(trainer, {})
    dt.train_from_counts(ngrams, pieces, workers)
    _copy_back(dt, trainer)
    return trainer


def train_files_on_dask(trainer: Trainer, paths, workers: int = 1, errors: str = "strict", **where) -> Trainer:
    """``trainer.train_files(paths)`` with the counting on a Dask cluster (``where``:
    client=, address=, scheduler_file=, local_workers=, blocksize=, split_every=,
    storage_options=); the target of ``Trainer.train_files`` with ``engine="dask"``.
    Without a place to run, the default Client of this session (the last one
    created) is used; there must be one."""
    dt = _as_dask(trainer, _with_cluster(where))
    dt.train_files(paths, workers, errors)
    _copy_back(dt, trainer)
    return trainer


def train_texts_on_dask(trainer: Trainer, texts, workers: int = 1, **where) -> Trainer:
    """``trainer.train(texts)`` with the counting on a Dask cluster: the documents (any
    re-iterable of str) are read here and sent to the workers a block at a time (see
    :meth:`DaskTrainer.train`); ``where`` and the default Client as in
    :func:`train_files_on_dask` (``blocksize``: characters per block). The target of
    ``Trainer.train`` with ``engine="dask"``."""
    dt = _as_dask(trainer, _with_cluster(where))
    dt.train(texts, workers)
    _copy_back(dt, trainer)
    return trainer


def _with_cluster(where: dict) -> dict:
    """where, with the session's default Client when it names no place to run."""
    _check_options(where)
    if all(where.get(k) is None for k in ("client", "address", "scheduler_file", "local_workers")):
        distributed = _import_distributed()
        try:
            where = dict(where, client=distributed.default_client())
        except ValueError:
            raise ValueError(
                "engine='dask' needs a cluster: pass client=, address=, scheduler_file= or "
                "local_workers=, or create a distributed.Client first"
            ) from None
    return where


_DASK_OPTIONS = ("client", "address", "scheduler_file", "local_workers", "blocksize", "split_every", "storage_options")


def _check_options(where: dict) -> None:
    unknown = set(where) - set(_DASK_OPTIONS)
    if unknown:
        raise TypeError(f"unknown options: {sorted(unknown)}; the Dask options are {list(_DASK_OPTIONS)}")
    for name in ("blocksize", "split_every"):
        value = where.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise TrainerError(f"{name} must be a positive integer, not {value!r}")


def _as_dask(trainer: Trainer | None, where: dict) -> DaskTrainer:
    _check_options(where)
    if isinstance(trainer, DaskTrainer) and not where:
        return trainer
    if trainer is None:
        trainer = Trainer(verbose=False)
    dt = DaskTrainer.__new__(DaskTrainer)
    dt.__dict__.update(trainer.__dict__)
    places = ("client", "address", "scheduler_file", "local_workers")
    given = {k: where.get(k) for k in places}
    if all(v is None for v in given.values()) and isinstance(trainer, DaskTrainer):
        given = dict(trainer._where)
    dt._where = given
    dt.blocksize = int(where.get("blocksize") or getattr(trainer, "blocksize", DEFAULT_BLOCKSIZE))
    dt.split_every = int(where.get("split_every") or getattr(trainer, "split_every", DEFAULT_SPLIT_EVERY))
    dt.storage_options = dict(where.get("storage_options") or getattr(trainer, "storage_options", {}) or {})
    dt._client = None
    return dt


def _copy_back(dt: DaskTrainer, trainer: Trainer) -> None:
    if dt is trainer:
        return
    trainer.pieces = dt.pieces
    trainer.stats = dt.stats


# ---------------------------------------------------------------------------
# Encoding

_LINE = re.compile(rb"[^\n]*\n|[^\n]+")


def _normalize_line(tok, line: bytes) -> bytes:
    if line.isascii():
        return line
    text = line.decode("utf-8", "surrogateescape")
    return tok.normalize_text(text).encode("utf-8", "surrogateescape")


def _count_lines_task(block, storage_options) -> int:
    _, data = read_block(*block, storage_options)
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _encode_task(block, index: int, first_line: int, tok, opts):
    path, offset, length = block
    start, data = read_block(path, offset, length, opts["storage_options"])
    lines = _LINE.findall(data)
    if not lines:
        return None
    datas = [_normalize_line(tok, x) for x in lines] if opts["normalize"] else lines
    sampling = opts["alpha"] is not None and opts["alpha"] >= 0
    keys = range(first_line, first_line + len(datas)) if sampling else None
    ids, rows = tok.encode_batch(
        datas,
        add_bos=opts["add_bos"],
        add_eos=opts["add_eos"],
        alpha=opts["alpha"] if sampling else -1,
        keys=keys,
        num_threads=opts["threads"],
        as_numpy=True,
    )
    name = f"part-{index:05d}"
    out = opts["out"]
    _write_npy(out, name + ".ids.npy", ids, opts["storage_options"])
    _write_npy(out, name + ".rows.npy", np.asarray(rows, dtype=np.int64), opts["storage_options"])
    return {
        "name": name,
        "first_line": first_line,
        "lines": len(datas),
        "tokens": int(len(ids)),
        "source": path,
        "start": start,
        "end": start + len(data),
    }


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name if _is_url(folder) else os.path.join(folder, name)


def _write_bytes(folder: str, name: str, data: bytes, storage_options) -> None:
    _write_path(_join(folder, name), data, storage_options)


def _write_path(path: str, data: bytes, storage_options) -> None:
    """Write data to a local path (atomically) or to a URL the workers can reach."""
    if _is_url(path):
        fs, p = _fs_and_path(path, storage_options)
        with fs.open(p, "wb") as f:
            f.write(data)
    else:
        with atomic_write(path, "wb") as f:
            f.write(data)


def _write_npy(folder: str, name: str, array: np.ndarray, storage_options) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    _write_bytes(folder, name, buf.getvalue(), storage_options)


def _read_bytes(folder: str, name: str, storage_options=None) -> bytes:
    path = _join(folder, name)
    if _is_url(path):
        fs, p = _fs_and_path(path, storage_options)
        with fs.open(p, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def encode_files(
    paths,
    model,
    out: str,
    *,
    client=None,
    address: str | None = None,
    scheduler_file=None,
    local_workers: int | None = None,
    blocksize: int = DEFAULT_BLOCKSIZE,
    alpha: float | None = None,
    seed=None,
    add_bos: bool = False,
    add_eos: bool = False,
    normalize: bool = True,
    threads: int = 1,
    storage_options: dict | None = None,
) -> dict:
    """Encode text files into token shards in the folder ``out``, on the workers.

    Each line (with its line ending) is encoded on its own, as ``bytepiece
    encode`` does. For each block that holds text, ``part-NNNNN.ids.npy`` (all
    ids of its lines, in the tokenizer's ``id_dtype``) and
    ``part-NNNNN.rows.npy`` (int64 offsets: line ``i`` of the part is
    ``ids[rows[i]:rows[i + 1]]``) are written, and ``index.json`` lists the
    parts in order with their first global line number. ``model`` is a model
    path or a :class:`~bytepiece.tokenizer.Tokenizer`. ``alpha=None`` is the
    model's default (Viterbi unless the model file records one). With ``alpha >= 0``,
    line ``k`` (1-based, across all inputs) is sampled with key ``k`` and
    ``seed`` (or the tokenizer's seed; with neither, a random seed, recorded in
    the index), so the shards hold the same ids whatever ``blocksize`` and the
    number of workers. ``out`` may be a URL;
    the workers must be able to write there. Without a cluster argument, the
    blocks are encoded in this process. Returns the index.
    """
    from .tokenizer import Tokenizer

    if isinstance(model, Tokenizer):
        tok = model
        if seed is not None:
            tok = Tokenizer(model._vocab, seed)
    else:
        tok = Tokenizer(model, seed)  # seed None: a random seed, the same on every worker
    if alpha is None and tok.alpha >= 0:
        alpha = tok.alpha  # the model file's default, as `bytepiece encode` uses it
    out = os.fspath(out)
    storage_options = dict(storage_options or {})
    if _is_url(out):
        fs, p = _fs_and_path(out, storage_options)
        fs.makedirs(p, exist_ok=True)
    else:
        os.makedirs(out, exist_ok=True)
    blocks = list_blocks(paths, blocksize, storage_options)
    opts = {
        "alpha": alpha,
        "add_bos": add_bos,
        "add_eos": add_eos,
        "normalize": normalize,
        "threads": threads,
        "out": out,
        "storage_options": storage_options,
    }
    where = {"client": client, "address": address, "scheduler_file": scheduler_file, "local_workers": local_workers}
    if all(v is None for v in where.values()):
        c, close = None, lambda: None
    else:
        c, close = connect(**where)
    try:
        if c is None:
            counts = [_count_lines_task(b, storage_options) for b in blocks]
        else:
            counts = c.gather(c.map(_count_lines_task, blocks, storage_options=storage_options, pure=False))
        firsts = np.concatenate([[1], 1 + np.cumsum(counts, dtype=np.int64)])[:-1].tolist() if blocks else []
        if c is None:
            parts = [_encode_task(b, i, f, tok, opts) for i, (b, f) in enumerate(zip(blocks, firsts))]
        else:
            tok_ref = c.scatter(tok, broadcast=True, hash=False)
            try:
                futures = [
                    c.submit(_encode_task, b, i, f, tok_ref, opts, pure=False)
                    for i, (b, f) in enumerate(zip(blocks, firsts))
                ]
                parts = c.gather(futures)
            finally:
                tok_ref.release()
    finally:
        close()
    parts = [p for p in parts if p is not None]
    index = {
        "format": _SHARDS_FORMAT,
        "vocab_size": tok.vocab_size,
        "dtype": np.dtype(tok.id_dtype).name,
        "alpha": alpha,
        "seed": tok._seed if isinstance(tok._seed, (int, str)) else None,
        "add_bos": add_bos,
        "add_eos": add_eos,
        "normalize": normalize,
        "lines": int(sum(counts)) if blocks else 0,
        "tokens": sum(p["tokens"] for p in parts),
        "files": _sources(blocks),
        "parts": parts,
    }
    _write_bytes(out, "index.json", json.dumps(index, indent=1).encode(), storage_options)
    _remove_stale_parts(out, {p["name"] for p in parts}, storage_options)
    return index


def _remove_stale_parts(out: str, keep: set, storage_options) -> None:
    """Delete part files that the new index.json does not list (left by an earlier run
    over more blocks into the same folder), so the folder holds exactly one encoding."""
    suffixes = (".ids.npy", ".rows.npy")
    if _is_url(out):
        fs, p = _fs_and_path(out, storage_options)
        names = [(path, path.rsplit("/", 1)[-1]) for path in fs.glob(p.rstrip("/") + "/part-*.npy")]
        remove = fs.rm
    else:
        names = [(os.path.join(out, n), n) for n in os.listdir(out) if n.startswith("part-") and n.endswith(".npy")]
        remove = os.remove
    for path, name in names:
        stem = next((name[: -len(s)] for s in suffixes if name.endswith(s)), None)
        if stem is not None and stem not in keep:
            remove(path)


def iter_encoded(out: str, storage_options: dict | None = None):
    """(part entry of the index, ids, rows) for each part of a folder written by
    :func:`encode_files`, in order."""
    out = os.fspath(out)
    index = json.loads(_read_bytes(out, "index.json", storage_options))
    if index.get("format") != _SHARDS_FORMAT:
        raise ValueError(f"{out}: not a bytepiece shard folder")
    for part in index["parts"]:
        ids = np.load(io.BytesIO(_read_bytes(out, part["name"] + ".ids.npy", storage_options)))
        rows = np.load(io.BytesIO(_read_bytes(out, part["name"] + ".rows.npy", storage_options)))
        yield part, ids, rows


def load_encoded(out: str, storage_options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All shards of a folder as one (ids, rows) pair: line ``k`` (1-based) is
    ``ids[rows[k - 1]:rows[k]]``."""
    all_ids, all_rows, base = [], [np.zeros(1, dtype=np.int64)], 0
    dtype = None
    for _, ids, rows in iter_encoded(out, storage_options):
        dtype = ids.dtype
        all_ids.append(ids)
        all_rows.append(rows[1:] + base)
        base += int(rows[-1])
    ids = np.concatenate(all_ids) if all_ids else np.zeros(0, dtype=dtype or np.int32)
    return ids, np.concatenate(all_rows)
