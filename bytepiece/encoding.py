"""Encoding one text the careful way: normalisation, special tokens, boundary constraints,
token spans.

``Tokenizer.encode`` has a fast path for the common call (no special tokens, no
constraints, no offsets) that goes straight to the compiled lattice. Everything else
comes here. A text is cut into runs of ordinary text and special tokens
(:mod:`bytepiece.special`); each run of ordinary text is segmented on its own, under
its share of the boundary constraints (:mod:`bytepiece.constraints`). The first run
draws with the call's own key word, so a text without special tokens samples exactly
as the fast path does; later runs draw with key words derived from it.
"""

from __future__ import annotations

import functools
import struct
import unicodedata
from collections.abc import Callable, Sequence
from typing import NamedTuple, NoReturn

from . import constraints
from ._core.batch import encode_flat
from ._core.constrained import encode_constrained
from ._core.draws import MAX_COUNT
from ._core.lattice import MAX_ALPHA, Lattice
from ._core.lattice import SAMPLERS as CORE_SAMPLERS
from ._numpy import np
from .keys import blake2b, exact_integer
from .model import BOS_ID, EOS_ID, FIRST_PIECE_ID
from .special import SpecialSet, SpecialTokens

#: The samplers a caller may name.
SAMPLERS = {name: CORE_SAMPLERS[name] for name in ("exact", "legacy-v1")}


class Encoding(NamedTuple):
    """Ids of a text with the span of every token.

    ``offsets[k] == (start, end)``: token ``k`` covers ``data[start:end]`` of the text's
    UTF-8 bytes (after normalisation). ``char_offsets[k]``: the characters it touches,
    ``text[start:end]`` of the normalised text; a token holding only part of a
    character's bytes still touches that whole character, so two tokens that split a
    character both include it. ``<bos>`` is ``(0, 0)``, ``<eos>`` is ``(n, n)``.
    """

    ids: list[int]
    offsets: list[tuple[int, int]]
    char_offsets: list[tuple[int, int]]


def _alpha_number(alpha, limits: str) -> float:
    """alpha as a float: a number (not a string, a bool or None), finite or not; one too
    large for a float is the ValueError an out-of-range alpha gets."""
    if alpha is None or isinstance(alpha, (str, bytes, bytearray, bool, np.bool_)):
        raise TypeError(f"alpha must be a number, not {type(alpha).__name__} {alpha!r}")
    try:
        return float(alpha)
    except OverflowError:
        shown = f"an integer of {len(str(abs(int(alpha))))} digits" if isinstance(alpha, int) else repr(alpha)
        raise ValueError(f"alpha must be {limits}, not {shown}") from None


def not_a_text(texts: Sequence) -> TypeError | None:
    """The TypeError of the first of texts that encode would refuse (not str or bytes:
    encode's own message, with the text's index); None when there is none."""
    for i, text in enumerate(texts):
        if not isinstance(text, (str, bytes, bytearray, memoryview)):
            return TypeError(f"text {i} must be str or bytes, not {type(text).__name__}")
    return None


def check_alpha(alpha) -> float:
    """alpha as a float: negative for Viterbi, else a sampling alpha up to MAX_ALPHA."""
    alpha = _alpha_number(alpha, f"negative (Viterbi) or a number from 0 to {MAX_ALPHA:g} (sampling)")
    if not alpha <= MAX_ALPHA:  # (NaN too)
        raise ValueError(
            f"alpha must be negative (Viterbi) or a number from 0 to {MAX_ALPHA:g} (sampling), not {alpha}"
        )
    return alpha


def check_sampling_alpha(alpha) -> float:
    """alpha as a float from 0 to MAX_ALPHA: the alphas of sampling and lattice queries."""
    alpha = _alpha_number(alpha, f"a number from 0 to {MAX_ALPHA:g} here")
    if not (0.0 <= alpha <= MAX_ALPHA):
        raise ValueError(
            f"alpha must be a number from 0 to {MAX_ALPHA:g} here, not {alpha} (as alpha grows the "
            f"distribution tends to Viterbi's ties shared evenly)"
        )
    return alpha


def check_count(value, name: str, minimum: int = 1) -> int:
    """A count argument (n, k, num_samples) as an int from ``minimum`` to MAX_COUNT: any
    integer type (numpy's too), never a bool, a float or a string."""
    try:
        count = exact_integer(value)
    except TypeError as error:
        raise TypeError(f"{name} must be an integer, not {error}") from None
    if not minimum <= count <= MAX_COUNT:
        raise ValueError(f"{name} must be from {minimum} to {MAX_COUNT}, not {count}")
    return count


def sampler_code(sampler: str) -> int:
    """The core's number for a sampler's name."""
    try:
        return SAMPLERS[sampler]
    except KeyError:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, not {sampler!r}") from None


