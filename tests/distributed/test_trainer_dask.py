"""Trainer's own entry points dispatch to Dask: the same model as the local run.

``train_files`` has the workers read the files; ``train(texts)`` has the driver
read the documents and send them to the workers a block at a time. The
documents here are small slices of the bundled corpora plus awkward ones
(runs of blank lines, CRLF, a line longer than a chunk, NFD text, empty
documents), cut into many small blocks so that the merge tree has several
levels.
"""

from __future__ import annotations

import pathlib
import time

import pytest

pytest.importorskip("distributed")

from clusters import two_workers

from bytepiece.distributed import DaskTrainer, train_texts_on_dask
from bytepiece.trainer import Trainer, TrainerError

pytestmark = pytest.mark.dask

CORPORA = pathlib.Path(__file__).resolve().parents[2] / "corpora"
TEXT = "".join(
    f"Row {i}: the quick brown fox jumps over the lazy dog; 上海 {i % 5}, naïve {i % 9}.\n" for i in range(300)
)

EM = {"max_vocab_size": 500, "em_grow_rounds": 2, "verbose": False}
#: the EM seeded with 0.6.3's tagged pieces (and their adjacent pairs): the tagging runs
EM_TAGGED = dict(EM, em_seed="tagged", em_pairs=1.0)
NO_EM = {"max_vocab_size": [600, 350], "em": False, "isolate_digits": True, "verbose": False}


def _documents():
    """Documents of 1 to 9 lines from the bundled corpora, and some awkward ones."""
    docs = []
    for name, nbytes in (("en.train.txt", 50_000), ("zh.train.txt", 40_000), ("code.train.txt", 40_000)):
        data = (CORPORA / name).read_bytes()
        lines = data[: data.rfind(b"\n", 0, nbytes) + 1].decode("utf-8").splitlines(keepends=True)
        i = 0
        while i < len(lines):
            n = 1 + i % 9
            docs.append("".join(lines[i : i + n]))
            i += n
    docs += [
        "",
        "first line\n" + "\n" * 250 + "after a long run\r\n\r\n",
        "caf\u00e9 cafe\u0301\n",
        "x" * 30000 + "\n\n",
        "digits 12345 67890\n" * 40,
        "tail without newline",
        "",
    ]
    return docs


DOCS = _documents()


class Lines:
    """A re-iterable whose __iter__ is a generator function: documents made on the fly,
    never held as a list by the caller. Counts the passes and notes when each ends."""

    def __init__(self, docs, on_doc=None):
        self._docs = docs
        self.on_doc = on_doc
        self.passes = 0
        self.ends = []

    def __iter__(self):
        self.passes += 1
        for i, doc in enumerate(self._docs):
            if self.on_doc is not None:
                self.on_doc(i)
            yield str(doc)  # a fresh object each time
        self.ends.append(time.time())


