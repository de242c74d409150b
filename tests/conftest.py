"""Shared fixtures: the vendored model and, when ../shared is present, the other compat models."""
from __future__ import annotations

import pathlib

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent
VENDORED_MODEL = TESTS / "data" / "bytepiece.plus.40k.zip"
SHARED_COMPAT = REPO.parent / "shared" / "compat"
COMPAT_MODELS = sorted(SHARED_COMPAT.glob("*.zip")) if SHARED_COMPAT.is_dir() else []


@pytest.fixture(scope="session")
def model_path() -> pathlib.Path:
    return VENDORED_MODEL


@pytest.fixture(scope="session")
def tok(model_path):
    from bytepiece import Tokenizer

    return Tokenizer(model_path, seed=1234)
