"""Constrained segmentation: byte positions where a piece boundary must, or must not, fall.

A constraint restricts the lattice itself, so every algorithm on it (Viterbi, exact
sampling, n-best, log Z, entropy, marginals, distinct samples) answers for the
constrained set of segmentations, and probabilities stay exact: a sample is drawn with
probability ``exp(alpha * score) / Z`` where Z sums over the allowed segmentations only.

- ``required_boundaries``: no piece may cross these positions (a piece may start or end
  there). The single bytes always leave a segmentation.
- ``forbidden_boundaries``: no piece may start or end at these positions, so one piece
  must span across each. They can leave no segmentation at all (a ValueError names
  the first position no allowed piece reaches).

Positions are byte offsets in the UTF-8 text as the tokenizer sees it (after its
normalisation), 0 .. len(bytes); either argument is a sequence of positions or a boolean
mask of length len(bytes) + 1. Conveniences build required boundaries from the text:
:func:`regex_boundaries` (every match of a pattern is a whole run of pieces) and
:func:`digit_groups` (digits in groups of n, right-aligned, as numbers are written).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Union

from ._numpy import np

Positions = Union[Sequence[int], "np.ndarray"]  # (a str: reading np.ndarray would import numpy)
Pattern = Union[str, bytes, "re.Pattern[str]", "re.Pattern[bytes]"]


class Constraints:
    """Validated constraints for one text of ``n`` bytes: ``cuts`` and ``banned`` are uint8
    arrays of n + 1 entries (1 where a boundary is required / forbidden), or None when
    that kind of constraint is absent. ``Constraints.none()`` constrains nothing."""

    __slots__ = ("banned", "cuts")

    def __init__(self, cuts: np.ndarray | None, banned: np.ndarray | None):
        self.cuts = cuts
        self.banned = banned

    @property
    def empty(self) -> bool:
        return self.cuts is None and self.banned is None

    def check_special(self, lo: int, hi: int) -> None:
        """A required boundary inside the special token at bytes lo .. hi - 1 is a
        ValueError: a special token is one id, never split."""
        if self.cuts is not None and hi - lo > 1 and self.cuts[lo + 1 : hi].any():
            at = lo + 1 + int(np.flatnonzero(self.cuts[lo + 1 : hi])[0])
            raise ValueError(
                f"required_boundaries: position {at} is inside a special token (bytes {lo} to {hi}), "
                "which is never split"
            )

    def part(self, lo: int, hi: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The constraints of the bytes lo .. hi - 1 (a run of ordinary text between special
        tokens), positions counted from lo. A forbidden boundary at either end is a
        ValueError: a special token always has boundaries around it."""
        cuts = None if self.cuts is None else self.cuts[lo : hi + 1].copy()
        banned = None if self.banned is None else self.banned[lo : hi + 1].copy()
        if banned is not None:
            for end, at in ((0, lo), (hi - lo, hi)):
                if banned[end]:
                    raise ValueError(
                        f"forbidden_boundaries: position {at} is next to a special token, always a boundary"
                    )
        if cuts is not None:
            cuts[0] = cuts[-1] = 0
            cuts = cuts if cuts.any() else None
        if banned is not None and not banned.any():
            banned = None
        return cuts, banned


def _mask(spec, n: int, name: str) -> np.ndarray | None:
    """A uint8 mask of n + 1 entries from positions or a boolean mask (None: no constraint)."""
    if spec is None:
        return None
    arr = np.asarray(spec)
    if arr.dtype == bool:
        if arr.shape != (n + 1,):
            raise ValueError(f"{name} as a mask needs {n + 1} entries (len(bytes) + 1), not {arr.shape}")
        mask = arr.astype(np.uint8)
    else:
        if arr.ndim == 0:
            raise TypeError(
                f"{name} must be a sequence of byte positions or a boolean mask, not the single value "
                f"{spec!r} (encode_batch takes one such sequence per text)"
            )
        if arr.size == 0:
            return None
        if arr.ndim != 1:
            raise TypeError(f"{name} must be one sequence of byte positions, not an array of shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must be byte positions (integers) or a boolean mask, not {arr.dtype}")
        bad = arr[(arr < 0) | (arr > n)]
        if bad.size:
            raise ValueError(f"{name}: position {int(bad[0])} is outside the text (0 .. {n})")
        mask = np.zeros(n + 1, dtype=np.uint8)
        mask[arr] = 1
    return mask if mask.any() else None


def build(data: bytes, required=None, forbidden=None, regex: Pattern | None = None) -> Constraints | None:
    """The constraints of a text (its bytes as the tokenizer sees them) from the
    arguments the Tokenizer's methods take; None when they constrain nothing."""
    if regex is not None:
        found = regex_boundaries(data, regex)
        # (the positions given are checked as they are without a regex, then joined)
        given = _mask(required, len(data), "required_boundaries")
        if given is not None:
            found += np.flatnonzero(given).tolist()
        required = found
    limits = resolve(data, required, forbidden)
    return None if limits.empty else limits


