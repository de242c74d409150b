"""bytepiece.distributed: Dask training and encoding equal the local results.

Clusters used here: a LocalCluster of two worker processes, and a real
cluster started by the test itself (``dask scheduler`` and two ``dask
worker`` processes on 127.0.0.1, stopped by pid). Corpora are small slices of
the bundled ones plus a file of awkward newlines, cut into many small blocks
so that block edges land everywhere.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("distributed")

from clusters import TIMEOUT, two_workers

from bytepiece import Tokenizer
from bytepiece.corpus import CorpusEncodingError
from bytepiece.distributed import (
    UNTAGGED,
    Counts,
    DaskTrainer,
    count_ngrams,
    count_pieces,
    encode_files,
    list_blocks,
    load_counts,
    load_encoded,
    merge_counts,
    read_block,
    train_files_on_dask,
    train_from_counts,
)
from bytepiece.trainer import Trainer

pytestmark = pytest.mark.dask

REPO = pathlib.Path(__file__).resolve().parents[2]
CORPORA = REPO / "corpora"

# Options kept small so that the local reference trains in a few seconds.
EM = {"max_vocab_size": 600, "em_grow_rounds": 2, "verbose": False}
#: the EM seeded with 0.6.3's tagged pieces (and their adjacent pairs): the tagging runs
EM_TAGGED = dict(EM, em_seed="tagged", em_pairs=1.0)
NO_EM = {"max_vocab_size": [700, 400], "em": False, "isolate_digits": True, "verbose": False}


def _slice(src: pathlib.Path, dst: pathlib.Path, nbytes: int) -> pathlib.Path:
    data = src.read_bytes()
    cut = data.rfind(b"\n", 0, nbytes) + 1
    dst.write_bytes(data[:cut])
    return dst


def _awkward() -> bytes:
    """Runs of blank lines longer than the chunker's 100, CRLF, a long line, no final newline."""
    parts = [
        b"first line\n",
        b"\n" * 250,
        b"after a long run\r\n\r\n",
        "caf\u00e9 cafe\u0301\n".encode(),
        b"x" * 30000 + b"\n\n",
        b"digits 12345 67890\n" * 40,
        b"\n" * 3,
        b"tail without newline",
    ]
    return b"".join(parts)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    files = [
        _slice(CORPORA / "en.train.txt", d / "en.txt", 120_000),
        _slice(CORPORA / "zh.train.txt", d / "zh.txt", 90_000),
        _slice(CORPORA / "code.train.txt", d / "code.txt", 90_000),
    ]
    awkward = d / "awkward.txt"
    awkward.write_bytes(_awkward())
    files.append(awkward)
    return [str(f) for f in files]


def _model_bytes(trainer: Trainer, path: pathlib.Path) -> list:
    trainer.save(path)
    if len(trainer.pieces) == 1:
        return [path.read_bytes()]
    return [pathlib.Path(f"{path}.{s}").read_bytes() for s in trainer.max_vocab_size]


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """Models of the local trainer, the thing every engine must reproduce byte for byte."""
    d = tmp_path_factory.mktemp("reference")
    out = {}
    for name, options in (("em", EM), ("em_tagged", EM_TAGGED), ("no_em", NO_EM)):
        t = Trainer(**options)
        t.train_files(corpus)
        out[name] = _model_bytes(t, d / name)
    return out


@pytest.fixture(scope="module")
def local_cluster():
    with two_workers(set_as_default=True) as client:  # (test_hook_uses_the_default_client)
        yield client


# ---------------------------------------------------------------------------
# Blocks


@pytest.mark.parametrize("blocksize", [7, 100, 4096, 1 << 20])
def test_blocks_tile_the_file_at_ends_of_newline_runs(tmp_path, blocksize):
    path = tmp_path / "a.txt"
    data = _awkward()
    path.write_bytes(data)
    pieces, ends = [], []
    for p, offset, length in list_blocks([str(path)], blocksize):
        start, block = read_block(p, offset, length)
        assert start == sum(map(len, pieces))
        pieces.append(block)
        if block:
            end = start + len(block)
            ends.append(end)
            # a block ends after a newline that is not followed by another (or at the end)
            assert end == len(data) or (data[end - 1] == 10 and data[end] != 10)
    assert b"".join(pieces) == data
    assert ends[-1] == len(data)


