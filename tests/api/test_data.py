"""bytepiece.data through the real libraries: torch DataLoader workers (fork and spawn),
distributed shards, packing, Hugging Face datasets (map with num_proc, its cache,
set_transform), and the exact sampling distribution seen through the data path."""

from __future__ import annotations

import math
import pickle
import re
from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the data-loader tests need torch (the 'test' extra)")
datasets = pytest.importorskip("datasets", reason="the data-loader tests need datasets (the 'test' extra)")

from torch.utils.data import DataLoader, RandomSampler  # noqa: E402

from bytepiece import Tokenizer  # noqa: E402
from bytepiece.data import (  # noqa: E402
    EncodeTransform,
    EpochSampler,
    FlatBatch,
    TextStream,
    TokenizedDataset,
    datasets_map,
    datasets_transform,
    encode_flat,
    flatten,
    pad,
)
from bytepiece.model import EOS_ID, vocabulary_from_counts  # noqa: E402
from bytepiece.reference import ReferenceLattice  # noqa: E402

pytestmark = pytest.mark.torch

SENTENCES = [
    "Stochastic segmentation exists to be used while a model trains.",
    "Every epoch sees each document segmented afresh.",
    "你好，世界。今天天气不错，我们去公园散步吧。",
    "def tokenize(text):\n    return [piece for piece in split(text)]",
    "Subword regularisation makes models robust to segmentation noise.",
    "Les données d'entraînement sont découpées différemment à chaque époque.",
]
# Small on purpose: spawned workers start slowly, the corpus should not add to that.
TEXTS = [f"{SENTENCES[i % len(SENTENCES)]} #{i}" for i in range(40)]
# The same documents one per line (no newlines inside), with an empty line (skipped, not
# numbered) after the twentieth.
FILE_LINES = [t.replace("\n", " ") for t in TEXTS[:20]] + [""] + [t.replace("\n", " ") for t in TEXTS[20:]]
ALPHA = 0.1


@pytest.fixture(scope="module")
def model(tok):
    """The vendored model cut to its 3,000 most frequent pieces (plus all single bytes):
    real pieces and counts, but quick to pickle into workers and to fingerprint."""
    vocab = tok.vocabulary
    order = sorted(range(len(vocab)), key=lambda i: (len(vocab.pieces[i]) > 1, -vocab.counts[i]))
    keep = {vocab.pieces[i]: vocab.counts[i] for i in order[:3000]}
    return Tokenizer(vocabulary_from_counts(keep))


@pytest.fixture(scope="module")
def transform(model):
    return EncodeTransform(model, alpha=ALPHA, seed=7, add_eos=True)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "docs.txt"
    # An empty line and a CRLF line ending.
    lines = FILE_LINES
    path.write_bytes(("\n".join(lines[:-1]) + "\r\n" + lines[-1] + "\n").encode())
    return path


def serial(transform, epoch, texts=TEXTS):
    return [transform.encode_list(t, i, epoch) for i, t in enumerate(texts)]


def as_lists(items):
    return [[int(x) for x in ids] for ids in items]


# -- the transform --------------------------------------------------------------


def test_transform_is_a_pure_function_of_seed_epoch_index_text(model, transform):
    tok = Tokenizer(model.vocabulary, seed=7)
    for i, text in enumerate(TEXTS[:6]):
        assert transform(text, i, epoch=3) == tok.encode(text, add_eos=True, alpha=ALPHA, key=transform.key(i, 3))
    # The caller's tokenizer seed does not matter, only the base seed.
    other = EncodeTransform(Tokenizer(model.vocabulary, seed=999), alpha=ALPHA, seed=7, add_eos=True)
    assert serial(other, 2) == serial(transform, 2)
    copy = pickle.loads(pickle.dumps(transform))
    assert serial(copy, 5) == serial(transform, 5)
    # Other kinds of index: numpy ints are ints; strings and huge ints are hashed tuple keys.
    assert transform(TEXTS[0], np.int64(5), 1) == transform(TEXTS[0], 5, 1)
    assert transform.key("doc-5", 1) == (1, "doc-5") and transform.key(1 << 40, 0) == (0, 1 << 40)
    assert transform(TEXTS[0], "doc-5", 1) == tok.encode(TEXTS[0], add_eos=True, alpha=ALPHA, key=(1, "doc-5"))
    assert len({transform.key(i, e) for i in (0, 1, (1 << 40) - 1, 1 << 40) for e in (0, 1, 2)}) == 12
    # set_epoch is the default epoch.
    copy.set_epoch(5)
    assert [copy(t, i) for i, t in enumerate(TEXTS)] == serial(transform, 5)


