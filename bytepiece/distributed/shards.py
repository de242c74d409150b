"""Encoding text files into token shards on a Dask cluster's workers.

Each block of the input (a byte range, see :mod:`.blocks`) is encoded by one task
into ``part-NNNNN.ids.npy`` and ``part-NNNNN.rows.npy``; ``index.json`` lists the
parts in order. Lines are encoded one by one, as ``bytepiece encode`` encodes them,
and keyed by their global line number (1-based, across all inputs), found by a cheap
line-counting pass first, so samples do not depend on how the corpus was cut into
blocks or on the number of workers.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from .blocks import DEFAULT_BLOCKSIZE, list_blocks, read_block
from .cluster import connect
from .storage import fs_and_path, is_url, join, make_folder, read_npy, read_path, write_npy, write_path

SHARDS_FORMAT = "bytepiece-shards/1"
_LINE = re.compile(rb"[^\n]*\n|[^\n]+")
_PART_SUFFIXES = (".ids.npy", ".rows.npy")


def _count_lines_task(block, storage_options) -> int:
    path, offset, length = block
    _, data = read_block(path, offset, length, storage_options)
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _encode_task(block, index: int, first_line: int, tok, opts):
    path, offset, length = block
    start, data = read_block(path, offset, length, opts["storage_options"])
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
    name = f"part-{index:05d}"
    out = opts["out"]
    write_npy(join(out, name + ".ids.npy"), ids, opts["storage_options"])
    write_npy(join(out, name + ".rows.npy"), np.asarray(rows, dtype=np.int64), opts["storage_options"])
    return {
        "name": name,
        "first_line": first_line,
        "lines": len(datas),
        "tokens": int(len(ids)),
        "source": path,
        "start": start,
        "end": start + len(data),
    }


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
    make_folder(out, storage_options)
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
    # (the seed the tokenizer drew when none was given: the index records it; a
    # tokenizer has no public name for it yet)
    seed_used = getattr(tok, "_seed", None)
    index = {
        "format": SHARDS_FORMAT,
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
    write_path(join(out, "index.json"), json.dumps(index, indent=1).encode(), storage_options)
    _remove_stale_parts(out, {p["name"] for p in parts}, storage_options)
    return index


def _remove_stale_parts(out: str, keep: set, storage_options) -> None:
    """Delete part files that the new index.json does not list (left by an earlier run
    over more blocks into the same folder), so the folder holds exactly one encoding."""
    if is_url(out):
        fs, p = fs_and_path(out, storage_options)
        names = [(path, path.rsplit("/", 1)[-1]) for path in fs.glob(p.rstrip("/") + "/part-*.npy")]
        remove = fs.rm
    else:
        names = [(os.path.join(out, n), n) for n in os.listdir(out) if n.startswith("part-") and n.endswith(".npy")]
        remove = os.remove
    for path, name in names:
        stem = next((name[: -len(s)] for s in _PART_SUFFIXES if name.endswith(s)), None)
        if stem is not None and stem not in keep:
            remove(path)


def iter_encoded(out: str, storage_options: dict | None = None):
    """(part entry of the index, ids, rows) for each part of a folder written by
    :func:`encode_files`, in order."""
    out = os.fspath(out)
    index = json.loads(read_path(join(out, "index.json"), storage_options))
    if index.get("format") != SHARDS_FORMAT:
        raise ValueError(f"{out}: not a bytepiece shard folder")
    for part in index["parts"]:
        ids = read_npy(join(out, part["name"] + ".ids.npy"), storage_options)
        rows = read_npy(join(out, part["name"] + ".rows.npy"), storage_options)
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
