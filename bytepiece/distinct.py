"""k distinct segmentations of a text drawn without replacement (successive sampling),
with their inclusion probabilities: the engine of ``Tokenizer.sample_distinct``.

The lattice's forward sums (``bytepiece._core.queries.forward_log``) give the mass of
every prefix; a backward walk draws one path at a time among those not drawn yet,
summing afresh the mass still available under each branch that contains drawn paths
(never subtracting probabilities, so nothing is lost to cancellation).
"""

from __future__ import annotations

import math

import numpy as np

from ._core import queries as _queries
from ._core.lattice import Lattice


def sample_distinct(
    lattice: Lattice,
    data: bytes,
    k: int,
    alpha: float,
    seed_word: int,
    key_word: int,
    logprobs: np.ndarray,
    cuts: np.ndarray | None = None,
    banned: np.ndarray | None = None,
) -> list[tuple[list[bytes], float, float]]:
    """(pieces, log_prob, inclusion) of k distinct draws (see Tokenizer.sample_distinct);
    logprobs holds each piece index's log-probability; cuts and banned are constraints
    (bytepiece.constraints) or None."""
    n = len(data)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed_word, key_word, 0x5D157])))
    forward = _queries.forward_log(lattice, data, alpha, cuts=cuts, banned=banned).tolist()
    logz = forward[n]
    starts, ends, values = _queries.edges(lattice, data, cuts=cuts, banned=banned)
    edges_at: dict[int, list[tuple[int, float]]] = {}
    for s, e, lp in zip(starts.tolist(), ends.tolist(), logprobs[values].tolist()):
        edges_at.setdefault(e, []).append((s, lp))
    walk = _Walk(edges_at, data, alpha, forward, logz)

    drawn: list[tuple[int, ...]] = []  # boundaries of each drawn path, from the end back
    results = []
    gumbel = float(rng.gumbel())  # the largest perturbed log p: Gumbel(log 1)
    log_left = 0.0  # log of the mass not drawn yet
    while len(drawn) < k and log_left > -math.inf:
        path, score = walk.draw(drawn, rng)
        drawn.append(path)
        log_p = alpha * score - logz
        bounds = [n, *path]
        pieces = [data[bounds[i + 1] : bounds[i]] for i in range(len(path))][::-1]
        results.append((pieces, log_p))
        log_left = walk.residual(drawn)
        if log_left > -math.inf:  # the next perturbed value, below the last one
            top = log_left + float(rng.gumbel())
            gumbel = -float(np.logaddexp(-gumbel, -top))
    kappa = gumbel if log_left > -math.inf else -math.inf
    out = []
    for pieces, log_p in results:
        inclusion = 1.0 if kappa == -math.inf else -math.expm1(-math.exp(log_p - kappa))
        out.append((pieces, log_p, inclusion))
    return out


class _Walk:
    """Backward walks over one text's lattice that avoid a set of drawn paths.

    A path is named by its boundaries from the end back: (start of the last piece, ...,
    0). Under a fixed suffix (the pieces chosen so far, from the end), the mass of all
    completions through position s is exp(F[s] + alpha * (logp + suffix score) - log Z);
    a branch that contains drawn paths has its mass summed again over its children, down
    to the drawn paths themselves, which count 0.
    """

    def __init__(
        self, edges_at: dict[int, list[tuple[int, float]]], data: bytes, alpha: float, forward: list[float], logz: float
    ):
        self.edges_at = edges_at  # end -> [(start, log-probability)], the lattice's edges
        self.data = data
        self.alpha = alpha
        self.forward = forward
        self.logz = logz
        self.memo: dict[tuple[int, ...], float] = {}

    def edges(self, e: int) -> list[tuple[int, float]]:
        """(start, log-probability) of the pieces ending at e (the lattice's edges: inside
        e's chunk, within the constraints)."""
        return self.edges_at.get(e, [])

    def _branch(self, s: int, logp: float, suffix: float, paths: list[tuple[int, ...]], depth: int) -> float:
        """Log of the not-yet-drawn mass below the edge (s, logp) at this depth; `paths`
        are the drawn paths that share the suffix and this edge."""
        if not paths:
            return self.forward[s] + self.alpha * (logp + suffix) - self.logz
        if s == 0:
            return -math.inf  # exactly one drawn path ends here
        name = paths[0][: depth + 1]  # the suffix, as boundaries; one branch per name
        got = self.memo.get(name)
        if got is None:
            suffix = suffix + logp
            terms = []
            for s2, lp2 in self.edges(s):
                sub = [p for p in paths if p[depth + 1] == s2]
                terms.append(self._branch(s2, lp2, suffix, sub, depth + 1))
            got = self.memo[name] = _logsumexp(terms)
        return got

    def residual(self, drawn: list[tuple[int, ...]]) -> float:
        """Log of the total mass not drawn yet."""
        e = len(self.data)
        if e == 0:
            return -math.inf if drawn else 0.0
        self.memo = {}
        return _logsumexp([self._branch(s, lp, 0.0, [p for p in drawn if p[0] == s], 0) for s, lp in self.edges(e)])

    def draw(self, drawn: list[tuple[int, ...]], rng) -> tuple[tuple[int, ...], float]:
        """One path with probability proportional to p among those not in `drawn`."""
        e = len(self.data)
        self.memo = {}
        paths = list(drawn)
        cuts: list[int] = []
        chosen: list[float] = []  # the log-probabilities of the pieces, last first
        suffix = 0.0
        depth = 0
        while e > 0:
            options = self.edges(e)
            weights = [self._branch(s, lp, suffix, [p for p in paths if p[depth] == s], depth) for s, lp in options]
            top = max(weights)
            probs = np.exp(np.array(weights) - top)
            j = int(rng.choice(len(options), p=probs / probs.sum()))
            s, lp = options[j]
            paths = [p for p in paths if p[depth] == s]
            cuts.append(s)
            chosen.append(lp)
            suffix = suffix + lp
            depth += 1
            e = s
        score = 0.0
        for lp in reversed(chosen):  # left to right, as the other scores
            score = score + lp
        return tuple(cuts), score


def _logsumexp(values: list[float]) -> float:
    top = max(values, default=-math.inf)
    if top == -math.inf:
        return top
    return top + math.log(math.fsum(math.exp(v - top) for v in values))
