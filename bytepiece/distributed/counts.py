"""Counts: one counting stage's merged tables, saved to a file and merged with others.

A corpus can be counted in shards on different days or machines and finished later:
stage 1 (n-grams) over every shard, merged; stage 2 (pieces, tagged with the merged
n-gram model of the *whole* corpus) over every shard, merged; then
:func:`~bytepiece.distributed.train_from_counts`. Each file records the trainer options
its counts depend on (never credentials), and merging or finishing checks that they
agree; merged counts equal counting all their sources in one run.

File layout: ``BPCOUNT1``, a JSON header (stage, settings, sources, bytes, sections),
then length-prefixed sections: the table, and for piece counts the pair table and the
EM sample as (hash, chunk) pairs.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Sequence

import numpy as np

from ..keys import blake2b
from ..training import TrainerOptions, kernels, ngrams, pieces
from ..training.sample import SampleCollector
from .storage import is_url, read_path, write_path

_COUNTS_MAGIC = b"BPCOUNT2"  # (then everything else, then a BLAKE2b-128 of all before it)
_UNCHECKED_MAGIC = b"BPCOUNT1"  # (files of earlier versions: no digest at the end)
_CHECK = 16
#: What piece counts made without tagging (the n-gram EM seed) record as their model.
UNTAGGED = "untagged"


def ngram_settings(options: TrainerOptions, errors: str | None) -> dict:
    """The options n-gram counts depend on (saved with them)."""
    return {
        "order": options.order,
        "isolate_digits": bool(options.isolate_digits),
        "normalization": options.normalization,
        "budget": options.budget_entries,
        "errors": errors,
    }


def piece_settings(options: TrainerOptions, errors: str | None, digest: str) -> dict:
    """The options piece counts depend on, and the digest of the n-gram model that tagged them."""
    s = ngram_settings(options, errors)
    s.update(
        ensure_unicode=bool(options.ensure_unicode),
        pair_length=options.pair_length,
        sample_bytes=options.sample_bytes,
        min_count=options.min_count,
        model=digest,
    )
    return s


def sample_pairs(sample: SampleCollector | None) -> list[tuple[int, bytes]]:
    return sample.pairs() if sample is not None else []


def _canonical_digest(data: bytes, header: int, unit: str) -> str:
    """A digest of a serialised NgramTable / NgramModel that ignores hash-table layout
    (entries sorted by key), so equal tables give equal digests."""
    h = blake2b(digest_size=16)
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

    def part(self) -> pieces.PiecePart:
        """The piece counts as the piece stage's merged part (pieces stage only)."""
        sample = SampleCollector.of_pairs(self.sample, self.settings["sample_bytes"]) if self.sample else None
        return pieces.PiecePart(self.table, self.pairs, sample, self.nbytes)

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
        body = b"".join(parts)
        write_path(os.fspath(path), body + blake2b(body, digest_size=_CHECK).digest(), storage_options)


def load_counts(path, storage_options: dict | None = None) -> Counts:
    """Read a file written by :meth:`Counts.save`; a file that is not one, or whose
    digest does not match (damaged, truncated), raises ValueError naming it."""
    path = os.fspath(path)
    data = read_path(path, storage_options)
    if data[:8] == _COUNTS_MAGIC:  # (the parse reads its sections by their lengths: the digest after them stays)
        body = memoryview(data)[:-_CHECK]
        if len(data) < 8 + _CHECK or blake2b(body, digest_size=_CHECK).digest() != data[-_CHECK:]:
            raise ValueError(f"{path}: a damaged counts file (its digest does not match: truncated or changed)")
    elif data[:8] != _UNCHECKED_MAGIC:
        raise ValueError(f"{path}: not a bytepiece counts file")
    try:
        return _parse_counts(data)
    except (ValueError, KeyError, IndexError, TypeError, struct.error) as error:
        raise ValueError(f"{path}: a damaged counts file ({error})") from None


def _parse_counts(data: bytes) -> Counts:
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
            kernels.ngram_table_from_bytes(sections[0]),
            sources=header["sources"],
            nbytes=header["nbytes"],
        )
    pairs = kernels.piece_table_from_bytes(sections[1]) if sections[1] else None
    return Counts(
        "pieces",
        header["settings"],
        kernels.piece_table_from_bytes(sections[0]),
        pairs,
        _unpack_sample(sections[2]),
        header["sources"],
        header["nbytes"],
    )


def merge_counts(items: Iterable[Counts | str | os.PathLike[str]], allow_overlap: bool = False) -> Counts:
    """Sum counts of the same stage and settings (Counts objects or file paths). The
    result equals counting all their sources in one run. A source named twice raises
    ValueError (it would be counted twice) unless ``allow_overlap``."""
    counts = [c if isinstance(c, Counts) else load_counts(c) for c in items]
    if not counts:
        raise ValueError("nothing to merge")
    first = counts[0]
    for c in counts[1:]:
        if c.stage != first.stage:
            raise ValueError(f"cannot merge {first.stage} counts with {c.stage} counts")
        if c.settings != first.settings:
            diff = {
                k: (first.settings.get(k), c.settings.get(k))
                for k in set(first.settings) | set(c.settings)
                if first.settings.get(k) != c.settings.get(k)
            }
            raise ValueError(f"counts made with different settings: {diff}")
    sources = [s for c in counts for s in c.sources]
    if not allow_overlap:
        # (one file under two names, a symbolic link or a linked folder, is one source)
        files = [s if is_url(s) else os.path.realpath(s) for s in sources]
        if len(set(files)) != len(files):
            dup = sorted({s for s, f in zip(sources, files) if files.count(f) > 1})
            raise ValueError(f"these sources are in more than one of the counts: {dup}")
    s = first.settings
    nbytes = sum(c.nbytes for c in counts)
    if first.stage == "ngrams":
        form = s.get("normalization", "NFC")
        settings = ngrams.NgramSettings(s["order"], s["isolate_digits"], s["budget"], 0, form)
        parts = [ngrams.NgramPart(c.table, c.nbytes, None) for c in counts]
        return Counts("ngrams", s, ngrams.merge_parts(settings, parts, False).table, sources=sources, nbytes=nbytes)
    block_settings = pieces.PieceSettings(
        s["isolate_digits"], s["ensure_unicode"], s["pair_length"], s["sample_bytes"], s.get("normalization", "NFC")
    )
    merged = pieces.merge_parts(block_settings, [c.part() for c in counts], False)
    return Counts("pieces", s, merged.pieces, merged.pairs, sample_pairs(merged.sample), sources, nbytes)
