"""Samples of long single-chunk texts are pinned bit for bit.

Forward sums of a chunk of more than a few hundred bytes leave the plain sampler's
range [2**-100, 2**960]. Up to commit a83b9fd every such text went on in the loop with
per-position exponents (exact_scaled); since then the plain loop rescales the sums that
later edges read by a power of two and goes on (plain_rescale). Both compute the same
sums up to exact powers of two, so the draws must not change: these hashes were
written by a83b9fd (a whole-text forward pass for the short texts, the windowed one for
the text over 1 MiB).
"""

from __future__ import annotations

import hashlib

import pytest
from conftest import REPO, VENDORED_MODEL

from bytepiece import Tokenizer

PINNED = {
    ("en", 60000, 0.1): ("62d0f7ad505beeac", 29737),
    ("en", 60000, 1.0): ("b62b965977dcd026", 12976),
    ("en", 60000, 4.0): ("2e12b069d564c48e", 12421),
    ("zh", 30000, 0.1): ("284f24013f5f0654", 15127),
    ("zh", 30000, 1.0): ("33dfe4eeaccf0c00", 10659),
    ("zh", 30000, 4.0): ("cd8669654736fcc9", 10590),
    ("code", 1200000, 0.1): ("894609bf600e533e", 646830),
    ("code", 1200000, 1.0): ("b92be321fc6d52a1", 356998),
    ("code", 1200000, 4.0): ("e7ec66476209a947", 342815),
}


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(str(VENDORED_MODEL), seed=7)


@pytest.mark.parametrize("name, size, alpha", sorted(PINNED))
def test_long_chunk_samples_are_those_of_the_exponent_loop(tok, name, size, alpha):
    text = (REPO / "corpora" / f"{name}.heldout.txt").read_bytes().replace(b"\n", b" ")
    data = (text * 10)[:size]  # one chunk: no newline
    ids = tok.encode(data, alpha=alpha, key=11)
    assert (hashlib.sha256(repr(ids).encode()).hexdigest()[:16], len(ids)) == PINNED[name, size, alpha]
