"""Draws from the segmentation lattice, with their probabilities: the Tokenizer's
``sample`` (many independent draws from one forward pass) and ``sample_distinct``
(draws without replacement), held as a LatticeSampler.

``encode(text, alpha=...)`` draws one segmentation per call. Research that weighs
segmentations (importance sampling of a language model's marginal likelihood over
tokenizations, estimates over the distribution) needs many draws of one text and the
exact probability of each. ``sample`` runs the forward pass once and walks back from
it once per draw, so n draws cost far less than n calls; every draw comes with its
log-probability under exp(alpha * score) / Z, from the same pass. ``sample_distinct``
(:mod:`bytepiece.distinct`) gives k different segmentations with the inclusion
probabilities that make unbiased estimates from them.

Both take the boundary constraints of :mod:`bytepiece.constraints`; the draws are then
from the constrained distribution, exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import constraints, distinct
from ._core import draws as _draws
from ._core.lattice import Lattice
from .constraints import Pattern, Positions
from .encoding import check_count, check_sampling_alpha


class LatticeSampler:
    """Draws over one tokenizer's lattice: ``to_bytes`` turns a text into the bytes it
    segments, ``words(key)`` gives a draw's (seed word, key word) (the next unkeyed one
    when key is None), ``logprobs`` are the pieces' log-probabilities."""

    def __init__(
        self,
        lattice: Lattice,
        to_bytes: Callable[[Any], bytes],
        words: Callable[[Any], tuple[int, int]],
        logprobs: Sequence[float],
    ):
        self._lattice = lattice
        self.to_bytes = to_bytes
        self.words = words
        self._logprobs = logprobs

    def sample(
        self,
        text,
        n: int,
        alpha: float,
        *,
        key=None,
        with_log_prob: bool = False,
        required_boundaries: Positions | None = None,
        forbidden_boundaries: Positions | None = None,
        boundary_regex: Pattern | None = None,
    ) -> list:
        """Tokenizer.sample for every call (TokenizerCore.sample runs the common ones
        compiled and sends the rest here): argument checks, keys of every kind, boundary
        constraints."""
        alpha = check_sampling_alpha(alpha)
        n = check_count(n, "n", minimum=0)
        data = self.to_bytes(text)
        cuts, banned = constraints.masks(data, required_boundaries, forbidden_boundaries, boundary_regex)
        seed_word, key_word = self.words(key)
        try:
            draws, logps = _draws.sample_many(
                self._lattice,
                data,
                n,
                alpha,
                seed_word,
                key_word,
                cuts=cuts,
                banned=banned,
                lists=True,
                log_probs=with_log_prob,
            )
        except ValueError as error:
            if "no segmentation" not in str(error):
                raise
            raise constraints.no_segmentation(self._lattice, data, cuts, banned) from None
        if logps is not None:
            # log P <= 0: rounding in alpha * score and log Z must not make it positive.
            return [(ids, min(logp, 0.0)) for ids, logp in zip(draws, logps)]
        return draws

    def sample_distinct(
        self,
        text,
        k: int,
        alpha: float = 1.0,
        *,
        key=None,
        required_boundaries: Positions | None = None,
        forbidden_boundaries: Positions | None = None,
        boundary_regex: Pattern | None = None,
    ) -> list[tuple[list[bytes], float, float]]:
        """``k`` distinct segmentations drawn without replacement, as
        ``(pieces, log_prob, inclusion)`` in the order drawn.

        >>> for pieces, log_prob, inclusion in tok.sample_distinct("tokenizer", 3, alpha=0.1, key=0):
        ...     print(pieces, round(log_prob, 3), round(inclusion, 4))
        [b'to', b'k', b'e', b'niz', b'er'] -4.288 0.0926
        [b'token', b'i', b'z', b'e', b'r'] -4.255 0.0956
        [b't', b'o', b'ken', b'ize', b'r'] -4.287 0.0927

        The draws are successive sampling: the first with probability
        p = exp(alpha * score) / Z, each next one with probability proportional to p among
        the segmentations not drawn yet (the distribution of the k largest of
        log p + Gumbel noise). Exact: the mass still available under every branch of the
        lattice is summed afresh (no subtraction of probabilities), so nothing is lost to
        cancellation even when one segmentation holds nearly all the mass.

        ``log_prob`` is log p. ``inclusion`` is the probability that the segmentation is
        among the k, *given the threshold* kappa (the (k+1)-th largest perturbed log p,
        drawn alongside): q = 1 - exp(-exp(log p - kappa)). Then sum(p / q * f(pieces))
        over the k is an unbiased estimate of E_p[f] (priority sampling; Kool, van Hoof and
        Welling, 2019). When the text has at most k segmentations all are returned, with
        q = 1. ``key`` makes the result reproducible, as for ``tokenize``; boundary
        constraints as in :meth:`tokenize`.
        """
        alpha = check_sampling_alpha(alpha)
        k = check_count(k, "k")
        data = self.to_bytes(text)
        cuts, banned = constraints.masks(data, required_boundaries, forbidden_boundaries, boundary_regex)
        constraints.check_reachable(self._lattice, data, cuts, banned)
        seed_word, key_word = self.words(key)
        lattice, logprobs = self._lattice, self._logprobs
        return distinct.sample_distinct(lattice, data, k, alpha, seed_word, key_word, logprobs, cuts, banned)