def test_epochs_seeds_and_indices_give_different_samples(model, transform):
    base = serial(transform, 0)
    assert serial(transform, 1) != base
    reseeded = EncodeTransform(model, alpha=ALPHA, seed=8, add_eos=True)
    assert serial(reseeded, 0) != base
    # The same text at two indices is sampled independently.
    same = [transform.encode_list(TEXTS[0], i, 0) for i in range(20)]
    assert len({tuple(s) for s in same}) > 1
    # Every sample decodes back to its text.
    assert all(transform.tokenizer.decode(ids) == t for ids, t in zip(base, TEXTS))


def test_viterbi_transform_ignores_keys(model):
    viterbi = EncodeTransform(model, alpha=-1, seed=0)
    assert serial(viterbi, 0) == serial(viterbi, 9) == [model.encode(t) for t in TEXTS]


def test_truncation_and_output_types(model):
    long_text = " ".join(TEXTS)
    both = EncodeTransform(model, alpha=ALPHA, seed=1, add_bos=True, add_eos=True, max_length=10)
    ids = both(long_text, 0)
    assert len(ids) == 10 and ids[0] == 1 and ids[-1] == EOS_ID
    full = EncodeTransform(model, alpha=ALPHA, seed=1, add_bos=True, add_eos=True)(long_text, 0)
    assert ids[:-1] == full[:9]
    plain = EncodeTransform(model, alpha=ALPHA, seed=1, max_length=10, output="numpy")(long_text, 0)
    assert plain.dtype == np.int32 and plain.tolist() == full[1:11]
    tensor = EncodeTransform(model, alpha=ALPHA, seed=1, output="torch")("short", 0)
    assert tensor.dtype == torch.int64
    with pytest.raises(ValueError):
        EncodeTransform(model, max_length=2, add_bos=True, add_eos=True)
    with pytest.raises(ValueError):
        EncodeTransform(model, seed=None)
    with pytest.raises(ValueError):
        EncodeTransform(model, output="tensor")


def test_flat_batches_equal_one_by_one(transform):
    expected = serial(transform, 4)
    for threads in (1, 2):
        ids, offsets = transform.encode_flat(TEXTS, range(len(TEXTS)), epoch=4, num_threads=threads)
        assert ids.dtype == np.int32 and offsets.dtype == np.int64 and len(offsets) == len(TEXTS) + 1
        assert [ids[offsets[i] : offsets[i + 1]].tolist() for i in range(len(TEXTS))] == expected
    tok = transform.tokenizer
    keys = [transform.key(i, 4) for i in range(len(TEXTS))]
    ids, offsets = encode_flat(tok, TEXTS, alpha=ALPHA, keys=keys, add_eos=True, num_threads=2)
    assert np.array_equal(ids, flatten(expected)[0]) and np.array_equal(offsets, flatten(expected)[1])
    # Truncation on the flat path cuts each row as encode_list does (keeping <bos>, <eos>).
    short = EncodeTransform(transform.tokenizer, alpha=ALPHA, seed=7, add_bos=True, add_eos=True, max_length=9)
    ids, offsets = short.encode_flat(TEXTS, range(len(TEXTS)), epoch=4)
    assert [ids[offsets[i] : offsets[i + 1]].tolist() for i in range(len(TEXTS))] == serial(short, 4)
    assert all(len(ids) <= 9 for ids in serial(short, 4))
    # Items fetched as a batch equal items fetched alone, for every output type.
    for output in ("list", "numpy", "torch"):
        ds = TokenizedDataset(TEXTS, short, output=output)
        assert as_lists(ds.__getitems__(list(range(10)))) == as_lists(ds[i] for i in range(10))
    batch = TokenizedDataset(TEXTS, short).__getitems__([3, 1, 2])
    assert isinstance(batch, FlatBatch) and len(batch) == 3 and batch.indices == [3, 1, 2]
    assert [b.tolist() for b in batch] == [serial(short, 0)[i] for i in (3, 1, 2)]
    assert batch[-1].tolist() == batch[2].tolist() and [b.tolist() for b in batch[1:]] == serial(short, 0)[1:3]
    for a, b in zip(flatten(batch), flatten([serial(short, 0)[i] for i in (3, 1, 2)])):
        assert np.array_equal(a, b)
    assert np.array_equal(
        pad(batch, output="numpy")["input_ids"],
        pad([serial(short, 0)[i] for i in (3, 1, 2)], output="numpy")["input_ids"],
    )
    assert pad([[5, 6], [7]], output="list")["input_ids"] == [[5, 6], [7, 0]]
    padded = pad(expected[:3], output="numpy")
    assert padded["input_ids"].shape == (3, max(map(len, expected[:3])))
    assert padded["input_ids"][0, : len(expected[0])].tolist() == expected[0]


