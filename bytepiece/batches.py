"""Many texts at once, and ids as flat numpy arrays: the engine behind
``Tokenizer.encode_batch`` and ``encode(..., as_numpy=True)``.

Why it is built this way: the compiled core (``bytepiece._core.batch``) segments a
batch without the GIL; this module decides how a batch is cut and which threads run
it, and joins the pieces. Lists of ids come from one core call per part of a batch
(helper threads segment while the calling thread builds the lists); flat arrays come
from blocks of texts run on the helper pool and concatenated. Samples are keyed per
text by the caller, so the result never depends on the thread count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import numpy as np

from . import _parallel
from ._core.batch import encode_flat, encode_lists
from ._core.lattice import Lattice
from .model import BOS_ID, EOS_ID

#: Texts per core call of one batch of lists (bounds the memory of the shared buffer).
LIST_BATCH_TEXTS = 1 << 16


class BatchEncoder:
    """Batches over one lattice. ``form`` is the Unicode normal form the core applies to
    str (None: none); ``convert`` turns any other input into bytes; ``dtype`` is the id
    type of flat arrays."""

    def __init__(self, lattice: Lattice, form: str | None, convert: Callable, dtype):
        self.lattice = lattice
        self.form = form
        self.convert = convert
        self.dtype = np.dtype(dtype)

    def lists(
        self, texts: list, alpha: float, seed_words, key_words, sampler: int, bos: int, eos: int, threads: int
    ) -> list[list[int]]:
        """The id list of every text (seed_words/key_words: one per text when alpha >= 0)."""

        def part(lo: int, hi: int) -> list[list[int]]:
            return encode_lists(
                self.lattice,
                texts[lo:hi],
                alpha=alpha,
                seed_words=_part(seed_words, lo, hi),
                key_words=_part(key_words, lo, hi),
                sampler=sampler,
                bos=bos,
                eos=eos,
                form=self.form,
                convert=self.convert,
                threads=threads,
                submit=_parallel.submit,
            )

        n = len(texts)
        if n <= LIST_BATCH_TEXTS:
            return part(0, n)
        results: list[list[int]] = []
        for lo in range(0, n, LIST_BATCH_TEXTS):
            results += part(lo, min(lo + LIST_BATCH_TEXTS, n))
        return results

    def arrays(
        self,
        texts: list,
        alpha: float,
        seed_words,
        key_words,
        sampler: int,
        bos: int,
        eos: int,
        threads: int,
        with_offsets: bool,
    ):
        """(ids, rows[, spans]) of the texts: see ``Tokenizer.encode_batch(as_numpy=True)``."""
        blocks = _parallel.blocks(len(texts), threads)
        parts: list = [None] * len(blocks)
        small = self.dtype == np.uint16

        def run_block(index: int, lo: int, hi: int) -> None:
            parts[index] = encode_flat(
                self.lattice,
                texts[lo:hi],
                alpha=alpha,
                seed_words=_part(seed_words, lo, hi),
                key_words=_part(key_words, lo, hi),
                sampler=sampler,
                bos=bos,
                eos=eos,
                small=small,
                with_ends=with_offsets,
                form=self.form,
                convert=self.convert,
            )

        if threads <= 1:
            for block in blocks:
                run_block(*block)
        else:
            _parallel.run_parallel(run_block, blocks, threads)
        return join_flat(parts, self.dtype, with_offsets)

    def text_array(
        self,
        data: bytes,
        parts: list[tuple[int, int, int]],
        alpha: float,
        seed_words,
        key_words,
        sampler: int,
        add_bos: bool,
        add_eos: bool,
        with_ends: bool,
    ):
        """The ids of one text as an array of dtype, written by the core (no Python int
        per token). ``parts`` are the text's runs of ordinary text and special tokens
        (``SpecialTokens.split``); the runs go to the core as one batch, run j drawn with
        (seed_words[j], key_words[j]). With ``with_ends``, (ids, ends): the int32 end byte
        of every token (0 for <bos>, the text's length for <eos>)."""
        runs = [data[lo:hi] if (lo or hi != len(data)) else data for lo, hi, special in parts if special < 0]
        specials = [special for _, _, special in parts if special >= 0]
        if not parts:
            runs = [data]  # an empty text still gets its <bos>/<eos>
        small = self.dtype == np.uint16
        if not specials:
            ids, _, ends = encode_flat(
                self.lattice,
                runs,
                alpha=alpha,
                seed_words=seed_words,
                key_words=key_words,
                sampler=sampler,
                bos=BOS_ID if add_bos else -1,
                eos=EOS_ID if add_eos else -1,
                small=small,
                with_ends=with_ends,
            )
            # The core's buffers have room for one token per byte; keep only what is used.
            if ids.base is not None and 2 * len(ids) < ids.base.size:
                ids = ids.copy()
                ends = None if ends is None else ends.copy()
            return (ids, ends) if with_ends else ids
        flat, rows, flat_ends = encode_flat(
            self.lattice,
            runs,
            alpha=alpha,
            seed_words=seed_words,
            key_words=key_words,
            sampler=sampler,
            small=small,
            with_ends=with_ends,
        )
        size = len(flat) + len(specials) + add_bos + add_eos
        out = np.empty(size, dtype=self.dtype)
        ends = np.empty(size if with_ends else 0, dtype=np.int32)
        at = 0
        if add_bos:
            out[0] = BOS_ID
            if with_ends:
                ends[0] = 0
            at = 1
        run = 0
        for lo, hi, special in parts:
            if special >= 0:
                out[at] = special
                if with_ends:
                    ends[at] = hi
                at += 1
            else:
                a, b = rows[run], rows[run + 1]
                out[at : at + b - a] = flat[a:b]
                if flat_ends is not None:
                    ends[at : at + b - a] = flat_ends[a:b] + lo
                at += b - a
                run += 1
        if add_eos:
            out[at] = EOS_ID
            if with_ends:
                ends[at] = len(data)
        return (out, ends) if with_ends else out


def _part(words: np.ndarray | None, lo: int, hi: int) -> np.ndarray | None:
    """The key words of texts lo .. hi - 1 (None for Viterbi, which draws none)."""
    return None if words is None else words[lo:hi]


def join_flat(parts: Sequence, dtype, with_offsets: bool):
    """Concatenate per-block (ids, rows, ends) into one (ids, rows[, spans])."""
    if not parts:
        empty = (np.empty(0, dtype=dtype), np.zeros(1, dtype=np.int64))
        return empty + ((np.empty((0, 2), dtype=np.int32),) if with_offsets else ())
    ids = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    rows_list, base = [np.zeros(1, dtype=np.int64)], 0
    for p in parts:
        rows_list.append(p[1][1:] + base)
        base += int(p[1][-1])
    rows = np.concatenate(rows_list)
    if not with_offsets:
        return ids, rows
    ends = np.concatenate([p[2] for p in parts]) if len(parts) > 1 else parts[0][2]
    spans = np.empty((len(ends), 2), dtype=np.int32)
    spans[:, 1] = ends
    if len(ends):
        spans[1:, 0] = ends[:-1]
        first = rows[:-1][rows[:-1] < rows[1:]]  # first token of every non-empty text
        spans[first, 0] = 0
    return ids, rows, spans
