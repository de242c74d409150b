"""Encoding text files into token shards on a Dask cluster's workers.

Each block of the input (a byte range, see :mod:`.blocks`) is encoded by one task
into ``part-NNNNN-RUN.ids.npy`` and ``part-NNNNN-RUN.rows.npy``; ``index.json``
lists the parts in order. Lines are encoded one by one, as ``bytepiece encode``
encodes them, and keyed by their global line number (1-based, across all inputs),
found by a cheap line-counting pass first, so samples do not depend on how the
corpus was cut into blocks or on the number of workers.

Why the folder is written this way:

- A folder that holds anything is refused unless ``overwrite=True`` (``--force``):
  shards are not silently mixed with other files.
- Every run has a run id, carried by its part files' names, so a run never writes
  over the files of another; ``index.json`` is written last, atomically, and only
  then are the files the previous index listed removed. An interrupted run leaves
  the previous index and its parts as they were (its own parts are removed, unless
  it was killed outright), never an index that disagrees with its parts.
- The index records each part file's size and BLAKE2b digest, and
  :func:`iter_encoded` / :func:`load_encoded` check them (and the part's line and
  token counts) before handing a part out: a part that is missing, damaged or from
  another run raises :class:`ShardError`.
- Nothing is deleted that the index of an earlier run did not list: files the tool
  did not write stay.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re

import numpy as np

from ..keys import blake2b
from .blocks import DEFAULT_BLOCKSIZE, list_blocks, read_block
from .cluster import connect
from .storage import fs_and_path, is_url, join, make_folder, read_path, write_path

SHARDS_FORMAT = "bytepiece-shards/1"
_LINE = re.compile(rb"[^\n]*\n|[^\n]+")
_PART_SUFFIXES = (".ids.npy", ".rows.npy")
_PART_NAME = r"part-[0-9]{5,}-[0-9a-f]+"  # (_part_name's: no folder, nothing outside `out`)
INDEX = "index.json"


class ShardError(ValueError):
    """A shard folder whose parts do not agree with its index (or that has none)."""


class InputChangedError(ValueError):
    """An input file that changed between the two passes of :func:`encode_files`."""


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return blake2b(data, digest_size=16).hexdigest()


def _write_part_file(path: str, array: np.ndarray, storage_options) -> dict:
    """Write one .npy file; its size and digest, for the index."""
    data = _npy_bytes(array)
    write_path(path, data, storage_options)
    return {"bytes": len(data), "blake2b": _digest(data)}


def _count_lines_task(block, storage_options) -> tuple[int, str]:
    """(the block's lines, the digest of its bytes): the encoding pass checks that it
    reads the same bytes, since the line numbers (the samples' keys) come from here."""
    path, offset, length = block
    _, data = read_block(path, offset, length, storage_options)
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0), _digest(data)


def _encode_task(block, index: int, first_line: int, seen: str, tok, opts):
    path, offset, length = block
    start, data = read_block(path, offset, length, opts["storage_options"])
    if _digest(data) != seen:
        raise InputChangedError(
            f"{path}: changed while it was encoded (bytes from {start} differ from the line-counting "
            "pass); encode it again once it is no longer written to"
        )
    lines = _LINE.findall(data)
    if not lines:
        return None
    datas = [tok.normalize_bytes(x) for x in lines] if opts["normalize"] else lines
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
    name = _part_name(index, opts["run"])
    out = opts["out"]
    files = {
        ".ids.npy": _write_part_file(join(out, name + ".ids.npy"), ids, opts["storage_options"]),
        ".rows.npy": _write_part_file(
            join(out, name + ".rows.npy"), np.asarray(rows, dtype=np.int64), opts["storage_options"]
        ),
    }
    return {
        "name": name,
        "first_line": first_line,
        "lines": len(datas),
        "tokens": int(len(ids)),
        "source": path,
        "start": start,
        "end": start + len(data),
        "files": files,
    }


def _part_name(index: int, run: str) -> str:
    return f"part-{index:05d}-{run}"


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
    overwrite: bool = False,
) -> dict:
    """Encode text files into token shards in the folder ``out``, on the workers.

    Each line (with its line ending) is encoded on its own, as ``bytepiece
    encode`` does. For each block that holds text, ``part-NNNNN-RUN.ids.npy``
    (all ids of its lines, in the tokenizer's ``id_dtype``) and
    ``part-NNNNN-RUN.rows.npy`` (int64 offsets: line ``i`` of the part is
    ``ids[rows[i]:rows[i + 1]]``) are written, and ``index.json`` lists the
    parts in order with their first global line number and each file's size and
    digest. ``model`` is a model path or a :class:`~bytepiece.tokenizer.Tokenizer`.
    ``alpha=None`` is the model's default (Viterbi unless the model file records
    one). With ``alpha >= 0``, line ``k`` (1-based, across all inputs) is sampled
    with key ``k`` and ``seed`` (or the tokenizer's seed; with neither, a random
    seed, recorded in the index), so the shards hold the same ids whatever
    ``blocksize`` and the number of workers. ``out`` may be a URL; the workers
    must be able to write there. Without a cluster argument, the blocks are
    encoded in this process. Returns the index.

    A folder that is not empty raises :class:`FileExistsError` unless
    ``overwrite=True``; then the new index replaces the old one (atomically, once
    every part is written) and the files the old index listed are removed; no other
    file is touched. A run that fails leaves the folder as it was.
    """
    from ..tokenizer import Tokenizer

    if isinstance(model, Tokenizer):
        tok = model
        if seed is not None:
            tok = Tokenizer(model.vocabulary, seed)
    else:
        tok = Tokenizer(model, seed)  # seed None: a random seed, the same on every worker
    if alpha is None and tok.alpha >= 0:
        alpha = tok.alpha  # the model file's default, as `bytepiece encode` uses it
    out = os.fspath(out)
    storage_options = dict(storage_options or {})
    blocks = list_blocks(paths, blocksize, storage_options)  # (a missing input stops here)
    previous = _check_folder(out, overwrite, storage_options)
    created = _make_folder(out, storage_options)
    run = os.urandom(6).hex()
    opts = {
        "alpha": alpha,
        "add_bos": add_bos,
        "add_eos": add_eos,
        "normalize": normalize,
        "threads": threads,
        "out": out,
        "run": run,
        "storage_options": storage_options,
    }
    where = {"client": client, "address": address, "scheduler_file": scheduler_file, "local_workers": local_workers}
    try:
        parts, counts = _encode_blocks(blocks, tok, opts, where, storage_options)
        parts = [p for p in parts if p is not None]
        # (the seed the tokenizer drew when none was given: the index records it; a
        # tokenizer has no public name for it yet)
        seed_used = getattr(tok, "_seed", None)
        index = {
            "format": SHARDS_FORMAT,
            "run": run,
            "vocab_size": tok.vocab_size,
            "dtype": np.dtype(tok.id_dtype).name,
            "alpha": alpha,
            "seed": seed_used if isinstance(seed_used, (int, str)) else None,
            "add_bos": add_bos,
            "add_eos": add_eos,
            "normalize": normalize,
            "lines": int(sum(counts)) if blocks else 0,
            "tokens": sum(p["tokens"] for p in parts),
            "files": list(dict.fromkeys(b[0] for b in blocks)),
            "parts": parts,
        }
        write_path(join(out, INDEX), json.dumps(index, indent=1).encode(), storage_options)
    except BaseException:
        # The previous index (if any) still stands, with its parts: remove only this run's.
        _remove(out, [_part_name(i, run) + s for i in range(len(blocks)) for s in _PART_SUFFIXES], storage_options)
        if created:
            _remove_empty_folder(out, storage_options)
        raise
    keep = {p["name"] for p in parts}
    _remove(out, [f for name in previous if name not in keep for f in _part_files(name)], storage_options)
    return index