def test_blocks_of_folders_and_empty_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_bytes(b"b\n")
    (tmp_path / "a.txt").write_bytes(b"a\n")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / ".hidden").write_bytes(b"h\n")
    blocks = list_blocks([str(tmp_path)], 1 << 20)
    assert [os.path.relpath(b[0], tmp_path) for b in blocks] == ["a.txt", os.path.join("sub", "b.txt")]


# ---------------------------------------------------------------------------
# Training without a cluster, and count files


@pytest.mark.parametrize("name,options", [("em", EM), ("em_tagged", EM_TAGGED), ("no_em", NO_EM)])
def test_in_process_blocks_equal_local_trainer(corpus, reference, tmp_path, name, options):
    t = DaskTrainer(**options, blocksize=20_000)
    t.train_files(corpus)
    assert _model_bytes(t, tmp_path / "m") == reference[name]
    assert set(t.stats["stage_seconds"]) == {"count_ngrams", "count_pieces", "prune_em"}


def test_empty_corpus_and_texts(tmp_path):
    from bytepiece.corpus import EmptyCorpusError

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(EmptyCorpusError):
        DaskTrainer(**NO_EM).train_files([str(empty)])
    for texts in ([], ["", ""]):  # documents, sent by this process
        with pytest.raises(EmptyCorpusError):
            DaskTrainer(**NO_EM).train(texts)


@pytest.mark.parametrize("name,options", [("em", EM), ("em_tagged", EM_TAGGED)])
def test_saved_and_merged_counts_equal_one_shot(corpus, reference, tmp_path, name, options):
    """With the n-gram seed, stage 2 only draws the EM sample (no piece counts: nothing is
    tagged, its counts record no model); with the tagged seed it counts pieces and pairs."""
    trainer = Trainer(**options)
    shards = [corpus[:2], corpus[2:]]
    one_ngrams = count_ngrams(corpus, trainer, blocksize=50_000)
    # stage 1 per shard, saved, loaded, merged
    for i, shard in enumerate(shards):
        count_ngrams(shard, trainer, blocksize=30_000).save(tmp_path / f"ngrams-{i}.bpc")
    ngrams = merge_counts([tmp_path / f"ngrams-{i}.bpc" for i in range(len(shards))])
    assert ngrams.digest() == one_ngrams.digest()
    assert ngrams.nbytes == one_ngrams.nbytes > 0
    ngrams.save(tmp_path / "ngrams.bpc")
    ngrams = load_counts(tmp_path / "ngrams.bpc")
    assert ngrams.digest() == one_ngrams.digest()
    # stage 2 per shard with the merged n-gram counts
    one_pieces = count_pieces(corpus, one_ngrams, trainer)
    for i, shard in enumerate(shards):
        count_pieces(shard, ngrams, trainer, blocksize=25_000).save(tmp_path / f"pieces-{i}.bpc")
    pieces = merge_counts([load_counts(tmp_path / f"pieces-{i}.bpc") for i in range(len(shards))])
    assert pieces.table.to_dict() == one_pieces.table.to_dict()
    if name == "em_tagged":
        assert len(pieces.table) > 0 and pieces.settings["model"] != UNTAGGED
        assert pieces.pairs.to_dict() == one_pieces.pairs.to_dict()
    else:
        assert len(pieces.table) == 0 and pieces.pairs is None and pieces.settings["model"] == UNTAGGED
    assert pieces.sample == one_pieces.sample and len(pieces.sample) > 0
    pieces.save(tmp_path / "pieces.bpc")
    # finishing from the files gives the local model
    fresh = Trainer(**options)
    train_from_counts(fresh, tmp_path / "ngrams.bpc", tmp_path / "pieces.bpc")
    assert _model_bytes(fresh, tmp_path / "m") == reference[name]
    # piece counts of the other kind (tagged / untagged) are refused
    other = Trainer(**(EM if name == "em_tagged" else EM_TAGGED))
    with pytest.raises(ValueError, match="another n-gram model|other settings"):
        train_from_counts(other, tmp_path / "ngrams.bpc", tmp_path / "pieces.bpc")


