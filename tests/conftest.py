"""Shared fixtures: the vendored models (tests/data; see its NOTICE) and deterministic seeds."""

from __future__ import annotations

import atexit
import hashlib
import itertools
import os
import pathlib
import shutil
import tempfile

import pytest

# Tokenizers keep their scores in a cache folder (bytepiece/score_cache.py): the suite,
# and every process it starts, uses one of its own, never the user's.
_SCORE_CACHE = tempfile.mkdtemp(prefix="bytepiece-test-scores-")
os.environ["BYTEPIECE_CACHE_DIR"] = _SCORE_CACHE
atexit.register(shutil.rmtree, _SCORE_CACHE, ignore_errors=True)

try:
    from hypothesis import settings as _hypothesis_settings

    # Property tests explore the same examples on every run (a failure found once is
    # found again; a passing suite does not start failing by luck).
    _hypothesis_settings.register_profile("deterministic", derandomize=True, print_blob=True)
    _hypothesis_settings.load_profile("deterministic")
except ImportError:  # hypothesis is a test extra; modules that need it skip without it
    pass

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = TESTS / "data"
# BytePiece 0.6.3 models published by its author, vendored with their licence in
# tests/data: the one most tests use, and all four for the compatibility tests.
VENDORED_MODEL = DATA / "bytepiece.plus.40k.zip"
COMPAT_MODEL_NAMES = (
    "bytepiece.plus.40k.zip",
    "bytepiece_80k.zip",
    "bytepiece.id.eu.plus.80k.zip",
    "bytepiece.zh.id.eu.40k.zip",
)
COMPAT_MODELS = [DATA / name for name in COMPAT_MODEL_NAMES]


@pytest.fixture(scope="session")
def model_path() -> pathlib.Path:
    return VENDORED_MODEL


@pytest.fixture(scope="session")
def tok(model_path):
    from bytepiece import Tokenizer

    return Tokenizer(model_path, seed=1234)


@pytest.fixture(autouse=True)
def _deterministic_unseeded_tokenizers(request, monkeypatch):
    """Tokenizers made without a seed draw one from the OS. Inside the test process they
    draw from a counter keyed by the test's name instead, so every run of a test sees the
    same samples (distinct tokenizers still get distinct seeds). Child processes the
    tests start use the real source."""
    from bytepiece import keys

    base = int.from_bytes(hashlib.sha256(request.node.nodeid.encode()).digest()[:8], "little")
    counter = itertools.count(1)
    monkeypatch.setattr(keys, "random_seed", lambda: (base + next(counter)) % (1 << 64))


def pytest_collection_modifyitems(items):
    """Tests that need Dask or torch are slow too: ``-m "not slow"`` is the fast suite."""
    for item in items:
        if item.get_closest_marker("dask") or item.get_closest_marker("torch"):
            item.add_marker(pytest.mark.slow)