# -- torch ----------------------------------------------------------------------


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_dataloader_workers_equal_a_serial_loop(transform, corpus_file, start_method):
    # Map-style, shuffled, persistent workers: EpochSampler carries the epoch to them.
    ds = TokenizedDataset(TEXTS, transform, return_index=True, output="list")
    sampler = EpochSampler(RandomSampler(ds, generator=torch.Generator().manual_seed(0)))
    loader = DataLoader(
        ds,
        batch_size=4,
        sampler=sampler,
        num_workers=2,
        collate_fn=list,
        multiprocessing_context=start_method,
        persistent_workers=True,
    )
    seen = {}
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        got = [item for batch in loader for item in batch]
        indices = [i for i, _ in got]
        assert sorted(indices) == list(range(len(TEXTS)))  # no duplicates, nothing missing
        seen[epoch] = dict(got)
        assert [seen[epoch][i] for i in range(len(TEXTS))] == serial(transform, epoch)
    assert seen[0] != seen[1]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_stream_workers_equal_a_serial_loop(transform, corpus_file, start_method):
    # Two workers yield exactly the serial stream, in order. Under spawn each worker
    # unpickles the stream (the lazily built class, the transform) and finds its shard
    # from its own get_worker_info.
    stream = TextStream(corpus_file, private_copy(transform), return_index=True)
    stream.set_epoch(3)
    expected = list(stream)  # num_workers=0: this process, one shard
    assert [i for i, _ in expected] == list(range(len(TEXTS)))
    loader = DataLoader(stream, batch_size=None, num_workers=2, multiprocessing_context=start_method)
    got = list(loader)
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert as_lists(ids for _, ids in got) == as_lists(ids for _, ids in expected)
    documents = [t for t in FILE_LINES if t]
    assert as_lists(ids for _, ids in got) == [transform.encode_list(documents[i], i, 3) for i, _ in got]


def test_set_epoch_reaches_fresh_workers(transform):
    ds = TokenizedDataset(TEXTS, private_copy(transform), return_index=True, output="list")
    loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=list, multiprocessing_context="fork")
    for epoch in (0, 2):
        ds.set_epoch(epoch)
        got = dict(item for batch in loader for item in batch)
        assert [got[i] for i in range(len(TEXTS))] == serial(transform, epoch)


def private_copy(transform):
    """A private copy, so set_epoch here does not leak into the shared fixture."""
    return pickle.loads(pickle.dumps(transform))


def test_distributed_ranks_partition_the_stream(transform, corpus_file):
    whole = dict(TextStream(corpus_file, transform, return_index=True))
    parts = [dict(TextStream(corpus_file, transform, return_index=True, rank=r, world_size=3)) for r in range(3)]
    assert sum(len(p) for p in parts) == len(whole)
    merged = {}
    for part in parts:
        assert not merged.keys() & part.keys()
        merged.update(part)
    assert {i: v.tolist() for i, v in merged.items()} == {i: v.tolist() for i, v in whole.items()}
    # Rank 1 of 3 with 2 workers: its workers split its shard between them.
    stream = TextStream(corpus_file, transform, return_index=True, rank=1, world_size=3)
    got = list(DataLoader(stream, batch_size=None, num_workers=2, multiprocessing_context="fork"))
    assert sorted(i for i, _ in got) == sorted(parts[1])
    with pytest.raises(ValueError):
        TextStream(corpus_file, transform, rank=3, world_size=3)
    # Fewer shards than ranks would leave a rank silently without documents.
    with pytest.raises(ValueError, match="num_shards=2 leaves ranks without documents"):
        list(TextStream(corpus_file, transform, rank=2, world_size=3, num_shards=2))


