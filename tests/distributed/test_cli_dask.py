"""The CLI's Dask options: the same model and the same ids as the local commands."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

pytest.importorskip("distributed")

from bytepiece import cli
from bytepiece.distributed import load_encoded

pytestmark = pytest.mark.dask

CORPUS = "".join(
    f"Line {i}: the quick brown fox jumps over the lazy dog; 北京 {i % 7}, café {i % 11}.\n" for i in range(400)
)


def invoke(*args):
    result = CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_train_on_a_local_dask_cluster_writes_the_same_model(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    invoke("train", corpus, "-o", tmp_path / "local.model", "--vocab-size", 320)
    invoke(
        "train", corpus, "-o", tmp_path / "dask.model", "--vocab-size", 320, "--dask-local", 2, "--dask-blocksize", 4096
    )
    assert (tmp_path / "dask.model").read_bytes() == (tmp_path / "local.model").read_bytes()


def test_encode_shards_equal_bytepiece_encode(tmp_path, model_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    ids_text = invoke("encode", "-m", model_path, "--alpha", 0.2, "--seed", 3, corpus).stdout
    expected = [[int(i) for i in line.split()] for line in ids_text.splitlines()]
    invoke(
        "encode-shards",
        "-m",
        model_path,
        "-o",
        tmp_path / "shards",
        "--alpha",
        0.2,
        "--seed",
        3,
        "--dask-local",
        2,
        "--dask-blocksize",
        2048,
        corpus,
    )
    ids, rows = load_encoded(str(tmp_path / "shards"))
    got = [ids[rows[k] : rows[k + 1]].tolist() for k in range(len(rows) - 1)]
    assert got == expected


def test_encode_with_a_dask_option_writes_the_same_ids_as_shards(tmp_path, model_path):
    """`bytepiece encode --dask-...` is encode-shards: the workers write numpy shards in -o."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    ids_text = invoke("encode", "-m", model_path, "--alpha", 0.2, "--seed", 3, "--eos", corpus).stdout
    expected = [[int(i) for i in line.split()] for line in ids_text.splitlines()]
    out = invoke(
        "encode",
        "-m",
        model_path,
        "--alpha",
        0.2,
        "--seed",
        3,
        "--eos",
        "-o",
        tmp_path / "shards",
        "--dask-local",
        2,
        "--dask-blocksize",
        2048,
        corpus,
    ).output
    assert "shard(s)" in out
    ids, rows = load_encoded(str(tmp_path / "shards"))
    assert [ids[rows[k] : rows[k + 1]].tolist() for k in range(len(rows) - 1)] == expected
    for extra, message in (
        (["--format", "pieces", "-o", tmp_path / "p"], "id shards"),
        ([], "-o"),
        (["-o", "-"], "-o"),
    ):
        result = CliRunner().invoke(
            cli.main, [str(a) for a in ["encode", "-m", model_path, *extra, "--dask-local", "1", corpus]]
        )
        assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "p").exists()


def test_encode_with_a_dask_option_reads_a_folder_and_without_one_refuses_it(tmp_path, model_path):
    """As its --help shows: `encode --dask-local N -o tokens/ corpus/` (the folder's files,
    as encode-shards reads them); without a Dask option a folder is a clear error."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text(CORPUS, encoding="utf-8")
    expected = invoke("encode", "-m", model_path, folder / "a.txt").stdout
    invoke("encode", "-m", model_path, "-o", tmp_path / "shards", "--dask-local", 1, folder)
    ids, rows = load_encoded(str(tmp_path / "shards"))
    got = [" ".join(map(str, ids[rows[k] : rows[k + 1]].tolist())) for k in range(len(rows) - 1)]
    assert got == expected.splitlines()
    result = CliRunner().invoke(cli.main, ["encode", "-m", str(model_path), str(folder)])
    assert result.exit_code == 1
    assert f"{folder}: is a folder; encode reads files" in result.output


def test_dask_options_are_checked(tmp_path):
    result = CliRunner().invoke(
        cli.main,
        ["train", "-", "-o", str(tmp_path / "m"), "--vocab-size", "300", "--dask-scheduler", "tcp://127.0.0.1:1"],
        input="text\n",
    )
    assert result.exit_code == 1 and "stdin" in result.output
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    result = CliRunner().invoke(
        cli.main,
        ["train", str(corpus), "-o", str(tmp_path / "m"), "--dask-local", "2", "--dask-scheduler", "tcp://127.0.0.1:1"],
    )
    assert result.exit_code == 1 and "only one of" in result.output
    assert not (tmp_path / "m").exists()
