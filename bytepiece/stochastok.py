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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ._numpy import is_array, np

#: Mixed into the random state so these draws never coincide with a segmentation's.
_DOMAIN = 0x53544F43  # "STOC"
#: The most split attempts one call makes (p * len(ids)): 4 GB of random numbers.
MAX_ATTEMPTS = 1 << 28


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
        p = float(p)
        if not (0.0 <= p < math.inf):
            raise ValueError(f"p must be a finite number >= 0, not {p}")
        if max_splits is not None:
            max_splits = int(max_splits)
            if max_splits < 0:
                raise ValueError(f"max_splits must be >= 0, not {max_splits}")
        as_array = is_array(ids)
        tokens: list[int] = np.asarray(ids).ravel().tolist() if as_array else [int(i) for i in ids]
        size = len(self.id_bytes)
        for token in tokens:
            if not 0 <= token < size:
                raise ValueError(f"id {token} is not in the vocabulary (0 .. {size - 1})")
        seed_word, key_word = self.words(key)
        out = self._expand(tokens, p, max_splits, seed_word, key_word)
        return np.array(out, dtype=ids.dtype) if as_array else out

    def _expand(self, tokens: list[int], p: float, max_splits, seed_word: int, key_word: int) -> list[int]:
        n = len(tokens)
        if n * p > MAX_ATTEMPTS:  # (two random doubles per attempt are drawn up front)
            raise ValueError(
                f"p={p:g} asks for {n * p:.3g} split attempts on {n} ids; one call makes at most "
                f"{MAX_ATTEMPTS:,} (long before that every token is split as far as it goes)"
            )
        attempts = int(n * p)
        if attempts == 0 or max_splits == 0:
            return tokens
        offsets, pairs = self._splits()
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed_word, key_word, _DOMAIN])))
        where = rng.random(attempts).tolist()
        which = rng.random(attempts).tolist()
        first = offsets.tolist()
        flat = pairs.tolist()
        nxt = list(range(1, n)) + [-1]  # nxt[i]: the token after token i (-1: none)
        done = 0
        for t in range(attempts):
            count = len(tokens)
            i = min(int(where[t] * count), count - 1)
            token = tokens[i]
            lo, hi = first[token], first[token + 1]
            if lo == hi:
                continue
            left, right = flat[lo + min(int(which[t] * (hi - lo)), hi - lo - 1)]
            tokens[i] = left
            tokens.append(right)  # the new token, number `count`, follows token i
            nxt.append(nxt[i])
            nxt[i] = count
            done += 1
            if max_splits is not None and done >= max_splits:
                break
        out = []
        at = 0
        while at != -1:
            out.append(tokens[at])
            at = nxt[at]
        return out
