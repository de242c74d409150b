"""Special tokens in text: finding the allowed ones, refusing the disallowed ones.

A model may name special tokens (``<|endoftext|>``, chat-template markers) that take
ids after the pieces and are never split. In input text they are honoured only when
the caller allows them, as tiktoken does: ``allowed_special`` turns an occurrence into
its id, ``disallowed_special`` makes an occurrence an error, and anything else is
ordinary text. A text is cut into runs of ordinary text and special tokens; the
Tokenizer segments each run of ordinary text on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence, Set

SpecialSet = str | Set[str] | Sequence[str]

#: Compiled patterns kept per tokenizer (one per distinct set of tokens asked for).
_MAX_PATTERNS = 64


class SpecialTokens:
    """A model's special tokens and their ids; normalize_text is the tokenizer's (a token
    is matched in its normalised form, as the text is)."""

    def __init__(self, ids: dict[str, int], normalize_text: Callable[[str], str]):
        self.ids = ids
        self._normalize_text = normalize_text
        self._patterns: dict = {}

    def resolve(self, allowed: SpecialSet, disallowed: SpecialSet) -> tuple[frozenset, frozenset]:
        """The sets of tokens an (allowed_special, disallowed_special) pair names."""
        names = self.ids
        if allowed == "all":
            allowed_set = frozenset(names)
        else:
            allowed_set = _token_set(allowed, "allowed_special", names)
        if disallowed == "all":
            disallowed_set = frozenset(names) - allowed_set
        else:
            disallowed_set = _token_set(disallowed, "disallowed_special", names)
        return allowed_set, disallowed_set

    def _pattern(self, tokens: frozenset):
        """(regex matching any of the tokens, longest first; their UTF-8 form -> id)."""
        pattern = self._patterns.get(tokens)
        if pattern is None:
            forms = sorted(
                ((self._normalize_text(t).encode("utf-8"), t) for t in tokens), key=lambda f: (-len(f[0]), f[0])
            )
            pattern = (
                re.compile(b"|".join(re.escape(f) for f, _ in forms)),
                {f: self.ids[t] for f, t in forms},
            )
            if len(self._patterns) < _MAX_PATTERNS:
                self._patterns[tokens] = pattern
        return pattern

    def split(self, data: bytes, allowed: SpecialSet, disallowed: SpecialSet) -> list[tuple[int, int, int]]:
        """[(start, end, special id or -1)] covering data: the allowed special tokens
        found in it (leftmost, longest first) and the ordinary text between them.
        ValueError when data holds a disallowed one."""
        allowed_set, disallowed_set = self.resolve(allowed, disallowed)
        if disallowed_set:
            regex, _ = self._pattern(disallowed_set)
            found = regex.search(data)
            if found:
                raise ValueError(
                    f"the text holds the special token {found.group().decode('utf-8', 'replace')!r} at byte "
                    f"{found.start()}; pass it in allowed_special to encode it as a special token, or "
                    f"leave disallowed_special empty to encode it as ordinary text"
                )
        if not allowed_set:
            return [(0, len(data), -1)] if data else []
        regex, ids = self._pattern(allowed_set)
        parts, at = [], 0
        for match in regex.finditer(data):
            if match.start() > at:
                parts.append((at, match.start(), -1))
            parts.append((match.start(), match.end(), ids[match.group()]))
            at = match.end()
        if at < len(data):
            parts.append((at, len(data), -1))
        return parts


def _token_set(tokens, name: str, names: dict[str, int]) -> frozenset:
    """The set of special tokens (of ``names``) an allowed_special or disallowed_special
    other than "all" names: a collection of str (a str, or bytes, is one token, not a
    set of them)."""
    if isinstance(tokens, (str, bytes, bytearray)):  # (iterable, but b"<|x|>" would read as 60 124 ...)
        raise TypeError(
            f'{name} is a set of special tokens or "all", not the single {type(tokens).__name__} {tokens!r}'
        )
    if not isinstance(tokens, (set, frozenset, list, tuple)):
        try:
            tokens = tuple(tokens)  # (an iterator is read once: an error reads it again)
        except TypeError:
            raise TypeError(
                f'{name} is a set of special tokens or "all", not {type(tokens).__name__} {tokens!r}'
            ) from None
    try:
        found = frozenset(tokens)
    except TypeError:  # (a member that is not hashable, so not a str)
        found = None
    if found is None or not names.keys() >= found:
        # (the first member that is not a str, in order; of a set, the first by its repr)
        members = sorted(tokens, key=repr) if isinstance(tokens, (set, frozenset)) else tokens
        for other in members:
            if not isinstance(other, str):
                raise TypeError(f"{name} holds special tokens (str), not {type(other).__name__} {other!r}")
        raise ValueError(f"not special tokens of this model: {sorted(set(tokens) - set(names))!r} (in {name})")
    return found
