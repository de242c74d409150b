"""k distinct segmentations of a text drawn without replacement (successive sampling),
with their inclusion probabilities: the engine of ``Tokenizer.sample_distinct``.

The lattice's forward sums (``bytepiece._core.queries.forward_log``) give the mass of
every prefix; a backward walk draws one path at a time among those not drawn yet,
summing afresh the mass still available under each branch that contains drawn paths
(never subtracting probabilities, so nothing is lost to cancellation).

The drawn paths are kept as a tree of their suffixes (from the end of the text back),
and each node of the tree holds the mass still available below it. A new path changes
only the nodes along it, so each draw costs one walk down and one walk back up its
path, O(n x the longest piece) for a text of n bytes, and k draws O(k n), not the
O(k^2 n) of summing every branch again for every draw. The sums are the same sums, in
the same order, so the draws are the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._core import queries as _queries
from ._core.lattice import Lattice
from ._numpy import np


def sample_distinct(
    lattice: Lattice,
    data: bytes,
    k: int,
    alpha: float,
    seed_word: int,
    key_word: int,
    logprobs: Sequence[float],
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
    if n and logz == -math.inf:
        raise ValueError("no segmentation satisfies the constraints")
    starts, ends, values = _queries.edges(lattice, data, cuts=cuts, banned=banned)
    edges_at: dict[int, list[tuple[int, float]]] = {}
    for s, e, lp in zip(starts.tolist(), ends.tolist(), np.asarray(logprobs)[values].tolist()):
        edges_at.setdefault(e, []).append((s, lp))
    walk = _Walk(edges_at, data, alpha, forward, logz)

    results: list[tuple[list[bytes], float]] = []
    gumbel = float(rng.gumbel())  # the largest perturbed log p: Gumbel(log 1)
    log_left = 0.0  # log of the mass not drawn yet
    while len(results) < k and log_left > -math.inf:
        path, chosen, score = walk.draw(rng)
        log_left = walk.add(path, chosen)
        log_p = alpha * score - logz
        bounds = [n, *path]
        pieces = [data[bounds[i + 1] : bounds[i]] for i in range(len(path))][::-1]
        results.append((pieces, log_p))
        if log_left > -math.inf:  # the next perturbed value, below the last one
            top = log_left + float(rng.gumbel())
            gumbel = -float(np.logaddexp(-gumbel, -top))
    kappa = gumbel if log_left > -math.inf else -math.inf
    out = []
    for pieces, log_p in results:
        # 1 - exp(-exp(x)), x = log p - kappa: 1.0 to the last bit once x passes about 4, and
        # exp(x) overflows past about 709 (a path holding nearly all the mass, large alpha)
        x = log_p - kappa
        inclusion = 1.0 if x > 700.0 else -math.expm1(-math.exp(x))
        out.append((pieces, log_p, inclusion))
    return out


class _Node:
    """A suffix of drawn paths: its pieces from the end of the text back to ``start``."""

    __slots__ = ("start", "suffix", "value", "children")

    def __init__(self, start: int, suffix: float):
        self.start = start
        self.suffix = suffix  # the suffix's score, its pieces' log-probabilities added from the end
        self.value = 0.0  # log of the mass not drawn yet among the paths through this suffix
        self.children: dict[int, _Node] = {}  # start of the piece before -> longer suffix


class _Walk:
    """Backward walks over one text's lattice that avoid the paths drawn so far.

    A path is named by its boundaries from the end back: (start of the last piece, ...,
    0). Under a suffix (the pieces chosen so far, from the end), the mass of all
    completions through position s is exp(F[s] + alpha * (logp + suffix score) - log Z)
    when no drawn path shares that suffix and piece; when some do, it is the node's
    value in the tree of drawn suffixes: its children's masses summed again, down to
    the drawn paths themselves, which count 0.
    """

    def __init__(
        self, edges_at: dict[int, list[tuple[int, float]]], data: bytes, alpha: float, forward: list[float], logz: float
    ):
        self.edges_at = edges_at  # end -> [(start, log-probability)], the lattice's edges
        self.data = data
        self.alpha = alpha
        self.forward = forward
        self.logz = logz
        self.root = _Node(len(data), 0.0)

    def edges(self, e: int) -> list[tuple[int, float]]:
        """(start, log-probability) of the pieces ending at e (the lattice's edges: inside
        e's chunk, within the constraints)."""
        return self.edges_at.get(e, [])

    def _fresh(self, s: int, logp: float, suffix: float) -> float:
        """Log of the mass of every path through the edge (s, logp) under a suffix of
        score ``suffix`` when no drawn path goes there."""
        return self.forward[s] + self.alpha * (logp + suffix) - self.logz

    def _weights(self, node: _Node | None, e: int, suffix: float) -> list[float]:
        """Log of the mass not drawn yet through each edge into e, under ``node`` (None:
        a suffix no drawn path shares)."""
        children = node.children if node is not None else {}
        fresh = self._fresh
        return [children[s].value if s in children else fresh(s, lp, suffix) for s, lp in self.edges(e)]

    def draw(self, rng) -> tuple[tuple[int, ...], list[float], float]:
        """(boundaries, the pieces' log-probabilities from the last, score) of one path,
        drawn with probability proportional to p among those not drawn yet."""
        e = len(self.data)
        node: _Node | None = self.root
        cuts: list[int] = []
        chosen: list[float] = []  # the log-probabilities of the pieces, last first
        suffix = 0.0
        while e > 0:
            options = self.edges(e)
            weights = self._weights(node, e, suffix)
            top = max(weights)
            probs = np.exp(np.array(weights) - top)
            j = int(rng.choice(len(options), p=probs / probs.sum()))
            s, lp = options[j]
            node = node.children.get(s) if node is not None else None
            cuts.append(s)
            chosen.append(lp)
            suffix = suffix + lp
            e = s
        score = 0.0
        for lp in reversed(chosen):  # left to right, as the other scores
            score = score + lp
        return tuple(cuts), chosen, score

    def add(self, path: tuple[int, ...], chosen: list[float]) -> float:
        """Count ``path`` as drawn (its pieces' log-probabilities ``chosen``, last first);
        returns the log of the total mass not drawn yet."""
        nodes = [self.root]
        for s, lp in zip(path, chosen):
            parent = nodes[-1]
            child = parent.children.get(s)
            if child is None:
                child = parent.children[s] = _Node(s, parent.suffix + lp)
            nodes.append(child)
        for node in reversed(nodes):  # the leaf, then each node above it
            if node.start == 0:
                node.value = -math.inf  # exactly one drawn path ends here
            else:
                node.value = _logsumexp(self._weights(node, node.start, node.suffix))
        return self.root.value


def _logsumexp(values: list[float]) -> float:
    top = max(values, default=-math.inf)
    if top == -math.inf:
        return top
    return top + math.log(math.fsum(math.exp(v - top) for v in values))
