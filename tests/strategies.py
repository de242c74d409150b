"""Hypothesis strategies shared by the lattice tests."""

from __future__ import annotations

from hypothesis import strategies as st

# Two ASCII letters, a newline (chunk boundaries) and a two-byte character (pieces that split it).
ALPHABET = b"ab\n\xc3\xa9"


@st.composite
def vocab_and_text(draw, dyadic: bool = True):
    """All 256 bytes plus a few multi-byte pieces over ALPHABET, as {piece: logp}, and a
    short text over ALPHABET. Dyadic log-probabilities (multiples of 1/4) make every sum
    exact, so ties are real ties."""

    def logp():
        if dyadic:
            return -draw(st.integers(1, 24)) / 4.0
        return -draw(st.floats(0.01, 12.0, allow_nan=False))

    vocab = {bytes([b]): -6.0 for b in range(256)}
    for b in ALPHABET:
        vocab[bytes([b])] = logp()
    for piece in draw(
        st.lists(
            st.binary(min_size=2, max_size=4).map(lambda raw: bytes(ALPHABET[x % len(ALPHABET)] for x in raw)),
            max_size=10,
        )
    ):
        vocab[piece] = logp()
    text = bytes(ALPHABET[x % len(ALPHABET)] for x in draw(st.binary(max_size=9)))
    return vocab, text
