"""Stage 2: tag the corpus with the n-gram model and count the pieces (0.6.3's
algorithm), drawing the EM sample in the same pass.

Each block's chunks are tagged by the n-gram Viterbi into pieces, counted into a
PieceTable, with (for the tagged EM seed with ``em_pairs``) the concatenations of
adjacent pieces into a second one; tables merge by integer addition. Without an n-gram
model (the EM's n-gram seed on an engine that keeps its stages apart) the pass only
draws the EM sample. The n-gram model is the job's shared input: engines send it to
each worker once.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

from ..corpus import chunk_block
from ..progress import Progress
from . import kernels
from .engines import CountingJob
from .options import TrainerOptions
from .sample import SampleCollector


class PieceSettings(NamedTuple):
    """What counting a block depends on (besides the n-gram model)."""

    isolate_digits: bool
    ensure_unicode: bool
    pair_length: int  # adjacent pairs up to this many bytes are counted (0: none)
    sample_bytes: int  # the EM sample (0: none)
    form: str = "NFC"  # the normalisation of the text


class PiecePart(NamedTuple):
    """The counts of some blocks: pieces, pairs of adjacent pieces (or None), the EM
    sample (or None), bytes read."""

    pieces: kernels.PieceTable
    pairs: kernels.PieceTable | None
    sample: SampleCollector | None
    nbytes: int


class PieceResult(NamedTuple):
    """The end of the piece stage."""

    pieces: kernels.PieceTable | None  # None when nothing was tagged
    pair_counts: dict[bytes, int]  # adjacent pairs seen at least min_count times
    sample: SampleCollector


def settings_of(options: TrainerOptions) -> PieceSettings:
    return PieceSettings(
        bool(options.isolate_digits),
        bool(options.ensure_unicode),
        options.pair_length,
        options.sample_bytes,
        options.normalization,
    )


def count_block(settings: PieceSettings, model, documents: list) -> PiecePart:
    """The PiecePart of one block of documents, tagged with `model` (None: only the sample)."""
    chunks = chunk_block(documents, settings.isolate_digits, settings.form)
    if model is None:
        pieces, pairs = kernels.new_piece_table(), None
    else:
        pieces, pairs = kernels.count_pieces_block(chunks, model, settings.ensure_unicode, settings.pair_length or 1)
    sample = SampleCollector.of_chunks(chunks, settings.sample_bytes) if settings.sample_bytes else None
    return PiecePart(pieces, pairs if settings.pair_length else None, sample, sum(map(len, chunks)))


def merge_parts(settings: PieceSettings, parts: list[PiecePart], reuse_first: bool) -> PiecePart:
    """The sums of the parts' tables and the bottom of their samples; reuse_first as in
    :func:`bytepiece.training.ngrams.merge_parts`."""
    samples = [p.sample for p in parts if p.sample is not None]
    if reuse_first:
        pieces, pairs, sample = parts[0].pieces, parts[0].pairs, parts[0].sample
        for part in parts[1:]:
            pieces.merge(part.pieces)
            if pairs is not None and part.pairs is not None:
                pairs.merge(part.pairs)
            if sample is not None:
                sample.add(part.sample)
    else:
        pieces = kernels.new_piece_table()
        pairs = kernels.new_piece_table() if settings.pair_length else None
        for part in parts:
            pieces.merge(part.pieces)
            if pairs is not None and part.pairs is not None:
                pairs.merge(part.pairs)
        sample = SampleCollector.union(samples, settings.sample_bytes) if samples else None
    return PiecePart(pieces, pairs, sample, sum(p.nbytes for p in parts))


def pieces_status(part: PiecePart) -> str:
    return f", {len(part.pieces)} distinct pieces"


def job(settings: PieceSettings, model) -> CountingJob:
    return CountingJob(
        "pieces", partial(count_block, settings), partial(merge_parts, settings), pieces_status, shared=model
    )


def finish(part: PiecePart | None, options: TrainerOptions, progress: Progress) -> PieceResult:
    """The end of the piece stage, given the merged part (whatever engine made it)."""
    if part is None:
        part = PiecePart(kernels.new_piece_table(), None, None, 0)
    tagged = part.pieces if options.tagging else None
    progress.finish(f"; {len(part.pieces)} distinct pieces" if options.tagging else "; EM sample only")
    pair_counts: dict[bytes, int] = (
        part.pairs.to_dict(kernels.count_floor(options.min_count)) if part.pairs is not None else {}
    )
    sample = part.sample if part.sample is not None else SampleCollector(options.sample_bytes)
    return PieceResult(tagged, pair_counts, sample)