def test_driver_frees_its_own_ngram_table_and_keeps_given_counts(corpus, reference, tmp_path, monkeypatch):
    """A table the driver merged itself is released as the n-gram model is built (the
    local trainer does the same with its own), so it is not held through piece counting
    and EM; counts the caller passed in stay intact and usable."""
    from bytepiece._core import ngram_model

    finished = []
    real = ngram_model.finish_ngrams

    def spy(table, *args, **kwargs):
        out = real(table, *args, **kwargs)
        finished.append(table.released)
        return out

    monkeypatch.setattr(ngram_model, "finish_ngrams", spy)
    t = DaskTrainer(**NO_EM, blocksize=50_000)
    t.train_files(corpus)
    assert finished == [True]
    assert _model_bytes(t, tmp_path / "m") == reference["no_em"]
    trainer = Trainer(**NO_EM)
    ngrams = count_ngrams(corpus, trainer)
    pieces = count_pieces(corpus, ngrams, trainer)
    digest = ngrams.digest()
    fresh = Trainer(**NO_EM)
    train_from_counts(fresh, ngrams, pieces)
    assert finished == [True, False] and ngrams.digest() == digest
    assert _model_bytes(fresh, tmp_path / "m2") == reference["no_em"]


def test_merge_refuses_mismatched_counts(corpus, tmp_path):
    a = count_ngrams(corpus[:1], Trainer(order=6, verbose=False))
    b = count_ngrams(corpus[1:2], Trainer(order=5, verbose=False))
    with pytest.raises(ValueError, match="different settings"):
        merge_counts([a, b])
    with pytest.raises(ValueError, match="more than one"):
        merge_counts([a, a])
    assert isinstance(merge_counts([a, a], allow_overlap=True), Counts)
    # piece counts tagged with another n-gram model cannot finish this one
    t = Trainer(**EM_TAGGED)
    whole = count_ngrams(corpus, t)
    part_pieces = count_pieces(corpus, count_ngrams(corpus[:1], t), t)
    with pytest.raises(ValueError, match="another n-gram model"):
        train_from_counts(Trainer(**EM_TAGGED), whole, part_pieces)
    # untagged counts (the n-gram seed: only the EM sample) depend on no model, so any
    # n-gram counts of these settings may finish them
    t = Trainer(**EM)
    untagged = count_pieces(corpus, count_ngrams(corpus[:1], t), t)
    fresh = Trainer(**EM)
    train_from_counts(fresh, count_ngrams(corpus, t), untagged)
    reference = Trainer(**EM)
    reference.train_files(corpus)
    assert fresh.pieces == reference.pieces


def test_merge_refuses_one_file_counted_under_two_names(corpus, tmp_path):
    """The overlap check compared the names as given, so a file counted once by its path
    and once through a symbolic link (to it or to its folder) was counted twice."""
    trainer = Trainer(order=6, verbose=False)
    linked_folder = tmp_path / "linked"
    linked_folder.symlink_to(pathlib.Path(corpus[0]).parent)
    linked_file = tmp_path / "link.txt"
    linked_file.symlink_to(corpus[0])
    direct = count_ngrams(corpus[:1], trainer)
    for other in (linked_folder / pathlib.Path(corpus[0]).name, linked_file):
        with pytest.raises(ValueError, match="more than one"):
            merge_counts([direct, count_ngrams([str(other)], trainer)])


