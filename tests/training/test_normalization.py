"""A model trained by bytepiece is lossless by default: it records no normalisation, so
decode(encode(x)) == x for every str and every bytes. BytePiece 0.6.3's NFC is one
option away (normalization="NFC", --normalize nfc), and em=False keeps 0.6.3's
byte-identical files, NFC included."""

from __future__ import annotations

import json

import pytest

from bytepiece import Tokenizer
from bytepiece.trainer import Trainer, TrainerError

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Text with characters NFC changes: the Kelvin sign, a decomposed é, a compatibility
# ligature (NFKC), Hangul jamo, and ordinary words around them.
UNNORMALISED = "Kelvin \u212a, cafe\u0301 and caf\u00e9, \ufb01le, \u1100\u1161, ordinary words.\n"
DOCS = [UNNORMALISED * 3, "more plain text about files and words\n" * 20] * 10


@pytest.fixture(scope="module")
def lossless(tmp_path_factory):
    trainer = Trainer(max_vocab_size=600, min_count=2, verbose=False)
    trainer.train(DOCS)
    path = tmp_path_factory.mktemp("m") / "lossless.model"
    trainer.save(path)
    return trainer, path


def test_a_default_model_records_no_normalisation_and_keeps_every_character(lossless):
    trainer, path = lossless
    assert trainer.options.normalization == "none"
    assert json.loads(path.read_text(encoding="utf-8"))["__bytepiece__"]["normalization"] == "none"
    tok = Tokenizer(path)
    assert tok.normalization == "none"
    assert tok.decode(tok.encode(UNNORMALISED)) == UNNORMALISED
    # The training text was not normalised either: the decomposed é is in a piece as it was.
    assert any(b"e\xcc\x81" in p for p in tok.vocabulary.pieces)


def test_nfc_on_request_and_in_the_063_mode(tmp_path):
    for options in [{"normalization": "nfc"}, {"em": False}]:
        trainer = Trainer(max_vocab_size=600, min_count=2, verbose=False, **options)
        trainer.train(DOCS)
        trainer.save(tmp_path / "m.model")
        data = json.loads((tmp_path / "m.model").read_text(encoding="utf-8"))
        # An NFC model is a plain 0.6.3 file (no metadata entry): 0.6.3 reads it.
        assert "__bytepiece__" not in data
        tok = Tokenizer(tmp_path / "m.model")
        assert tok.normalization == "NFC"
        assert tok.decode(tok.encode(UNNORMALISED)) != UNNORMALISED  # (K and é are composed)
        assert not any(b"e\xcc\x81" in p for p in tok.vocabulary.pieces), options


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
@example(text="\u212a")  # Kelvin sign -> K under NFC
@example(text="e\u0301")  # decomposed é -> é under NFC
@example(text="\u1100\u1161 \ufb01")
def test_every_str_round_trips_under_a_default_model(lossless, text):
    tok = Tokenizer(lossless[1])
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text, alpha=0.3, key=1)) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=60))
def test_every_bytes_round_trips_under_a_default_model(lossless, data):
    tok = Tokenizer(lossless[1])
    assert tok.decode_bytes(tok.encode(data)) == data
    assert tok.decode_bytes(tok.encode(data, alpha=0.3, key=1)) == data


def test_bad_trainer_options_are_trainer_errors():
    for options in [
        {"normalization": "nfx"},
        {"normalization": True},
        {"max_vocab_size": 2**63},
        {"max_vocab_size": 2**31},
        {"ngram_memory": float("inf")},
        {"ngram_memory": float("nan")},
        {"ngram_memory": 1.5},
    ]:
        with pytest.raises(TrainerError):
            Trainer(**options)
    assert Trainer(normalization="NfKc").options.normalization == "NFKC"