def _encode_blocks(blocks, tok, opts: dict, where: dict, storage_options) -> tuple[list, list]:
    """(the index entry of every block's part or None, every block's line count)."""
    if all(v is None for v in where.values()):
        c, close = None, lambda: None
    else:
        c, close = connect(**where)
    try:
        if c is None:
            seen = [_count_lines_task(b, storage_options) for b in blocks]
        else:
            seen = c.gather(c.map(_count_lines_task, blocks, storage_options=storage_options, pure=False))
        counts = [n for n, _ in seen]
        digests = [d for _, d in seen]
        firsts = np.concatenate([[1], 1 + np.cumsum(counts, dtype=np.int64)])[:-1].tolist() if blocks else []
        if c is None:
            parts = [_encode_task(b, i, f, d, tok, opts) for i, (b, f, d) in enumerate(zip(blocks, firsts, digests))]
        else:
            tok_ref = c.scatter(tok, broadcast=True, hash=False)
            try:
                futures = [
                    c.submit(_encode_task, b, i, f, d, tok_ref, opts, pure=False)
                    for i, (b, f, d) in enumerate(zip(blocks, firsts, digests))
                ]
                parts = c.gather(futures)
            finally:
                tok_ref.release()
    finally:
        close()
    return parts, counts


def _part_files(name: str) -> list[str]:
    return [name + suffix for suffix in _PART_SUFFIXES]


def _listing(out: str, storage_options) -> list[str] | None:
    """The names in the folder ``out`` (None when there is no such folder)."""
    if is_url(out):
        fs, p = fs_and_path(out, storage_options)
        if not fs.exists(p):
            return None
        return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(p, detail=False)]
    try:
        return os.listdir(out)
    except FileNotFoundError:
        return None


def _check_folder(out: str, overwrite: bool, storage_options) -> list[str]:
    """Refuse a folder that is not empty (unless ``overwrite``) or whose index.json is
    not a shard index; the part names its index lists (to remove once replaced)."""
    names = _listing(out, storage_options)
    if not names:
        return []
    if not overwrite:
        raise FileExistsError(
            errno.EEXIST, "the folder is not empty; overwrite=True (--force) replaces the shards in it", out
        )
    if INDEX not in names:
        return []
    try:
        index = json.loads(read_path(join(out, INDEX), storage_options))
        listed = [part["name"] for part in index["parts"]] if index.get("format") == SHARDS_FORMAT else None
    except (ValueError, KeyError, TypeError, AttributeError):
        listed = None
    if listed is None or not all(isinstance(n, str) and re.fullmatch(r"part-[0-9a-f-]+", n) for n in listed):
        raise FileExistsError(
            errno.EEXIST, f"holds an {INDEX} that is not a bytepiece shard index; refusing to replace it", out
        )
    return listed