def test_a_damaged_counts_file_is_refused_naming_it(corpus, tmp_path):
    """A flipped byte loaded as different counts, silently; a truncated file gave
    "buffer is smaller than requested size" without its name."""
    path = tmp_path / "a.bpc"
    counts = count_ngrams(corpus[:1], Trainer(order=6, verbose=False))
    counts.save(path)
    good = path.read_bytes()
    assert load_counts(path).digest() == counts.digest()
    for damaged in (good[: len(good) // 2], good[:-3], good + b"xx", good[:100] + bytes([good[100] ^ 1]) + good[101:]):
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match=r"a\.bpc: a damaged counts file"):
            load_counts(path)
        with pytest.raises(ValueError, match=r"a\.bpc: a damaged counts file"):
            merge_counts([path, counts])


# ---------------------------------------------------------------------------
# Encoding


def _lines(paths) -> list:
    out = []
    for p in paths:
        out.extend(re.findall(rb"[^\n]*\n|[^\n]+", pathlib.Path(p).read_bytes()))
    return out


@pytest.fixture(scope="module")
def tokenizer(model_path):
    return Tokenizer(model_path, seed=99)


def _expected(tok, paths, alpha):
    texts = [x.decode("utf-8") for x in _lines(paths)]
    keys = list(range(1, len(texts) + 1))
    return tok.encode_batch(texts, alpha=alpha, keys=keys, add_eos=True)


def _check_shards(folder, expected):
    ids, rows = load_encoded(folder)
    assert len(rows) == len(expected) + 1
    got = [ids[rows[i] : rows[i + 1]].tolist() for i in range(len(expected))]
    assert got == expected


def test_encode_in_process_equals_encode_batch(corpus, tokenizer, tmp_path):
    expected = _expected(tokenizer, corpus, 0.1)
    for blocksize in (9_000, 1 << 20):
        index = encode_files(
            corpus, tokenizer, str(tmp_path / str(blocksize)), blocksize=blocksize, alpha=0.1, add_eos=True
        )
        assert index["lines"] == len(expected)
        _check_shards(tmp_path / str(blocksize), expected)


def test_encoding_again_into_a_folder_leaves_only_its_own_parts(corpus, tokenizer, tmp_path):
    # A second run with fewer blocks must not leave the first run's extra parts behind.
    out = tmp_path / "out"
    many = encode_files(corpus, tokenizer, str(out), blocksize=9_000, add_eos=True)
    few = encode_files(corpus, tokenizer, str(out), blocksize=1 << 20, add_eos=True, overwrite=True)
    assert len(many["parts"]) > len(few["parts"]) >= 1
    listed = {p["name"] + s for p in few["parts"] for s in (".ids.npy", ".rows.npy")}
    assert set(os.listdir(out)) == listed | {"index.json"}
    _check_shards(out, _expected(tokenizer, corpus, -1))


def test_encode_files_uses_the_model_default_alpha(corpus, tokenizer, tmp_path):
    # A model file that records alpha 0.1 samples in the shards as `bytepiece encode` does.
    path = tmp_path / "sampling.model"
    Tokenizer(tokenizer.vocabulary, alpha=0.1).save(path)
    index = encode_files(corpus, str(path), str(tmp_path / "out"), seed=7, add_eos=True)
    assert index["alpha"] == 0.1
    expected = _expected(Tokenizer(path, seed=7), corpus, 0.1)
    assert expected != _expected(tokenizer, corpus, -1)
    _check_shards(tmp_path / "out", expected)
    viterbi = encode_files(corpus, str(path), str(tmp_path / "viterbi"), alpha=-1, add_eos=True)
    assert viterbi["alpha"] == -1
    _check_shards(tmp_path / "viterbi", _expected(tokenizer, corpus, -1))


# ---------------------------------------------------------------------------
# A LocalCluster of two worker processes


def _task_name(task) -> str:
    """The function name of a task in a distributed task stream ("ngrams_task", ...)."""
    from distributed.utils import key_split

    return key_split(task["key"])


@pytest.mark.parametrize("name,options", [("em", EM), ("em_tagged", EM_TAGGED), ("no_em", NO_EM)])
def test_local_cluster_training_equals_local(local_cluster, corpus, reference, tmp_path, name, options):
    from distributed import get_task_stream

    t = DaskTrainer(**options, client=local_cluster, blocksize=15_000, split_every=3)
    with get_task_stream(client=local_cluster) as stream:
        t.train_files(corpus)
    assert _model_bytes(t, tmp_path / "m") == reference[name]
    # The blocks were counted by tasks on both worker processes.
    counted = [task for task in stream.data if _task_name(task) in ("ngrams_task", "pieces_task")]
    assert len(counted) == 2 * len(list_blocks(corpus, 15_000))
    assert len({task["worker"] for task in counted}) == 2


def test_invalid_utf8_reaches_the_driver_with_file_and_offset(local_cluster, corpus, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\n" * 500 + b"bad \xff byte\n" + b"more\n" * 10)
    t = DaskTrainer(**NO_EM, client=local_cluster, blocksize=1000)
    with pytest.raises(CorpusEncodingError, match=r"bad\.txt: not valid UTF-8 at byte offset 5004"):
        t.train_files([corpus[0], str(bad)])
    # errors="replace" and errors="bytes" train as locally
    for errors in ("replace", "bytes"):
        local = Trainer(**NO_EM)
        local.train_files([corpus[1], str(bad)], errors=errors)
        t.train_files([corpus[1], str(bad)], errors=errors)
        assert t.pieces == local.pieces


def test_urls_through_fsspec(local_cluster, corpus, reference, tmp_path):
    """file:// URLs take the fsspec path (as s3:// or gs:// would) on the workers."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i, f in enumerate(corpus):  # a folder URL lists its files sorted: keep the order
        (folder / f"{i}-{os.path.basename(f)}").write_bytes(pathlib.Path(f).read_bytes())
    t = DaskTrainer(**NO_EM, client=local_cluster, blocksize=40_000)
    t.train_files([folder.as_uri()])
    assert _model_bytes(t, tmp_path / "m") == reference["no_em"]
    counts = count_ngrams([folder.as_uri()], Trainer(**NO_EM), client=local_cluster)
    counts.save((tmp_path / "c.bpc").as_uri())
    assert load_counts((tmp_path / "c.bpc").as_uri()).digest() == counts.digest()


def test_trainer_hook_function(local_cluster, corpus, reference, tmp_path):
    """train_files_on_dask is what Trainer.train_files(..., engine="dask") calls."""
    t = Trainer(**EM)
    train_files_on_dask(t, corpus, client=local_cluster, blocksize=40_000)
    assert _model_bytes(t, tmp_path / "m") == reference["em"]


def test_hook_uses_the_default_client(local_cluster, corpus, reference, tmp_path):
    t = Trainer(**NO_EM)
    train_files_on_dask(t, corpus, blocksize=30_000)  # local_cluster is the session's client
    assert _model_bytes(t, tmp_path / "m") == reference["no_em"]


def test_dask_is_not_imported_unless_used():
    code = (
        "import sys, bytepiece, bytepiece.trainer, bytepiece.distributed, bytepiece.cli, bytepiece.data; "
        "bad = [m for m in ('dask', 'distributed', 'fsspec') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=TIMEOUT)


def test_local_cluster_counts_equal_in_process(local_cluster, corpus):
    t = Trainer(**EM)
    here = count_ngrams(corpus, t, blocksize=1 << 20)
    there = count_ngrams(corpus, t, client=local_cluster, blocksize=11_000)
    assert there.digest() == here.digest()
    assert (
        count_pieces(corpus, there, t, client=local_cluster, blocksize=13_000).table.to_dict()
        == count_pieces(corpus, here, t).table.to_dict()
    )


def test_local_cluster_encode_equals_encode_batch(local_cluster, corpus, tokenizer, tmp_path):
    expected = _expected(tokenizer, corpus, 0.1)
    for blocksize in (8_000, 50_000):
        folder = tmp_path / str(blocksize)
        encode_files(corpus, tokenizer, str(folder), client=local_cluster, blocksize=blocksize, alpha=0.1, add_eos=True)
        _check_shards(folder, expected)
    url = (tmp_path / "viterbi").as_uri()  # output through fsspec, as to an object store
    viterbi = encode_files(corpus, tokenizer, url, client=local_cluster, blocksize=30_000, add_eos=True)
    assert viterbi["tokens"] == sum(map(len, _expected(tokenizer, corpus, -1)))
    _check_shards(url, _expected(tokenizer, corpus, -1))


# ---------------------------------------------------------------------------
# A real cluster: `dask scheduler` and two `dask worker` processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory):
    from distributed import Client

    d = tmp_path_factory.mktemp("cluster")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    procs = []
    logs = []
    for attempt in range(3):  # a chosen port may be taken between choosing and binding
        port = _free_port()
        address = f"tcp://127.0.0.1:{port}"
        log = open(d / f"scheduler-{attempt}.log", "wb")
        logs.append(log)
        scheduler_file = d / f"scheduler-{attempt}.json"
        sched = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            cwd=d,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(sched)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and sched.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        if sched.poll() is None:
            break
    else:
        _stop(procs)
        pytest.fail("the dask scheduler did not start: " + (d / "scheduler-2.log").read_text())
    try:
        for i in range(2):
            log = open(d / f"worker-{i}.log", "wb")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dask",
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        "--name",
                        f"w{i}",
                        "--local-directory",
                        str(d / f"w{i}"),
                    ],
                    cwd=d,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        with Client(address, timeout=TIMEOUT) as client:
            client.wait_for_workers(2, timeout=TIMEOUT)
            yield SimpleNamespace(address=address, scheduler_file=str(scheduler_file))
    finally:
        _stop(procs)
        for log in logs:
            log.close()


def test_real_cluster_training_equals_local(real_cluster, corpus, reference, tmp_path):
    from distributed import Client, get_task_stream

    t = DaskTrainer(**EM, address=real_cluster.address, blocksize=25_000)
    with Client(real_cluster.address, timeout=TIMEOUT) as watcher, get_task_stream(client=watcher) as stream:
        t.train_files(corpus)
    assert _model_bytes(t, tmp_path / "m") == reference["em"]
    counted = [task for task in stream.data if _task_name(task) in ("ngrams_task", "pieces_task")]
    assert len(counted) == 2 * len(list_blocks(corpus, 25_000))


class _Paragraphs:
    """Documents of 10 lines of some files, read anew on each pass (never a list)."""

    def __init__(self, paths):
        self.paths = paths

    def __iter__(self):
        for path in self.paths:
            with open(path, encoding="utf-8", newline="") as f:
                lines = []
                for line in f:
                    lines.append(line)
                    if len(lines) == 10:
                        yield "".join(lines)
                        lines = []
                if lines:
                    yield "".join(lines)


def test_real_cluster_training_on_documents_equals_local(real_cluster, corpus, tmp_path):
    """Trainer.train(texts) on the separately started cluster, found by its scheduler file:
    nothing is written for the workers to read, the documents reach them through Dask."""
    local = Trainer(**NO_EM)
    local.train(_Paragraphs(corpus))
    t = Trainer(engine="dask", **NO_EM)
    t.train(_Paragraphs(corpus), scheduler_file=real_cluster.scheduler_file, blocksize=30_000)
    assert _model_bytes(t, tmp_path / "dask") == _model_bytes(local, tmp_path / "local")


def test_real_cluster_encode_equals_encode_batch(real_cluster, corpus, tokenizer, tmp_path):
    expected = _expected(tokenizer, corpus, 0.1)
    encode_files(
        corpus,
        tokenizer,
        str(tmp_path / "out"),
        address=real_cluster.address,
        blocksize=12_000,
        alpha=0.1,
        add_eos=True,
    )
    _check_shards(tmp_path / "out", expected)


def _cli(*args):
    from click.testing import CliRunner

    from bytepiece import cli

    result = CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_real_cluster_through_the_cli(real_cluster, corpus, model_path, tmp_path):
    """bytepiece train --dask-scheduler ADDRESS and encode-shards --dask-scheduler-file FILE
    on the real cluster: the local command's model and ids."""
    from distributed import Client, get_task_stream

    files = corpus[1:3]
    _cli("train", *files, "-o", tmp_path / "local.model", "--vocab-size", 500)
    text = _cli("encode", "-m", model_path, "--alpha", 0.2, "--seed", 5, "--eos", *files)
    expected = [[int(i) for i in line.split()] for line in text.splitlines()]
    # The scheduler's task stream shows that the commands ran their tasks on the cluster.
    with Client(real_cluster.address, timeout=TIMEOUT) as watcher, get_task_stream(client=watcher) as stream:
        _cli(
            "train",
            *files,
            "-o",
            tmp_path / "dask.model",
            "--vocab-size",
            500,
            "--dask-scheduler",
            real_cluster.address,
            "--dask-blocksize",
            20_000,
        )
        _cli(
            "encode-shards",
            "-m",
            model_path,
            "-o",
            tmp_path / "shards",
            "--alpha",
            0.2,
            "--seed",
            5,
            "--eos",
            "--dask-scheduler-file",
            real_cluster.scheduler_file,
            "--dask-blocksize",
            15_000,
            *files,
        )
    ran = {_task_name(task) for task in stream.data}
    assert {"ngrams_task", "pieces_task", "encode_task"} <= ran, ran
    assert (tmp_path / "dask.model").read_bytes() == (tmp_path / "local.model").read_bytes()
    ids, rows = load_encoded(str(tmp_path / "shards"))
    assert len(rows) - 1 == len(expected)
    assert [ids[rows[k] : rows[k + 1]].tolist() for k in range(len(expected))] == expected
