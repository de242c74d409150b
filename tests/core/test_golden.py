"""Viterbi output identical to BytePiece 0.6.3's, ties included, on real models and text.

The golden files were written by BytePiece 0.6.3 itself (tests/golden/generate_golden.py),
one per model; the four models are vendored in tests/data (with their NOTICE), so every
case runs in any clone: none skips.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import pathlib
import re

import pytest
from conftest import COMPAT_MODELS, DATA, REPO, TESTS, VENDORED_MODEL

from bytepiece import Tokenizer

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden"


def _cases():
    for golden in sorted(GOLDEN.glob("*.jsonl.gz")):
        stem = golden.name[: -len(".jsonl.gz")]
        yield pytest.param(golden, DATA / (stem + ".zip"), id=stem)


def test_golden_files_cover_the_vendored_model():
    assert (GOLDEN / (VENDORED_MODEL.name[: -len(".zip")] + ".jsonl.gz")).is_file()


def test_every_golden_file_has_its_model_in_the_repository():
    goldens = sorted(g.name[: -len(".jsonl.gz")] for g in GOLDEN.glob("*.jsonl.gz"))
    assert goldens == sorted(m.name[: -len(".zip")] for m in COMPAT_MODELS)
    assert all(model.is_file() for model in COMPAT_MODELS)


def test_vendored_models_are_the_files_their_notice_names():
    notice = (DATA / "NOTICE").read_text(encoding="utf-8")
    listed = {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", notice, re.M)}
    assert sorted(listed) == sorted(p.name for p in DATA.glob("*.zip"))
    for name, digest in listed.items():
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name
        assert name in notice.split("sha256")[0], f"{name} is not described in tests/data/NOTICE"


def test_no_test_refers_to_a_path_outside_the_repository():
    """A clone has nothing beside it: no test, script or note under tests/ may reach out."""
    # (each pattern spelled so that it does not match itself)
    outside = re.compile(
        r"\.\./shar[e]d|shar[e]d/compat|\"shar[e]d\"\s*/|/wor[k]/|TESTS\.parent\.paren[t]|REPO\.paren[t]"
    )
    offenders = []
    for path in sorted(TESTS.rglob("*")):
        if path.suffix in (".py", ".md", ".txt", ".cfg", ".toml") and ".venv" not in path.parts:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if outside.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.slow
@pytest.mark.parametrize("golden, model", list(_cases()))
def test_encode_and_tokenize_equal_0_6_3(golden, model):
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