def _make_folder(out: str, storage_options) -> bool:
    """Make the folder ``out``; whether this call made it."""
    existed = _listing(out, storage_options) is not None
    make_folder(out, storage_options)
    return not existed


def _remove(out: str, names, storage_options) -> None:
    """Remove these files of the folder (those that are there)."""
    names = list(names)
    if not names:
        return
    if is_url(out):
        fs, p = fs_and_path(out, storage_options)
        for name in names:
            with contextlib.suppress(FileNotFoundError, OSError):
                fs.rm(p.rstrip("/") + "/" + name)
    else:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out, name))


def _remove_empty_folder(out: str, storage_options) -> None:
    with contextlib.suppress(OSError):
        if is_url(out):
            fs, p = fs_and_path(out, storage_options)
            if not fs.ls(p, detail=False):
                fs.rmdir(p)
        else:
            os.rmdir(out)  # (only if empty)


def iter_encoded(out: str, storage_options: dict | None = None):
    """(part entry of the index, ids, rows) for each part of a folder written by
    :func:`encode_files`, in order. Each part is checked against the index (its files'
    sizes and digests, its line and token counts) before it is handed out; a part that
    is missing or does not agree raises :class:`ShardError`."""
    out = os.fspath(out)
    try:
        index = json.loads(read_path(join(out, INDEX), storage_options))
    except FileNotFoundError:
        raise ShardError(f"{out}: no {INDEX}: not a bytepiece shard folder, or a run that did not finish") from None
    except ValueError as error:
        raise ShardError(f"{out}: {INDEX} is not valid JSON ({error})") from None
    if not isinstance(index, dict) or index.get("format") != SHARDS_FORMAT or not isinstance(index.get("parts"), list):
        raise ShardError(f"{out}: not a bytepiece shard folder")
    line = 1  # the next part's first line: the parts follow each other, line after line
    for part in index["parts"]:
        ids, rows = _checked_part(out, index, part, line, storage_options)
        line += len(rows) - 1
        yield part, ids, rows
    if line - 1 != index.get("lines"):
        raise ShardError(f"{out}: {INDEX} counts {index.get('lines')} lines, but its parts hold {line - 1}")


def _checked_part(out: str, index: dict, part, first_line: int, storage_options) -> tuple[np.ndarray, np.ndarray]:
    try:
        name = part["name"]
        lines, tokens = int(part["lines"]), int(part["tokens"])
        files = part.get("files") or {}  # (an index of an early version records no digests)
        ok = re.fullmatch(_PART_NAME, name) and int(part["first_line"]) == first_line and isinstance(files, dict)
    except (TypeError, KeyError, ValueError):
        ok = False
    if not ok:
        raise ShardError(f"{out}: {INDEX} has a damaged part entry: {str(part)[:200]}") from None
    arrays = []
    for suffix in _PART_SUFFIXES:
        path = join(out, name + suffix)
        try:
            data = read_path(path, storage_options)
        except FileNotFoundError:
            raise ShardError(f"{path}: missing, but {INDEX} lists it") from None
        recorded = files.get(suffix)
        if recorded is not None and (len(data) != recorded.get("bytes") or _digest(data) != recorded.get("blake2b")):
            raise ShardError(f"{path}: does not match {INDEX} (size or digest): damaged, or from another run")
        try:
            arrays.append(np.load(io.BytesIO(data), allow_pickle=False))
        except (ValueError, OSError, EOFError) as error:
            raise ShardError(f"{path}: not a readable .npy file ({error})") from None
    ids, rows = arrays
    agree = (
        ids.ndim == 1
        and rows.ndim == 1
        and len(ids) == tokens
        and len(rows) == lines + 1
        and int(rows[0]) == 0
        and int(rows[-1]) == tokens
        and (index.get("dtype") is None or ids.dtype.name == index["dtype"])
    )
    if not agree:
        raise ShardError(f"{join(out, name)}: its lines or tokens do not match {INDEX}: damaged, or from another run")
    return ids, rows


def load_encoded(out: str, storage_options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All shards of a folder as one (ids, rows) pair: line ``k`` (1-based) is
    ``ids[rows[k - 1]:rows[k]]``. Every part is checked against the index first
    (:func:`iter_encoded`); :class:`ShardError` when one does not agree."""
    all_ids, all_rows, base = [], [np.zeros(1, dtype=np.int64)], 0
    dtype = None
    for _, ids, rows in iter_encoded(out, storage_options):
        dtype = ids.dtype
        all_ids.append(ids)
        all_rows.append(rows[1:] + base)
        base += int(rows[-1])
    ids = np.concatenate(all_ids) if all_ids else np.zeros(0, dtype=dtype or np.int32)
    return ids, np.concatenate(all_rows)