def masks(
    data: bytes, required=None, forbidden=None, regex: Pattern | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(cuts, banned) of the constraints of a text, the arrays the core takes ((None,
    None) when there are none)."""
    if required is None and forbidden is None and regex is None:
        return None, None
    built = build(data, required, forbidden, regex)
    return (None, None) if built is None else (built.cuts, built.banned)


def check_reachable(lattice, data: bytes, cuts, banned, logz: float | None = None) -> None:
    """The ValueError naming a position when the constraints leave no segmentation of
    data; ``logz`` (log Z under them, -inf when nothing is left), when known, saves the
    check a pass over the text."""
    if cuts is None and banned is None:
        return
    if logz is None:
        from ._core.queries import first_unreachable

        if first_unreachable(lattice, data, cuts=cuts, banned=banned) < 0:
            return
    elif logz != -np.inf:
        return
    raise no_segmentation(lattice, data, cuts, banned)


def segment(lattice, run: bytes, cuts, banned, *, offset: int = 0, **options):
    """lattice.segment(run, cuts=..., banned=..., **options), with the error that names
    the first position no allowed piece reaches when the constraints leave no
    segmentation (positions counted from `offset`, the run's place in the text)."""
    try:
        return lattice.segment(run, cuts=cuts, banned=banned, **options)
    except ValueError as error:
        if "no segmentation" not in str(error):
            raise
        raise no_segmentation(lattice, run, cuts, banned, offset) from None


def no_segmentation(lattice, data: bytes, cuts, banned, offset: int = 0) -> ValueError:
    """The ValueError for constraints that leave no segmentation of data."""
    from ._core.queries import first_unreachable

    at = first_unreachable(lattice, data, cuts=cuts, banned=banned)
    where = f"byte {offset + at}" if at >= 0 else "the end of the text"
    return ValueError(
        f"the boundary constraints leave no segmentation: no allowed piece reaches {where} "
        f"(every piece that would end there starts at a forbidden boundary or crosses a required one)"
    )


def resolve(data: bytes, required=None, forbidden=None, chunked: bool = True) -> Constraints:
    """Check the constraints against the text's bytes ``data`` and make them masks.

    Forbidding position 0 or len(data), or a position where the text starts a new chunk
    (after a run of newlines: a boundary always falls there), or both requiring and
    forbidding one position, is a ValueError naming the position."""
    n = len(data)
    cuts = _mask(required, n, "required_boundaries")
    banned = _mask(forbidden, n, "forbidden_boundaries")
    if banned is not None:
        for end in (0, n):
            if banned[end]:
                raise ValueError(f"forbidden_boundaries: position {end} is an end of the text, always a boundary")
        if chunked and n > 1:
            raw = np.frombuffer(data, dtype=np.uint8)
            starts = np.flatnonzero((raw[:-1] == 10) & (raw[1:] != 10)) + 1
            hit = starts[banned[starts] == 1]
            if hit.size:
                raise ValueError(
                    f"forbidden_boundaries: position {int(hit[0])} starts a new chunk (after a run of "
                    f"newlines), where a boundary always falls"
                )
        if cuts is not None:
            both = np.flatnonzero(cuts & banned)
            if both.size:
                raise ValueError(f"position {int(both[0])} is both a required and a forbidden boundary")
    if cuts is not None:
        cuts[0] = cuts[n] = 0  # (the ends are boundaries anyway)
        if not cuts.any():
            cuts = None
    return Constraints(cuts, banned)


def regex_boundaries(data: bytes, pattern: str | bytes | re.Pattern) -> list[int]:
    """Required boundaries that make every match of ``pattern`` in ``data`` a whole run of
    pieces: the start and end of each match, so a match of no text (a lookahead such as
    ``(?=[A-Z])``, or ``\b``) is one boundary where it matches. A str pattern is matched
    against the UTF-8 text (positions are converted to bytes)."""
    if isinstance(pattern, re.Pattern):
        regex = pattern
    else:
        regex = re.compile(pattern)
    out: list[int] = []
    if isinstance(regex.pattern, bytes):
        for m in regex.finditer(data):
            out += m.span()
        return out
    text = data.decode("utf-8", "surrogateescape")
    offsets = _char_to_byte(text)
    for found in regex.finditer(text):
        out += (offsets[found.start()], offsets[found.end()])
    return out


def digit_groups(data: bytes, size: int = 3) -> list[int]:
    """Required boundaries that keep ASCII digits in groups of ``size``, right-aligned
    (``1234567`` as ``1 234 567``), never merged with what is around them."""
    if size < 1:
        raise ValueError(f"the digit group size must be >= 1, not {size}")
    out: list[int] = []
    for m in re.finditer(rb"[0-9]+", data):
        start, end = m.span()
        out.append(start)
        out.extend(range(end - size, start, -size))
        out.append(end)
    return out


def _char_to_byte(text: str) -> np.ndarray:
    """Byte offset of every character position 0 .. len(text) in the text's UTF-8."""
    lengths = np.fromiter((len(ch.encode("utf-8", "surrogateescape")) for ch in text), dtype=np.int64, count=len(text))
    out = np.zeros(len(text) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def merge(*groups: Iterable[int] | None) -> list[int] | None:
    """The union of several lists of positions (None when all are None)."""
    parts = [list(g) for g in groups if g is not None]
    if not parts:
        return None
    return sorted(set().union(*parts))
