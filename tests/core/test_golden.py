"""Viterbi output identical to BytePiece 0.6.3's, ties included, on real models and text.

The golden files were written by BytePiece 0.6.3 itself (tests/golden/generate_golden.py).
The vendored model always runs; the other compat models run when ../shared is present.
"""

from __future__ import annotations

import base64
import gzip
import json
import pathlib

import pytest
from conftest import SHARED_COMPAT, VENDORED_MODEL

from bytepiece import Tokenizer

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden"


def _cases():
    for golden in sorted(GOLDEN.glob("*.jsonl.gz")):
        stem = golden.name[: -len(".jsonl.gz")]
        model = VENDORED_MODEL if VENDORED_MODEL.name == stem + ".zip" else SHARED_COMPAT / (stem + ".zip")
        yield pytest.param(golden, model, id=stem)


def test_golden_files_cover_the_vendored_model():
    assert (GOLDEN / (VENDORED_MODEL.name[: -len(".zip")] + ".jsonl.gz")).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("golden, model", list(_cases()))
def test_encode_and_tokenize_equal_0_6_3(golden, model):
    if not model.is_file():
        pytest.skip(f"{model.name} is only in ../shared/compat, which this checkout lacks")
    tok = Tokenizer(model)
    with gzip.open(golden, "rt", encoding="utf-8") as handle:
        cases = [json.loads(line) for line in handle]
    assert len(cases) > 100
    texts = [case["text"] for case in cases]
    for case, batch_ids in zip(cases, tok.encode_batch(texts, num_threads=2)):
        text = case["text"]
        assert tok.encode(text) == case["ids"], text[:60]
        assert batch_ids == case["ids"]
        assert tok.tokenize(text) == [base64.b64decode(p) for p in case["pieces"]], text[:60]
