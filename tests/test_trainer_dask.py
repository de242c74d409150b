"""Trainer's own entry points dispatch to Dask: the same model as the local run."""
from __future__ import annotations

import pytest

pytest.importorskip("distributed")

from bytepiece.trainer import Trainer, TrainerError  # noqa: E402

TEXT = "".join(f"Row {i}: the quick brown fox jumps over the lazy dog; 上海 {i % 5}, naïve {i % 9}.\n" for i in range(300))


def _model(tmp_path, name, **train_options):
    trainer = Trainer(max_vocab_size=300, verbose=False, engine=train_options.pop("engine", "process"))
    trainer.train_files([str(tmp_path / "corpus.txt")], **train_options)
    trainer.save(tmp_path / name)
    return (tmp_path / name).read_bytes()


def test_train_files_on_dask_equals_the_local_run(tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    local = _model(tmp_path, "local.model")
    assert _model(tmp_path, "dask.model", local_workers=2, blocksize=2048) == local
    assert _model(tmp_path, "engine.model", engine="dask", local_workers=2) == local


def test_engine_dask_needs_files_and_a_cluster(tmp_path):
    trainer = Trainer(max_vocab_size=300, verbose=False, engine="dask")
    with pytest.raises(TrainerError, match="train_files"):
        trainer.train(["some text"])
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    with pytest.raises(ValueError, match="needs a cluster"):
        trainer.train_files([str(tmp_path / "corpus.txt")])
