"""StochasTok: split tokens of an encoded sequence into two in-vocabulary pieces, at random.

The procedure of Sims et al. (2025, "StochasTok: Improving Fine-Grained Subword
Understanding in LLMs"), applied after any segmentation: with ``n`` the length of the
sequence given, make ``int(n * p)`` attempts; each picks a token uniformly at random
from the sequence as it stands (earlier splits included) and, if that token can be
written as two pieces of the vocabulary (``a + b == token``, both pieces), replaces it
by one such pair chosen uniformly among all of them. Tokens with no such pair (single
bytes, ``<pad>``/``<bos>``/``<eos>``, special tokens) are left as they are and the
attempt is spent. ``max_splits`` stops after that many successful splits.

Why it is built this way: choosing a uniformly random token of the current sequence
does not need the sequence in order, only the multiset of its tokens, so the tokens
are kept in a flat array (a split writes the first half in place and appends the
second) with a "next" link per token to recover the order at the end. Each attempt
is O(1), whatever the sequence's length. Draws are keyed like every other sample:
the same (seed, key, ids, p) gives the same result in any process.

The random numbers are those of ``attempts`` draws for the tokens picked followed by
``attempts`` draws for the splits chosen, as the first version drew them in two arrays;
they are read in blocks of ``DRAW_BLOCK`` (the second stream a copy of the generator
advanced past the first), so memory does not grow with p and keyed results stay what
they were. The attempts stop once no token of the sequence can be split: the rest
would all be spent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

from ._numpy import is_array, is_integer, np
from .ids import unknown_id
from .keys import exact_integer

#: Mixed into the random state so these draws never coincide with a segmentation's.
_DOMAIN = 0x53544F43  # "STOC"
#: The most split attempts one call makes (p * len(ids)).
MAX_ATTEMPTS = 1 << 28
#: Random numbers drawn at a time (of each of the two streams).
DRAW_BLOCK = 1 << 12


class TokenSplitter:
    """StochasTok over one vocabulary: ``id_bytes`` maps ids to bytes, pieces are the ids
    ``first_piece`` .. ``first_special - 1``; ``words(key)`` gives a draw's (seed word,
    key word)."""

    def __init__(
        self,
        id_bytes: Sequence[bytes],
        first_piece: int,
        first_special: int,
        words: Callable[[object], tuple[int, int]],
    ):
        self.id_bytes = id_bytes
        self.first_piece = first_piece
        self.first_special = first_special
        self.words = words
        self._table: tuple[np.ndarray, np.ndarray] | None = None

    def _splits(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, pairs): the two-piece splits of id i are pairs[offsets[i]:offsets[i + 1]],
        in the order of the split point (built on first use)."""
        if self._table is None:
            lo, hi = self.first_piece, self.first_special
            ids = {self.id_bytes[i]: i for i in range(lo, hi)}
            offsets = np.zeros(len(self.id_bytes) + 1, dtype=np.int64)
            pairs: list[tuple[int, int]] = []
            for i in range(lo, hi):
                piece = self.id_bytes[i]
                for j in range(1, len(piece)):
                    a, b = ids.get(piece[:j]), ids.get(piece[j:])
                    if a is not None and b is not None:
                        pairs.append((a, b))
                offsets[i + 1] = len(pairs)
            offsets[hi + 1 :] = len(pairs)
            self._table = (offsets, np.array(pairs, dtype=np.int64).reshape(-1, 2))
        return self._table

    def splits(self, token: int) -> list[tuple[int, int]]:
        """Every way to write ``token`` as two pieces (left id, right id)."""
        offsets, pairs = self._splits()
        if not 0 <= token < len(self.id_bytes):
            raise ValueError(f"id {token} is not in the vocabulary (0 .. {len(self.id_bytes) - 1})")
        return [(int(a), int(b)) for a, b in pairs[offsets[token] : offsets[token + 1]]]

    def stochastok(self, ids, p: float, *, key=None, max_splits: int | None = None):
        """StochasTok: ``ids`` with about ``p * len(ids)`` attempts to split a random token
        into two pieces of the vocabulary (see :mod:`bytepiece.stochastok`).

        >>> tok.stochastok(tok.encode("tokenizer"), 0.5, key=1)
        [13720, 108, 1463, 117]

        The result decodes to the same bytes. ``key`` makes it reproducible (as for
        ``encode``); without one, each call takes the next number of the tokenizer's
        unkeyed stream. A numpy array in gives an array of the same dtype out.
        """
        if p is None or isinstance(p, (str, bytes, bytearray, bool, np.bool_)):
            raise TypeError(f"p must be a number, not {type(p).__name__} {p!r}")
        p = float(p)
        if not (0.0 <= p < math.inf):
            raise ValueError(f"p must be a finite number >= 0, not {p}")
        if max_splits is not None:
            try:
                max_splits = exact_integer(max_splits)  # (not 1.7, nor True)
            except TypeError as error:
                raise TypeError(f"max_splits must be an integer or None, not {error} {max_splits!r}") from None
            if max_splits < 0:
                raise ValueError(f"max_splits must be >= 0, not {max_splits}")
        as_array = is_array(ids)
        tokens = self._tokens(ids)
        seed_word, key_word = self.words(key)
        out = self._expand(tokens, p, max_splits, seed_word, key_word)
        return np.array(out, dtype=ids.dtype) if as_array else out

    def _tokens(self, ids) -> list[int]:
        """``ids`` as a new list of Python ints: a sequence of integer ids (numpy's integers
        too) or a one-dimensional array; an id that is not an integer of the vocabulary
        (a bool, a float, a str) is an UnknownIdError, as decode gives."""
        if isinstance(ids, (bytes, bytearray, memoryview, str)):  # (iterable, but not ids: b"ab" read as 97 98)
            raise TypeError(f"stochastok takes a sequence of ids, not {type(ids).__name__}")
        if is_array(ids):
            if ids.ndim != 1:
                raise ValueError(f"stochastok takes a one-dimensional array of ids, not one of shape {ids.shape}")
            tokens = ids.tolist()  # (a float or bool array gives floats or bools: refused below)
        else:
            tokens = list(ids)
        size = len(self.id_bytes)
        for at, token in enumerate(tokens):
            if type(token) is not int:
                if isinstance(token, bool) or not is_integer(token):
                    raise unknown_id(token, size)
                tokens[at] = token = int(token)
            if not 0 <= token < size:
                raise unknown_id(token, size)
        return tokens

    def _expand(self, tokens: list[int], p: float, max_splits, seed_word: int, key_word: int) -> list[int]:
        n = len(tokens)
        if n * p > MAX_ATTEMPTS:  # (the limit of the first version, which drew them all up front)
            raise ValueError(
                f"p={p:g} asks for {n * p:.3g} split attempts on {n} ids; one call makes at most "
                f"{MAX_ATTEMPTS:,} (long before that every token is split as far as it goes)"
            )
        attempts = int(n * p)
        if attempts == 0 or max_splits == 0:
            return tokens
        offsets, pairs = self._splits()
        # (views of the arrays give Python ints: .tolist() of the whole table took 7 ms a
        # call, more than a short sequence's attempts, or 11 MB to keep)
        first = offsets.data
        flat = pairs.reshape(-1).data
        splittable = sum(first[token] != first[token + 1] for token in tokens)  # tokens with a split
        if not splittable:
            return tokens
        nxt = list(range(1, n)) + [-1]  # nxt[i]: the token after token i (-1: none)
        done = 0
        for where, which in _draws(seed_word, key_word, attempts):
            count = len(tokens)
            i = min(int(where * count), count - 1)
            token = tokens[i]
            lo, hi = first[token], first[token + 1]
            if lo == hi:
                continue
            at = 2 * (lo + min(int(which * (hi - lo)), hi - lo - 1))
            left, right = flat[at], flat[at + 1]
            tokens[i] = left
            tokens.append(right)  # the new token, number `count`, follows token i
            nxt.append(nxt[i])
            nxt[i] = count
            done += 1
            if max_splits is not None and done >= max_splits:
                break
            splittable += (first[left] != first[left + 1]) + (first[right] != first[right + 1]) - 1
            if not splittable:  # (every attempt left would be spent)
                break
        out = []
        at = 0
        while at != -1:
            out.append(tokens[at])
            at = nxt[at]
        return out


def _draws(seed_word: int, key_word: int, attempts: int) -> Iterator[tuple[float, float]]:
    """(where, which) of each attempt: the t-th and the (attempts + t)-th random number of
    the draw's generator, as ``where = rng.random(attempts)`` then ``which =
    rng.random(attempts)`` give them, drawn DRAW_BLOCK at a time."""
    seeds = np.random.SeedSequence([seed_word, key_word, _DOMAIN])
    wheres = np.random.Generator(np.random.PCG64(seeds))
    # (one random double is one 64-bit step of PCG64: `which` starts `attempts` steps on)
    whiches = np.random.Generator(np.random.PCG64(seeds).advance(attempts))
    for start in range(0, attempts, DRAW_BLOCK):
        size = min(DRAW_BLOCK, attempts - start)
        yield from zip(wheres.random(size).tolist(), whiches.random(size).tolist())