def test_epoch_sampler_over_distributed_samplers(transform):
    # Map-style data on two ranks: EpochSampler(DistributedSampler) partitions the
    # documents, forwards set_epoch (a new shuffle) and carries the epoch to the items.
    from torch.utils.data.distributed import DistributedSampler

    ds = TokenizedDataset(TEXTS, private_copy(transform), return_index=True, output="list")
    samplers = [EpochSampler(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in (0, 1)]
    orders = {}
    for epoch in (0, 1):
        got, orders[epoch] = {}, []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            loader = DataLoader(
                ds, batch_size=4, sampler=sampler, num_workers=2, collate_fn=list, multiprocessing_context="fork"
            )
            items = [item for batch in loader for item in batch]
            orders[epoch].append([i for i, _ in items])
            assert not got.keys() & {i for i, _ in items}
            got.update(items)
        assert [got[i] for i in range(len(TEXTS))] == serial(transform, epoch)
    assert orders[0] != orders[1]


def test_packing_into_fixed_blocks(model, corpus_file):
    plain = EncodeTransform(model, alpha=ALPHA, seed=7)  # the stream adds <eos>
    stream = TextStream(corpus_file, plain, block_size=16, drop_last=False)
    blocks = [b.tolist() for b in stream]
    documents = [t for t in FILE_LINES if t]
    expected = [tok for i, t in enumerate(documents) for tok in plain.encode_list(t, i, 0) + [EOS_ID]]
    assert all(len(b) == 16 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 16
    assert sum(blocks, []) == expected
    assert all(len(b) == 16 for b in TextStream(corpus_file, plain, block_size=16))
    # With num_shards fixed, the blocks do not depend on the number of workers.
    fixed = TextStream(corpus_file, plain, block_size=16, num_shards=4, output="torch")
    alone = sorted(b.tolist() for b in fixed)
    workers = DataLoader(fixed, batch_size=None, num_workers=2, multiprocessing_context="fork")
    assert sorted(b.tolist() for b in workers) == alone
    assert all(b.dtype == torch.int64 for b in fixed)


def test_stream_from_iterables(transform):
    assert as_lists(TextStream(None, transform, texts=TEXTS)) == serial(transform, 0)
    assert as_lists(TextStream(None, transform, texts=lambda: iter(TEXTS))) == serial(transform, 0)
    one_shot = TextStream(None, transform, texts=iter(TEXTS))
    assert as_lists(one_shot) == serial(transform, 0)
    shared = DataLoader(
        TextStream(None, transform, texts=iter(TEXTS)), batch_size=None, num_workers=2, multiprocessing_context="fork"
    )
    with pytest.raises(ValueError, match="one-shot"):
        list(shared)
    with pytest.raises(FileNotFoundError, match="texts="):
        TextStream(TEXTS, transform)
    with pytest.raises(ValueError):
        TextStream(None, transform)


# -- Hugging Face datasets --------------------------------------------------------


def test_datasets_map_is_independent_of_num_proc_and_caches_per_epoch(transform, tmp_path):
    datasets.Dataset.from_dict({"text": TEXTS}).save_to_disk(str(tmp_path / "ds"))
    ds = datasets.load_from_disk(str(tmp_path / "ds"))  # on disk, so map() caches
    one = datasets_map(ds, transform, epoch=0, num_proc=1, batch_size=7)
    two = datasets_map(ds, transform, epoch=0, num_proc=2, batch_size=7)
    assert one["input_ids"] == two["input_ids"] == serial(transform, 0)
    # The cache: the same epoch is replayed from the cache file (and that is right, the
    # samples being pure functions); a new epoch is not, it is sampled afresh.
    unpickled = private_copy(transform)
    unpickled.set_epoch(5)  # only the explicit epoch counts
    again = datasets_map(ds, unpickled, epoch=0, num_proc=1, batch_size=7)
    assert again._fingerprint == one._fingerprint and again.cache_files == one.cache_files
    assert again["input_ids"] == serial(transform, 0)
    next_epoch = datasets_map(ds, transform, epoch=1, num_proc=1, batch_size=7)
    assert next_epoch._fingerprint != one._fingerprint
    assert next_epoch["input_ids"] == serial(transform, 1)
    # A stable id column keys rows across shuffles.
    keyed = ds.add_column("doc", list(range(len(TEXTS)))).shuffle(seed=0)
    shuffled = datasets_map(keyed, transform, epoch=0, index_column="doc")
    assert dict(zip(shuffled["doc"], shuffled["input_ids"])) == dict(enumerate(serial(transform, 0)))


def test_datasets_set_transform_samples_on_the_fly(transform):
    private = private_copy(transform)
    ds = datasets.Dataset.from_dict({"text": TEXTS})
    ds = ds.add_column("index", list(range(len(ds))))
    ds.set_transform(datasets_transform(private))
    assert ds[:5]["input_ids"] == serial(transform, 0)[:5]
    private.set_epoch(1)
    assert ds[:5]["input_ids"] == serial(transform, 1)[:5]
    ds.reset_format()
    ds = ds.remove_columns("index")
    ds.set_transform(datasets_transform(private))
    with pytest.raises(KeyError, match="add_column"):
        ds[0]


def test_datasets_set_transform_in_dataloader_workers(transform):
    # The recipe of docs/data-loaders.md: set_epoch in the main process before each
    # epoch's iteration reaches fresh (non-persistent) workers, which sample on the fly.
    private = private_copy(transform)
    ds = datasets.Dataset.from_dict({"text": TEXTS, "index": list(range(len(TEXTS)))})
    ds.set_transform(datasets_transform(private))
    loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=list, multiprocessing_context="fork")
    for epoch in (0, 3):
        private.set_epoch(epoch)
        rows = [row for batch in loader for row in batch]
        assert sorted(row["index"] for row in rows) == list(range(len(TEXTS)))
        assert [row["input_ids"] for row in sorted(rows, key=lambda r: r["index"])] == serial(transform, epoch)


# -- the sampled distribution stays exact ----------------------------------------


def test_data_path_samples_follow_the_exact_distribution():
    scipy_stats = pytest.importorskip("scipy.stats")
    counts = {bytes([b]): 5 for b in range(256)}
    counts.update({b"ab": 40, b"bc": 25, b"abc": 12, b"ca": 30, b"cab": 8, b"abca": 3})
    vocab = vocabulary_from_counts(counts)
    logp = np.log(np.asarray(vocab.counts, dtype=np.float64)) - np.log(sum(vocab.counts))
    alpha, text = 0.7, "abcab"
    exact = ReferenceLattice(dict(zip(vocab.pieces, logp))).distribution(text.encode(), alpha)
    paths = sorted(exact)
    n = 40_000

    transform = EncodeTransform(vocab, alpha=alpha, seed=2024)
    tok = transform.tokenizer
    # Many documents with the same text (one draw each, through the batched path)
    # and one document over many epochs (through the dataset, one epoch per draw).
    ids, offsets = transform.encode_flat([text] * n, range(n), epoch=0)
    by_index = Counter(tuple(tok.ids_to_pieces(ids[offsets[i] : offsets[i + 1]].tolist())) for i in range(n))
    ds = TokenizedDataset([text], transform, output="list")
    by_epoch = Counter(tuple(tok.ids_to_pieces(ds[(e, 0)])) for e in range(n // 4))

    for counter in (by_index, by_epoch):
        total = sum(counter.values())
        assert set(counter) <= set(paths)
        observed = np.array([counter[p] for p in paths], dtype=float)
        expected = np.array([exact[p] * total for p in paths])
        keep = expected >= 5  # chi-square needs non-tiny cells; pool the rest
        observed = np.append(observed[keep], observed[~keep].sum())
        expected = np.append(expected[keep], expected[~keep].sum())
        if expected[-1] == 0:
            observed, expected = observed[:-1], expected[:-1]
        p_value = scipy_stats.chisquare(observed, expected).pvalue
        assert p_value > 1e-4, (p_value, observed, expected)
        # And the most likely segmentation is drawn about as often as it should be.
        top = max(paths, key=exact.get)
        assert math.isclose(counter[top] / total, exact[top], abs_tol=4 * math.sqrt(exact[top] / total))


def _rank_main(rank, init_file, path, transform, results):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        stream = TextStream(path, transform, return_index=True)  # rank and world size from dist
        results.put((rank, stream.rank, stream.world_size, [(i, ids.tolist()) for i, ids in stream]))
    finally:
        dist.destroy_process_group()


def test_ranks_are_read_from_torch_distributed(transform, corpus_file, tmp_path):
    ctx = torch.multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_rank_main, args=(r, tmp_path / "init", corpus_file, transform, results)) for r in range(2)
    ]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [(rank, r, w) for rank, r, w, _ in got] == [(0, 0, 2), (1, 1, 2)]
    merged = dict(got[0][3] + got[1][3])
    assert len(merged) == len(got[0][3]) + len(got[1][3]) == len(TEXTS)
    whole = dict(TextStream(corpus_file, transform, return_index=True))
    assert merged == {i: ids.tolist() for i, ids in whole.items()}


def test_torch_and_datasets_are_imported_only_when_used(model_path):
    import subprocess
    import sys

    code = "\n".join(
        [
            "import sys, bytepiece, bytepiece.data as data",
            f"transform = data.EncodeTransform({str(model_path)!r}, alpha=0.1, seed=0, output='numpy')",
            "ids, offsets = transform.encode_flat(['some text', 'more'], [0, 1])",
            "data.pad([transform('x', 0)], output='numpy')",
            "data.datasets_transform(transform)",
            "assert not {'torch', 'datasets'} & set(sys.modules), sorted({'torch', 'datasets'} & set(sys.modules))",
            "data.TokenizedDataset",
            "assert 'torch' in sys.modules and 'datasets' not in sys.modules",
        ]
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- argument checks and edge cases ----------------------------------------------


def _generate_texts():
    """A generator function: each call is a fresh pass over TEXTS."""
    yield from TEXTS


def test_stream_texts_callable_returning_a_generator_works_with_workers(transform):
    # A callable gives each worker a fresh iterable of its own: the one-shot refusal is for iterators only.
    stream = TextStream(None, transform, texts=_generate_texts, return_index=True)
    expected = list(stream)
    assert [i for i, _ in expected] == list(range(len(TEXTS)))
    loader = DataLoader(stream, batch_size=None, num_workers=2, multiprocessing_context="fork")
    got = list(loader)
    assert [i for i, _ in got] == [i for i, _ in expected]  # every document once, in the serial order
    assert as_lists(ids for _, ids in got) == serial(transform, 0)


def test_stream_shard_numbers_must_be_integers(transform):
    # A fractional num_shards matches no worker's shard and silently dropped documents.
    for kwargs in (
        {"num_shards": 2.5},
        {"num_shards": True},
        {"num_shards": "2"},
        {"rank": 0.0, "world_size": 2},
        {"rank": 0, "world_size": 2.0},
        {"rank": False, "world_size": 1},
    ):
        name = "num_shards" if "num_shards" in kwargs else next(k for k, v in kwargs.items() if type(v) is not int)
        with pytest.raises(TypeError, match=f"^{name} must be an integer"):
            TextStream(None, transform, texts=TEXTS, **kwargs)
    with pytest.raises(ValueError, match="num_shards"):
        TextStream(None, transform, texts=TEXTS, num_shards=0)
    for bad in (True, 2.0, "4"):  # (True was a block of 1 id, 2.0 one of 2)
        with pytest.raises(TypeError, match="^block_size must be an integer"):
            TextStream(None, transform, texts=TEXTS, block_size=bad)
    # numpy integers are integers.
    stream = TextStream(None, transform, texts=TEXTS, num_shards=np.int64(3), rank=np.int64(0), world_size=np.int64(1))
    assert as_lists(stream) == serial(transform, 0)


def test_negative_dataset_index_is_the_document_counted_from_the_end(transform):
    # ds[-1] must be ds[len(ds) - 1], key included, as for any Python sequence.
    n = len(TEXTS)
    ds = TokenizedDataset(TEXTS, transform, output="list")
    assert ds[-1] == ds[n - 1] == serial(transform, 0)[-1]
    assert ds[np.int64(-2)] == ds[n - 2]
    assert ds[(3, -1)] == ds[(3, n - 1)] == serial(transform, 3)[-1]
    assert ds.__getitems__([-1, 0, -n]) == ds.__getitems__([n - 1, 0, 0])
    assert ds.__getitems__([(3, -2), (3, 1)]) == ds.__getitems__([(3, n - 2), (3, 1)])
    assert ds.__getitems__([(3, -2), (4, -1)]) == [serial(transform, 3)[-2], serial(transform, 4)[-1]]
    flat = TokenizedDataset(TEXTS, transform, return_index=True)
    batch = flat.__getitems__([-1, 5])
    assert batch.indices == [n - 1, 5] and batch[0][1].tolist() == serial(transform, 0)[-1]
    assert flat[-1][0] == n - 1
    for bad in (-n - 1, (0, -n - 1)):
        with pytest.raises(IndexError):
            ds[bad]
        with pytest.raises(IndexError):
            ds.__getitems__([0, bad])
    # A bool is no index: ds[True] read document 1 under the key (epoch, True).
    for bad in (True, (0, False), np.True_):
        with pytest.raises(TypeError, match="a dataset index is an int"):
            ds[bad]
        with pytest.raises(TypeError, match="a dataset index is an int"):
            ds.__getitems__([0, bad])
    with pytest.raises(TypeError, match="sampler must be an integer"):
        EpochSampler(True)  # (was range(1))
    assert list(EpochSampler(np.int64(2))) == [(0, 0), (0, 1)]


def test_epochs_and_max_length_must_be_integers(model):
    # int() turned epoch=2.5 into 2, "1" into 1, max_length=True into 1: refuse them, naming the argument.
    transform = EncodeTransform(model, alpha=ALPHA, seed=7)
    sampler = EpochSampler(4)
    for bad in (2.5, "1", True, np.bool_(True), 1.0, None):
        with pytest.raises(TypeError, match="^epoch must be an integer"):
            EncodeTransform(model, seed=7, epoch=bad)
        with pytest.raises(TypeError, match="^epoch must be an integer"):
            transform.set_epoch(bad)
        with pytest.raises(TypeError, match="^epoch must be an integer"):
            EpochSampler(4, epoch=bad)
        with pytest.raises(TypeError, match="^epoch must be an integer"):
            sampler.set_epoch(bad)
        if bad is not None:  # (None is the default epoch there)
            with pytest.raises(TypeError, match="^epoch must be an integer"):
                transform("text", 0, epoch=bad)
            with pytest.raises(TypeError, match="^epoch must be an integer"):
                transform.encode_flat(["text"], [0], epoch=bad)
    assert transform.epoch == 0 and sampler.epoch == 0
    for bad in (True, 2.5, 5.0, float("inf"), "5"):
        with pytest.raises(TypeError, match="^max_length must be an integer"):
            EncodeTransform(model, seed=7, max_length=bad)
    with pytest.raises(ValueError, match="max_length"):
        EncodeTransform(model, seed=7, max_length=1, add_eos=True)
    # numpy integers are integers.
    transform.set_epoch(np.int64(2))
    sampler.set_epoch(np.int32(2))
    assert type(transform.epoch) is int and transform.epoch == 2 and list(sampler) == [(2, i) for i in range(4)]
    truncated = EncodeTransform(model, alpha=ALPHA, seed=7, max_length=np.int64(3), epoch=np.int64(1))
    assert truncated.max_length == 3 and truncated.epoch == 1 and len(truncated(TEXTS[0], 0)) == 3


def test_file_documents_keep_their_bytes(model, tmp_path):
    # A byte-level tokenizer must see each file exactly as it is: no newline translation.
    raw = b"line one\r\nline two\rline three\n"
    (tmp_path / "a.txt").write_bytes(raw)
    viterbi = EncodeTransform(model, alpha=-1, seed=0)
    (ids,) = TextStream(tmp_path / "a.txt", viterbi, document="file", output="list")
    assert viterbi.tokenizer.decode_bytes(ids) == raw
    assert ids == viterbi.encode_list(raw.decode(), 0)


def test_undecodable_files_are_named_with_the_byte_offset(transform, tmp_path):
    # The decoder's own error gives an offset in its buffer and names no file.
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok line\n" * 5000 + b"bad \xff line\n")
    for document in ("line", "file"):
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: not valid utf-8 at byte offset 40004 "):
            list(TextStream(path, transform, document=document))
    # Another encoding, and bytes the decoder can only refuse at the end of the file.
    (tmp_path / "odd.txt").write_bytes("ab\ncd\n".encode("utf-16") + b"\x00")
    for document in ("line", "file"):
        with pytest.raises(ValueError, match="odd.txt: not valid utf-16 at byte offset 14 "):
            list(TextStream(tmp_path / "odd.txt", transform, encoding="utf-16", document=document))
