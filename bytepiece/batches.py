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

import functools
from collections.abc import Callable, Iterable, Sequence

from . import _parallel
from ._core.batch import encode_flat, encode_lists
from ._core.lattice import Lattice
from ._numpy import is_array, np
from .constraints import Pattern
from .encoding import TextEncoder, check_alpha, check_count, not_a_text, sampler_code
from .model import BOS_ID, EOS_ID
from .special import SpecialSet

#: Texts per core call of one batch of lists (bounds the memory of the shared buffer).
LIST_BATCH_TEXTS = 1 << 16


def _per_text(spec: Sequence | None, n: int, name: str) -> list:
    """One constraint entry per text (None: none for any)."""
    if spec is None:
        return [None] * n
    if isinstance(spec, (str, bytes)) or not (isinstance(spec, Sequence) or is_array(spec)):
        raise TypeError(f"{name} in encode_batch is a sequence with one entry per text (positions, a mask or None)")
    if len(spec) != n:
        raise ValueError(f"{name} has {len(spec)} entries for {n} texts")
    return list(spec)


class BatchEncoder:
    """Batches over one tokenizer's lattice. ``form`` is the Unicode normal form the core
    applies to str (None: none); ``convert`` turns any other input into bytes; ``dtype``
    is the id type of flat arrays. ``encoder`` (a TextEncoder) encodes the texts that
    need the careful path; ``words(key)`` gives a keyed draw's (seed word, key word) and
    ``draw_block(n)`` the (stream word, first number) of n consecutive unkeyed draws."""

    def __init__(
        self,
        lattice: Lattice,
        form: str | None,
        convert: Callable,
        dtype,
        encoder: TextEncoder,
        words: Callable[[object], tuple[int, int]],
        draw_block: Callable[[int], tuple[int, int]],
        default_alpha: float,
    ):
        # (the parts kept as attributes, as every façade part does: alike by shape only)
        self.lattice = lattice
        self.form = form
        self.convert = convert
        self._dtype = dtype  # (a numpy type or its name: see dtype)
        self.encoder = encoder
        self.words = words
        self.draw_block = draw_block
        self.default_alpha = default_alpha

    @functools.cached_property
    def dtype(self) -> np.dtype:
        """numpy's dtype of the id type given (made on first use: numpy is imported then)."""
        return np.dtype(self._dtype)

    # (encode_batch's parameters mirror TokenizerCore.encode's on purpose: a batch takes
    # what one text takes)
    def encode_batch(
        self,
        texts: Sequence,
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float | None = None,
        keys: Sequence | None = None,
        num_threads: int | None = None,
        *,
        sampler: str = "exact",
        allowed_special: SpecialSet = (),
        disallowed_special: SpecialSet = (),
        as_numpy: bool = False,
        return_offsets: bool = False,
        num_samples: int | None = None,
        required_boundaries: Sequence | None = None,
        forbidden_boundaries: Sequence | None = None,
        boundary_regex: Pattern | None = None,
    ):
        """``[encode(t) for t in texts]`` on several threads, the GIL released in the core.

        >>> tok.encode_batch(["a text", "another"], alpha=0.1, keys=[0, 1])
        [[100, 35, 4686, 119], [1256, 13272]]
        >>> ids, rows = tok.encode_batch(["a text", "another"], as_numpy=True)
        >>> ids[rows[1]:rows[2]]
        array([22797], dtype=uint16)

        With ``keys`` (one per text) each result depends only on (seed, key, text, alpha),
        never on ``num_threads`` or the position in the batch. Without keys the texts
        draw consecutive calls of this tokenizer's unkeyed stream.

        ``as_numpy=True`` returns ``(ids, rows)``: all ids in one array of
        :attr:`id_dtype` and int64 row offsets (text ``i`` is ``ids[rows[i]:rows[i + 1]]``),
        built without Python lists. With ``return_offsets`` as well, a third int32 array
        of shape (number of ids, 2) holds every token's byte span within its text.
        ``return_offsets`` alone gives one :class:`Encoding` per text. For the special
        token arguments see :meth:`encode`.

        ``num_samples=k`` (with ``alpha >= 0``) draws k independent segmentations of every
        text from one forward pass each, as :meth:`sample` does: a list per text of k id
        lists (text ``i`` with key ``keys[i]`` gives ``sample(text, k, alpha, key=keys[i])``),
        or with ``as_numpy`` one array of ids and rows over the ``n * k`` draws (draw j
        of text i is row ``i * k + j``).

        ``required_boundaries`` / ``forbidden_boundaries`` give each text's boundary
        constraints (a sequence with one entry per text: positions, a mask or None) and
        ``boundary_regex`` one pattern for every text, as :meth:`encode` takes them; text
        ``i`` then gives ``encode(texts[i], key=keys[i], ...)`` with its constraints.
        """
        alpha = check_alpha(self.default_alpha if alpha is None else alpha)
        if isinstance(texts, (str, bytes)):
            raise TypeError("encode_batch takes a sequence of texts; use encode for one text")
        texts = list(texts)
        try:
            n = len(texts)
            if num_threads is not None:
                _parallel.thread_count(num_threads, ())  # (checked on every path, used on some)
            if keys is not None:
                keys = list(keys)
                if len(keys) != n:
                    raise ValueError(f"keys has {len(keys)} entries for {n} texts")
            code = sampler_code(sampler)
            if required_boundaries is not None or forbidden_boundaries is not None or boundary_regex is not None:
                if num_samples is not None or return_offsets:
                    raise ValueError(
                        "boundary constraints in encode_batch do not combine with num_samples or return_offsets; "
                        "call sample or encode_with_offsets per text"
                    )
                required = _per_text(required_boundaries, n, "required_boundaries")
                forbidden = _per_text(forbidden_boundaries, n, "forbidden_boundaries")
                text_keys = [None] * n if keys is None else keys
                special = (allowed_special, disallowed_special)
                spans = self.encoder.spans
                results = [
                    spans(t, add_bos, add_eos, alpha, k, sampler, *special, (r, f, boundary_regex), False)[0]
                    for t, k, r, f in zip(texts, text_keys, required, forbidden)
                ]
                if as_numpy:
                    return self.join_arrays((np.array(ids, dtype=self.dtype) for ids in results), False)
                return results
            if num_samples is not None:
                if allowed_special or disallowed_special or return_offsets or sampler != "exact" or alpha < 0:
                    raise ValueError(
                        "num_samples draws exact samples (alpha >= 0) of plain texts: it does not combine with "
                        "special tokens, offsets or another sampler"
                    )
                count = check_count(num_samples, "num_samples", minimum=0)
                seeds, words = self.draw_words(n, alpha, keys)
                threads = _parallel.thread_count(num_threads, texts)
                return self.samples(texts, count, alpha, seeds, words, add_bos, add_eos, threads, as_numpy)
            if allowed_special or disallowed_special or (return_offsets and not as_numpy):
                special = (allowed_special, disallowed_special)
                text_keys = [None] * n if keys is None else keys
                if as_numpy:
                    encoded = (
                        self.encoder.array(t, add_bos, add_eos, alpha, k, sampler, *special, return_offsets)
                        for t, k in zip(texts, text_keys)
                    )
                    return self.join_arrays(encoded, return_offsets)
                encodings = [
                    self.encoder.encode_with_offsets(
                        t,
                        add_bos,
                        add_eos,
                        alpha,
                        key=k,
                        sampler=sampler,
                        allowed_special=special[0],
                        disallowed_special=special[1],
                    )
                    for t, k in zip(texts, text_keys)
                ]
                return encodings if return_offsets else [e.ids for e in encodings]
            seeds, words = self.draw_words(n, alpha, keys)
            bos = BOS_ID if add_bos else -1
            eos = EOS_ID if add_eos else -1
            threads = _parallel.thread_count(num_threads, texts)
            if as_numpy:
                return self.arrays(texts, alpha, seeds, words, code, bos, eos, threads, return_offsets)
            return self.lists(texts, alpha, seeds, words, code, bos, eos, threads)
        except TypeError:
            error = not_a_text(texts)  # (a text that is not one: its index is named)
            if error is None:
                raise
            raise error from None

    def samples(
        self,
        texts: list,
        count: int,
        alpha: float,
        seeds,
        words,
        add_bos: bool,
        add_eos: bool,
        threads: int,
        as_numpy: bool,
    ):
        """``count`` draws of every text (text i with seeds[i], words[i]), from one forward
        pass per text, on ``threads`` threads (blocks of texts)."""
        from ._core import draws as _draws  # (it imports numpy: not at import time)

        out: list = [None] * len(texts)
        head = [BOS_ID] if add_bos else []
        tail = [EOS_ID] if add_eos else []

        def run_block(index: int, lo: int, hi: int) -> None:
            for i in range(lo, hi):
                got, _ = _draws.sample_many(
                    self.lattice,
                    self.convert(texts[i]),
                    count,
                    alpha,
                    int(seeds[i]),
                    int(words[i]),
                    lists=True,
                    log_probs=False,
                )
                out[i] = [head + ids + tail for ids in got] if (head or tail) else got

        _parallel.run_parallel(run_block, _parallel.blocks(len(texts), threads), threads)
        if not as_numpy:
            return out
        draws = [ids for per_text in out for ids in per_text]
        rows = np.zeros(len(draws) + 1, dtype=np.int64)
        np.cumsum([len(ids) for ids in draws], out=rows[1:])
        flat = np.fromiter((i for ids in draws for i in ids), dtype=self.dtype, count=int(rows[-1]))
        return flat, rows

    def draw_words(self, n: int, alpha: float, keys) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(seed words, key words) of n texts, one each: from ``keys`` (one per text), or
        n consecutive unkeyed draws when keys is None; (None, None) for Viterbi."""
        if alpha < 0:
            return None, None
        seeds = np.empty(n, dtype=np.uint64)
        key_words = np.empty(n, dtype=np.uint64)
        if keys is None:
            stream_word, first = self.draw_block(n)
            seeds.fill(stream_word)
            key_words[:] = np.arange(n, dtype=np.uint64)
            key_words += np.uint64(first)
        else:
            for i, key in enumerate(keys):
                seeds[i], key_words[i] = self.words(key)
        return seeds, key_words

    def join_arrays(self, encoded: Iterable, with_ends: bool) -> tuple:
        """(ids, rows[, spans]) from one text's ``ids`` array (or with ``with_ends``, its
        ``(ids, ends)`` pair) at a time, as ``TextEncoder.array`` gives them, joined as
        the flat path joins its blocks."""
        parts = []
        for got in encoded:
            ids, ends = got if with_ends else (got, None)
            parts.append((ids, np.array([0, len(ids)], dtype=np.int64), ends))
        return join_flat(parts, self.dtype, with_ends)

    def lists(
        self, texts: list, alpha: float, seed_words, key_words, sampler: int, bos: int, eos: int, threads: int
    ) -> list[list[int]]:
        """The id list of every text (seed_words/key_words: one per text when alpha >= 0)."""

        # (encode_lists here and encode_flat in arrays spell out the arguments they share on
        # purpose: passing them as one dict slows every encode_batch call measurably.)
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