def run_key_word(key_word: int, index: int) -> int:
    """The key word of the index-th run of ordinary text between special tokens (the
    first run, index 0, uses the call's key word itself)."""
    if index == 0:
        return key_word
    packed = struct.pack("<QQ", key_word & 0xFFFFFFFFFFFFFFFF, index)
    return int.from_bytes(blake2b(b"special-split" + packed, digest_size=8).digest(), "little")


def normalize_form(form: str, text: str) -> str:
    """unicodedata.normalize with a model's form (a str: "NFC", "NFKC", "NFD" or "NFKD")."""
    return unicodedata.normalize(form, text)  # type: ignore[arg-type]


class Normalizer:
    """A model's Unicode normalisation of str input: "NFC" (BytePiece 0.6.3's), "NFKC",
    "NFD", "NFKD" or "none". Bytes input is taken as it is."""

    def __init__(self, form: str):
        self.form = form
        self.active = form != "none"

    def to_bytes(self, text) -> bytes:
        """The bytes the lattice segments: a str normalised and encoded as UTF-8, bytes as
        they are, and any other bytes-like text (a subclass of bytes such as numpy.bytes_,
        bytearray, memoryview) as a copy in exact bytes."""
        if isinstance(text, str):
            return (normalize_form(self.form, text) if self.active else text).encode("utf-8")
        # Exact bytes only: the compiled core takes nothing else (its bytes arguments are
        # typed exactly, and it reads bytes in place only when type(x) is bytes). Every
        # public entry point turns its text into bytes here, so this is the one place a
        # subclass becomes the equal plain bytes.
        if type(text) is bytes:
            return text
        if isinstance(text, (bytes, bytearray, memoryview)):
            return bytes(text)
        raise TypeError(f"text must be str or bytes, not {type(text).__name__}")

    def normalize_text(self, text: str) -> str:
        """``text`` as the tokenizer sees it (the model's normalisation applied)."""
        return normalize_form(self.form, text) if self.active else text

    def normalize_bytes(self, data: bytes) -> bytes:
        """UTF-8 ``data`` as the tokenizer sees it: the model's normalisation applied to
        its text, while bytes that are not valid UTF-8 pass through untouched (so a line
        read from a file in binary still round-trips)."""
        if not self.active or data.isascii():
            return data
        text = data.decode("utf-8", "surrogateescape")
        if unicodedata.is_normalized(self.form, text):  # type: ignore[arg-type]
            return data
        return normalize_form(self.form, text).encode("utf-8", "surrogateescape")