def _saved(trainer, path) -> list:
    trainer.save(path)
    if len(trainer.pieces) == 1:
        return [path.read_bytes()]
    return [pathlib.Path(f"{path}.{s}").read_bytes() for s in trainer.max_vocab_size]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Models of the local Trainer.train(DOCS), the thing the Dask runs must reproduce."""
    d = tmp_path_factory.mktemp("reference")
    out = {}
    for name, options in (("em", EM), ("em_tagged", EM_TAGGED), ("no_em", NO_EM)):
        t = Trainer(**options)
        t.train(DOCS)
        out[name] = _saved(t, d / name)
    return out


@pytest.fixture(scope="module")
def client():
    """Two worker processes; not the default Client (tests pass it, or make it current)."""
    with two_workers(set_as_default=False) as c:
        yield c


# ---------------------------------------------------------------------------
# Files


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


# ---------------------------------------------------------------------------
# Documents


@pytest.mark.parametrize("name,options", [("em", EM), ("em_tagged", EM_TAGGED), ("no_em", NO_EM)])
def test_train_texts_on_dask_equals_the_local_run(client, reference, tmp_path, name, options):
    from dask.utils import key_split
    from distributed import get_task_stream

    trainer = Trainer(engine="dask", **options)
    with get_task_stream(client) as stream:
        trainer.train(DOCS, workers=2, batch_size=10, client=client, blocksize=4096, split_every=3)
    assert _saved(trainer, tmp_path / "dask.model") == reference[name]
    # The counting ran as tasks on the cluster's workers: one map task per block in each
    # stage (134k characters of documents: some 25 blocks), merged in a tree.
    ran = {}
    for task in stream.data:
        ran.setdefault(key_split(task["key"]), set()).add(task["worker"])
    workers = set(client.scheduler_info()["workers"])
    for stage in ("ngrams_task", "pieces_task", "merge_ngrams_task", "merge_pieces_task"):
        assert ran.get(stage) and ran[stage] <= workers, (stage, sorted(ran))
    blocks = sum(1 for task in stream.data if key_split(task["key"]) == "ngrams_task")
    assert blocks >= 20
    assert sum(1 for task in stream.data if key_split(task["key"]) == "pieces_task") == blocks
    assert len(ran["ngrams_task"]) == 2  # both workers took blocks


def test_generator_backed_texts_stream_with_few_blocks_in_flight(client, reference, tmp_path):
    """A re-iterable made by a generator function is read twice, lazily: tasks finish while
    it is still being read, and the cluster never holds more than a few blocks."""
    from dask.utils import key_split
    from distributed import get_task_stream

    held = []

    def on_doc(i):
        if i % 8 == 0:
            held.append(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))

    texts = Lines(DOCS, on_doc)
    trainer = Trainer(engine="dask", **NO_EM)
    with get_task_stream(client) as stream:
        trainer.train(texts, client=client, blocksize=500)  # ~130 blocks per pass
    assert _saved(trainer, tmp_path / "gen.model") == reference["no_em"]
    assert texts.passes == 2
    maps = [t for t in stream.data if key_split(t["key"]) == "ngrams_task"]
    assert len(maps) > 100, len(maps)
    # 2 worker threads: at most 4 map tasks unfinished, each with its scattered block,
    # fewer than split_every (8) results waiting at each level of the merge tree, the
    # merge tasks, and the n-gram model; never a pass's worth of blocks.
    assert 0 < max(held) <= 48, max(held)
    # Blocks were counted before the first pass had read its last document.
    done = [max(s["stop"] for s in t["startstops"] if s["action"] == "compute") for t in maps]
    assert sum(1 for stop in done if stop < texts.ends[0]) > len(maps) // 2


def test_default_client_in_process_and_the_helper_give_the_same_model(client, reference, tmp_path):
    with client.as_current():  # engine="dask" and no cluster named
        t = Trainer(engine="dask", **EM)
        t.train(Lines(DOCS))
    assert _saved(t, tmp_path / "default.model") == reference["em"]
    t = DaskTrainer(blocksize=5000, **EM)  # no cluster: block by block, here
    t.train(DOCS)
    assert _saved(t, tmp_path / "inproc.model") == reference["em"]
    t = Trainer(**NO_EM)  # a Dask option alone picks Dask
    assert train_texts_on_dask(t, DOCS, client=client, blocksize=20000) is t
    assert _saved(t, tmp_path / "helper.model") == reference["no_em"]


def test_engine_dask_needs_a_cluster(tmp_path):
    trainer = Trainer(max_vocab_size=300, verbose=False, engine="dask")
    with pytest.raises(ValueError, match="needs a cluster"):
        trainer.train(["some text"])
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    with pytest.raises(ValueError, match="needs a cluster"):
        trainer.train_files([str(tmp_path / "corpus.txt")])


def test_bad_arguments_give_clear_errors(client):
    t = Trainer(max_vocab_size=300, verbose=False, engine="dask")
    with pytest.raises(TypeError, match="re-iterable"):
        t.train((d for d in DOCS), client=client)
    with pytest.raises(TypeError, match="iterable of str"):
        t.train("one string", client=client)
    with pytest.raises(TypeError, match="unknown options.*clinet"):
        t.train(DOCS, clinet=client)
    with pytest.raises(TrainerError, match="blocksize must be a positive integer"):
        t.train(DOCS, client=client, blocksize=0)
    with pytest.raises(TrainerError, match="split_every must be a positive integer"):
        t.train(DOCS, client=client, split_every=-2)
    with pytest.raises(ValueError, match="give one of client, address"):
        t.train(DOCS, client=client, address="tcp://127.0.0.1:1")
    with pytest.raises(TrainerError, match="workers must be an integer"):
        t.train(DOCS, client=client, workers=0)
    with pytest.raises(TypeError, match="re-iterable"):
        DaskTrainer(verbose=False).train(iter(DOCS))
    # A bad document midway: the driver's error, and nothing is left on the cluster.
    with pytest.raises(TypeError, match="item 3 is bytes"):
        t.train(["a\n", "b\n", "c\n", b"d\n"] * 50, client=client, blocksize=2)
    deadline = time.time() + 10
    while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) and time.time() < deadline:
        time.sleep(0.05)
    assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0