class TextEncoder:
    """The careful path over one tokenizer's parts: its lattice, special tokens, its
    ``normalizer``, ``words(key)`` (the seed and key words of a draw), the id type of its
    arrays and its default alpha."""

    def __init__(
        self,
        lattice: Lattice,
        special: SpecialTokens,
        normalizer: Normalizer,
        words: Callable[[object], tuple[int, int]],
        dtype,
        default_alpha: float,
    ):
        self.lattice = lattice
        self.special = special
        self.to_bytes = normalizer.to_bytes
        self.form = normalizer.form if normalizer.active else None  # (of str input)
        self.words = words
        self._dtype = dtype  # (a numpy type or its name: see dtype)
        self.default_alpha = default_alpha

    def encode(
        self,
        text,
        add_bos: bool,
        add_eos: bool,
        alpha: float | None,
        iter: bool,
        key,
        sampler: str,
        allowed: SpecialSet,
        disallowed: SpecialSet,
        as_numpy: bool,
        required,
        forbidden,
        regex,
    ):
        """Tokenizer.encode for every call (TokenizerCore.encode runs the common ones
        compiled and sends the rest here): argument checks, special tokens, boundary
        constraints, numpy output, keys of every kind."""
        if alpha is None:
            alpha = self.default_alpha
        elif type(alpha) is not float:  # (a float goes on: the core checks its range)
            alpha = check_alpha(alpha)
        if sampler != "exact":
            sampler_code(sampler)  # (a bad name is an error for Viterbi calls too)
        if required is not None or forbidden is not None or regex is not None:
            ids: list[int] | None = None
            if regex is None and sampler == "exact" and not (allowed or disallowed):
                # The core's per-call path (None: the careful path must read the constraints).
                run = self.to_bytes(text)
                bos, eos = (BOS_ID if add_bos else -1), (EOS_ID if add_eos else -1)
                got = encode_constrained(self.lattice, run, alpha, self.words, key, bos, eos, required, forbidden)
                if got is False:
                    self.no_segmentation(run, required, forbidden)
                ids = got
            if ids is None:
                bounds = (required, forbidden, regex)
                ids = self.spans(text, add_bos, add_eos, alpha, key, sampler, allowed, disallowed, bounds, False)[0]
            if as_numpy:
                return np.array(ids, dtype=self.dtype)
        elif as_numpy:
            return self.array(text, add_bos, add_eos, alpha, key, sampler, allowed, disallowed)
        elif allowed or disallowed:
            ids = self.spans(text, add_bos, add_eos, alpha, key, sampler, allowed, disallowed, with_spans=False)[0]
        else:
            # A plain call with a key of another kind, another sampler or an alpha that is
            # not a float: as TokenizerCore.encode does it (a str goes to the core as it is).
            data: str | bytes = text
            if type(text) is not str:
                data = self.to_bytes(text)
            elif self.form is not None and not text.isascii():
                data = normalize_form(self.form, text)
            bos = BOS_ID if add_bos else -1
            eos = EOS_ID if add_eos else -1
            if alpha < 0:  # NaN is not < 0: the core rejects it below
                ids = self.lattice.viterbi(data, bos, eos)
            else:
                seed_word, key_word = self.words(key)
                code = sampler_code(sampler)
                ids = self.lattice.sample(data, alpha, seed_word, key_word, bos, eos, sampler=code)
        return ids.__iter__() if iter else ids

    @functools.cached_property
    def dtype(self) -> np.dtype:
        """numpy's dtype of the id type given (made on first use: numpy is imported then)."""
        return np.dtype(self._dtype)

    def _runs(self, data: bytes, allowed: SpecialSet, disallowed: SpecialSet) -> list[tuple[int, int, int]]:
        """(start, end, special id or -1) of the text's runs."""
        if allowed or disallowed:
            return self.special.split(data, allowed, disallowed)
        return [(0, len(data), -1)] if data else []

    def _draw(self, alpha: float, key, sampler: str) -> tuple[float, int, int, int]:
        """(alpha, seed word, key word, sampler code) of one call; Viterbi draws nothing."""
        code = sampler_code(sampler)  # (a bad name is an error whatever the alpha)
        if alpha < 0:
            return -1.0, 0, 0, 0
        alpha = check_alpha(alpha)
        seed_word, key_word = self.words(key)
        return alpha, seed_word, key_word, code

    # (spans and array take the same parameters on purpose: array gives, as one numpy
    # array, the ids spans gives for the same arguments.)
    def spans(
        self,
        text,
        add_bos: bool,
        add_eos: bool,
        alpha: float,
        key,
        sampler: str,
        allowed: SpecialSet = (),
        disallowed: SpecialSet = (),
        bounds: tuple = (),
        with_spans: bool = True,
    ) -> tuple[list[int], list[int], list[int], bytes]:
        """(ids, token starts, token ends, the text's bytes); the starts and ends stay
        empty unless ``with_spans``. ``bounds``: the (required, forbidden, regex) boundary
        constraints, or () for none."""
        data = self.to_bytes(text)
        # (_runs and _draw's Viterbi case, written out: encode with special tokens comes
        # through here on every call, and the two method calls cost it a few percent.)
        if allowed or disallowed:
            parts = self.special.split(data, allowed, disallowed)
        else:
            parts = [(0, len(data), -1)] if data else []
        limits = constraints.build(data, *bounds) if bounds else None
        if alpha < 0:
            if sampler != "exact":
                sampler_code(sampler)  # (a bad name is an error for Viterbi calls too)
            alpha, seed_word, key_word, code = -1.0, 0, 0, 0
        else:
            alpha, seed_word, key_word, code = self._draw(alpha, key, sampler)
        ids: list[int] = [BOS_ID] if add_bos else []
        starts: list[int] = [0] if add_bos and with_spans else []
        ends: list[int] = [0] if add_bos and with_spans else []
        ordinary = 0
        for lo, hi, special in parts:
            if special >= 0:
                if limits is not None:
                    limits.check_special(lo, hi)
                ids.append(special)
                if with_spans:
                    starts.append(lo)
                    ends.append(hi)
                continue
            word = key_word if ordinary == 0 else run_key_word(key_word, ordinary)
            ordinary += 1
            run = data[lo:hi] if (lo or hi != len(data)) else data
            if limits is None:
                vals, cut = self.lattice.segment(run, alpha=alpha, seed_word=seed_word, key_word=word, sampler=code)
            else:
                cuts, banned = limits.part(lo, hi)
                options = {"alpha": alpha, "seed_word": seed_word, "key_word": word, "sampler": code}
                vals, cut = constraints.segment(self.lattice, run, cuts, banned, offset=lo, **options)
            ids.extend((vals + FIRST_PIECE_ID).tolist())
            if with_spans:
                e = (cut + lo).tolist()
                starts.append(lo)
                starts.extend(e[:-1])
                ends.extend(e)
        if add_eos:
            ids.append(EOS_ID)
            if with_spans:
                starts.append(len(data))
                ends.append(len(data))
        return ids, starts, ends, data

    def no_segmentation(self, data: bytes, required, forbidden) -> NoReturn:
        """Raise the ValueError naming the first position no allowed piece reaches."""
        raise constraints.no_segmentation(self.lattice, data, *constraints.masks(data, required, forbidden))

    def encode_with_offsets(
        self,
        text,
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float | None = None,
        *,
        key=None,
        sampler: str = "exact",
        allowed_special: SpecialSet = (),
        disallowed_special: SpecialSet = (),
    ) -> Encoding:
        """:meth:`encode` with the byte and character span of every token.

        >>> enc = tok.encode_with_offsets("héllo")
        >>> enc.ids, enc.offsets, enc.char_offsets
        ([107, 1519, 4351], [(0, 1), (1, 3), (3, 6)], [(0, 1), (1, 2), (2, 5)])

        Offsets refer to the normalised text (``tok.normalize_text(text)``, which is
        ``text`` itself when it is already NFC or normalisation is off): byte offsets
        into its UTF-8 encoding, character offsets into the str. When a token holds
        only some bytes of a character, its character span still includes that whole
        character (``text[a:b]`` is the shortest substring containing the token's
        bytes), so neighbouring tokens that split a character overlap on it. For bytes
        input, characters are counted as UTF-8 lead bytes (exact for valid UTF-8).
        The ids equal ``encode``'s for the same arguments (and key).
        """
        alpha = self.default_alpha if alpha is None else check_alpha(alpha)
        ids, starts, ends, data = self.spans(
            text, add_bos, add_eos, alpha, key, sampler, allowed_special, disallowed_special
        )
        return Encoding(ids, list(zip(starts, ends)), char_spans(data, starts, ends))

    def array(
        self,
        text,
        add_bos: bool,
        add_eos: bool,
        alpha: float,
        key,
        sampler: str,
        allowed: SpecialSet = (),
        disallowed: SpecialSet = (),
        with_ends: bool = False,
    ):
        """The ids as a numpy array (with ``with_ends``, also the end byte of every token):
        the runs of ordinary text go to the core as one batch, each with the key word
        :meth:`spans` gives it, so the ids are the same."""
        data = self.to_bytes(text)
        parts = self._runs(data, allowed, disallowed)
        alpha, seed_word, key_word, code = self._draw(alpha, key, sampler)
        seeds = keys = None
        if alpha >= 0:
            runs = sum(1 for part in parts if part[2] < 0) if parts else 1  # (an empty text: one empty run)
            seeds = np.full(runs, seed_word, dtype=np.uint64)
            keys = np.array([run_key_word(key_word, j) for j in range(runs)], dtype=np.uint64)
        return self._run_array(data, parts, alpha, seeds, keys, code, add_bos, add_eos, with_ends)

    def _run_array(
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
        per token). ``parts`` are the text's runs; they go to the core as one batch, run j
        drawn with (seed_words[j], key_words[j]). With ``with_ends``, (ids, ends): the
        int32 end byte of every token (0 for <bos>, the text's length for <eos>)."""
        runs = [data[lo:hi] if (lo or hi != len(data)) else data for lo, hi, special in parts if special < 0]
        specials = [special for _, _, special in parts if special >= 0]
        if not parts:
            runs = [data]  # an empty text still gets its <bos>/<eos>
        small = self.dtype == np.uint16
        # (The two calls of encode_flat spell out their arguments on purpose: passing them
        # as one dict slows every encode(as_numpy=True) call measurably.)
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


def char_spans(data: bytes, starts: Sequence[int], ends: Sequence[int]) -> list[tuple[int, int]]:
    """Character spans of byte spans: [index of the character holding the first byte,
    1 + index of the character holding the last byte); empty spans map to the
    character boundary at or after them."""
    if not starts:
        return []
    arr = np.frombuffer(data, dtype=np.uint8)
    lead = (arr & 0xC0) != 0x80
    if len(arr):
        lead[0] = True
    # before[b] = number of characters starting before byte b (b = 0 .. n)
    before = np.zeros(len(arr) + 1, dtype=np.int64)
    np.cumsum(lead, out=before[1:])
    s = np.asarray(starts, dtype=np.int64)
    e = np.asarray(ends, dtype=np.int64)
    nonempty = e > s
    # The character holding byte s is number before[s + 1] - 1; the one holding byte
    # e - 1 is before[e] - 1. An empty span (<bos>, <eos>) at b maps to before[b].
    n = len(arr)
    cs = np.where(nonempty, before[np.minimum(s + 1, n)] - 1, before[np.minimum(s, n)])
    ce = np.where(nonempty, before[np.minimum(e, n)], cs)
    return list(zip(cs.tolist(), ce.tolist()))
