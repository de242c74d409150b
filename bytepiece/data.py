"""Subword regularisation in data loaders: reproducible, fork-safe and fast.

Why it is built this way
------------------------
A stochastic segmentation is only useful if each epoch sees a fresh sample of
every document, and only trustworthy if that sample does not depend on how the
work was split up. So every sample here is *keyed*: document ``index`` in epoch
``epoch`` is encoded with a key made of (epoch, index) by a tokenizer seeded with
the base seed, and the result is a pure function of (seed, epoch, index, text,
alpha). Nothing depends on a generator's position, so the number of DataLoader
workers, the start method (fork, spawn, forkserver), ``num_proc``, the shard
order, a restart or a cache cannot change what a document becomes.

Everything is picklable (spawned workers and ``datasets`` processes receive a
copy that gives the same samples). torch and datasets are imported only inside
the functions and classes that need them; ``TokenizedDataset``, ``TextStream``
and ``EpochSampler`` are built on first access.

>>> from bytepiece.data import EncodeTransform
>>> transform = EncodeTransform("model.zip", alpha=0.1, seed=0, add_eos=True)
>>> transform("Hello world", index=7, epoch=3)
[910, 111, 1351, 35, 13881, 2]
"""

from __future__ import annotations

import codecs
import copy
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Sequence as SequenceABC
from typing import Any

import numpy as np

from .encoding import check_alpha
from .keys import exact_integer
from .model import BOS_ID, EOS_ID, PAD_ID, ModelSource
from .tokenizer import Text, Tokenizer

__all__ = [
    "EncodeTransform",
    "FlatBatch",
    "encode_flat",
    "flatten",
    "pad",
    "TokenizedDataset",
    "TextStream",
    "EpochSampler",
    "datasets_map",
    "datasets_transform",
]

OUTPUTS = ("list", "numpy", "torch")
# Documents encoded per call of the core when a stream or a dataset batches internally.
_STREAM_BATCH = 256
# (epoch, index) packs into one int key when both fit: index below 2**40, epoch below 2**24.
_INDEX_BITS = 40
_INDEX_LIMIT = 1 << _INDEX_BITS
_EPOCH_LIMIT = 1 << (64 - _INDEX_BITS)


def _integer(value, name: str) -> int:
    """An integer argument (numpy's too) as an int; never a bool, a float or a string
    (int() would make epoch 2.5 epoch 2, and 2.5 shards match no worker)."""
    try:
        return exact_integer(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__} {value!r:.60}") from None


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, not {output!r}")
    return output


def _convert(ids, output: str):
    """ids (list or int32 array) -> the requested output type."""
    if output == "list":
        return ids if isinstance(ids, list) else ids.tolist()
    arr = np.asarray(ids, dtype=np.int32)
    if output == "numpy":
        return arr
    import torch

    return torch.from_numpy(arr.astype(np.int64))


class FlatBatch(SequenceABC):
    """A batch of documents' ids held as one flat array: what a dataset's batched fetch
    returns. It is a sequence of per-document items (built on access), and
    :func:`flatten` and :func:`pad` read its arrays directly, so a collate function
    never pulls it apart only to join it again.

    ``ids`` (int32) and ``offsets`` (int64, length n + 1): document ``i`` is
    ``ids[offsets[i]:offsets[i + 1]]``; ``indices`` are the documents' indices.
    """

    __slots__ = ("ids", "offsets", "indices", "output", "return_index")

    def __init__(
        self, ids: np.ndarray, offsets: np.ndarray, indices: Sequence, output: str = "numpy", return_index: bool = False
    ):
        self.ids = ids
        self.offsets = offsets
        self.indices = indices
        self.output = output
        self.return_index = return_index

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("FlatBatch index out of range")
        ids = _convert(self.ids[self.offsets[i] : self.offsets[i + 1]], self.output)
        return (self.indices[i], ids) if self.return_index else ids

    def __repr__(self) -> str:
        return f"FlatBatch({len(self)} documents, {len(self.ids)} ids)"


def flatten(id_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, offsets): the lists concatenated as int32, and int64 offsets of length n + 1,
    so that list ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.

    >>> flatten([[5, 6], [], [7]])
    (array([5, 6, 7], dtype=int32), array([0, 2, 2, 3]))
    """
    if isinstance(id_lists, FlatBatch) and not id_lists.return_index:
        return id_lists.ids, id_lists.offsets
    lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    offsets = np.zeros(len(id_lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if id_lists and all(isinstance(ids, np.ndarray) for ids in id_lists):
        return np.concatenate(id_lists).astype(np.int32, copy=False), offsets
    if id_lists and hasattr(id_lists[0], "numpy"):  # torch tensors
        return np.concatenate([ids.numpy() for ids in id_lists]).astype(np.int32, copy=False), offsets  # type: ignore[attr-defined]
    ids = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int32, count=int(offsets[-1]))
    return ids, offsets


def pad(samples: Sequence, pad_id: int = PAD_ID, output: str = "torch"):
    """Right-pad variable-length samples into a (batch, longest) array; returns
    ``{"input_ids": ..., "lengths": ...}``. Use it as (part of) a collate function.

    >>> pad([[5, 6], [7]], output="numpy")["input_ids"]
    array([[5, 6],
           [7, 0]], dtype=int32)
    """
    _check_output(output)
    ids, offsets = flatten(samples)
    lengths = np.diff(offsets)
    width = int(lengths.max(initial=0))
    out = np.full((len(lengths), width), pad_id, dtype=np.int32)
    out[np.arange(width) < lengths[:, None]] = ids  # row-major: each row's ids in order
    if output == "torch":
        import torch

        return {"input_ids": torch.from_numpy(out.astype(np.int64)), "lengths": torch.from_numpy(lengths)}
    if output == "list":
        return {"input_ids": out.tolist(), "lengths": lengths.tolist()}
    return {"input_ids": out, "lengths": lengths}


def encode_flat(
    tokenizer: Tokenizer,
    texts: Sequence[Text],
    *,
    alpha: float = -1,
    keys: Sequence | None = None,
    add_bos: bool = False,
    add_eos: bool = False,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Encode ``texts`` on several threads (GIL released in the core) and return
    (ids, offsets) as numpy: text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.

    >>> ids, offsets = encode_flat(tok, ["a text", "another"], alpha=0.1, keys=[0, 1])
    >>> ids, offsets
    (array([  100,    35,  4686,   119,  1256, 13272], dtype=int32), array([0, 4, 6]))

    With ``keys`` each text's sample depends only on (seed, key, text, alpha), not
    on ``num_threads`` nor on its place in the batch.
    """
    ids, offsets = tokenizer.encode_batch(
        texts, add_bos=add_bos, add_eos=add_eos, alpha=alpha, keys=keys, num_threads=num_threads, as_numpy=True
    )
    return ids.astype(np.int32, copy=False), offsets


def _truncate_flat(ids: np.ndarray, offsets: np.ndarray, limit: int, eos: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each row of (ids, offsets) cut to ``limit`` ids, the last one <eos> again when ``eos``."""
    lengths = np.diff(offsets)
    long = lengths > limit
    if not long.any():
        return ids, offsets
    kept = np.minimum(lengths, limit)
    new_offsets = np.zeros_like(offsets)
    np.cumsum(kept, out=new_offsets[1:])
    # Position j of new row i comes from offsets[i] + j.
    take = np.repeat(offsets[:-1] - new_offsets[:-1], kept) + np.arange(new_offsets[-1])
    out = ids[take]
    if eos:
        out[new_offsets[1:][long] - 1] = EOS_ID
    return out, new_offsets


def _in_worker() -> bool:
    """True inside a torch DataLoader worker (where the workers already use the cores)."""
    import sys

    if "torch" not in sys.modules:
        return False
    from torch.utils.data import get_worker_info

    return get_worker_info() is not None


class EncodeTransform:
    """(text, index, epoch) -> ids, keyed so that the result depends only on
    (seed, epoch, index, text) — for the given model and ``alpha``.

    >>> transform = EncodeTransform("model.zip", alpha=0.1, seed=0, add_eos=True)
    >>> transform("Hello world", 7, epoch=3)
    [910, 111, 1351, 35, 13881, 2]

    ``tokenizer`` is a :class:`~bytepiece.Tokenizer` or anything ``Tokenizer``
    loads (a model path, a dict); its own seed is ignored: samples come from the
    base ``seed``. The sample equals
    ``Tokenizer(model, seed=seed).encode(text, alpha=alpha, key=transform.key(index, epoch))``.
    ``index`` is an int row number or any other key (a document id string, a tuple).
    ``alpha < 0`` gives the deterministic Viterbi segmentation; ``alpha=None`` the
    model's default alpha.

    ``max_length`` truncates (keeping ``<bos>``/``<eos>`` when they are asked for);
    ``output`` is ``"list"``, ``"numpy"`` (int32) or ``"torch"`` (int64).
    ``epoch`` is the default epoch for calls that give none; :meth:`set_epoch`
    changes it. The transform pickles (for spawned workers and ``datasets``
    processes); the copy gives identical samples.
    """

    def __init__(
        self,
        tokenizer: Tokenizer | ModelSource,
        alpha: float | None = 0.1,
        seed: Any = 0,
        *,
        add_bos: bool = False,
        add_eos: bool = False,
        max_length: int | None = None,
        output: str = "list",
        epoch: int = 0,
        normalize: bool | None = None,
    ):
        if seed is None:
            raise ValueError("EncodeTransform needs a fixed base seed (an int, str, bytes or tuple)")
        vocab: ModelSource
        if isinstance(tokenizer, Tokenizer):
            vocab = tokenizer.vocabulary
            normalize = tokenizer.normalize if normalize is None else normalize
        else:
            vocab = tokenizer
        # A tokenizer of our own, seeded with the base seed, shares nothing with the caller's.
        self.tokenizer = Tokenizer(vocab, seed=seed, normalize=normalize)
        self.alpha = check_alpha(self.tokenizer.alpha if alpha is None else alpha)
        self.seed = seed
        self.add_bos = bool(add_bos)
        self.add_eos = bool(add_eos)
        specials = self.add_bos + self.add_eos
        if max_length is not None:
            max_length = _integer(max_length, "max_length")
            if max_length <= specials:
                raise ValueError(f"max_length must be an int > {specials} (the special ids), not {max_length!r}")
        self.max_length = max_length
        self.output = _check_output(output)
        self.epoch = _integer(epoch, "epoch")

    def set_epoch(self, epoch: int) -> None:
        """The epoch used by calls that do not pass one."""
        self.epoch = _integer(epoch, "epoch")

    def key(self, index, epoch: int | None = None):
        """The tokenizer key of document ``index`` in ``epoch``.

        An int index below 2**40 in an epoch below 2**24 — every realistic case —
        packs into the int key ``epoch * 2**40 + index``, which the core takes as it
        is (no hashing: the key costs nothing next to the sampling). Anything else
        (a document id string, a huge index) is the hashed tuple key ``(epoch, index)``.
        Either way distinct (epoch, index) pairs get distinct keys.
        """
        epoch = self.epoch if epoch is None else _integer(epoch, "epoch")
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            index = int(index)
            if 0 <= index < _INDEX_LIMIT and 0 <= epoch < _EPOCH_LIMIT:
                return (epoch << _INDEX_BITS) | index
        return (epoch, index)

    def _truncate(self, ids: list[int]) -> list[int]:
        limit = self.max_length
        if limit is None or len(ids) <= limit:
            return ids
        if self.add_eos:
            return ids[: limit - 1] + [EOS_ID]
        return ids[:limit]

    def encode_list(self, text: Text, index, epoch: int | None = None) -> list[int]:
        """The ids of one document as a list (whatever ``output`` says)."""
        ids = self.tokenizer.encode(
            text, add_bos=self.add_bos, add_eos=self.add_eos, alpha=self.alpha, key=self.key(index, epoch)
        )
        return self._truncate(ids)

    def __call__(self, text: Text, index, epoch: int | None = None):
        return _convert(self.encode_list(text, index, epoch), self.output)

    def samples(self, text: Text, index, num_samples: int, epoch: int | None = None) -> list:
        """``num_samples`` independent segmentations of one document, from one forward pass
        (``Tokenizer.sample`` with the document's key): several views of it in one
        epoch, e.g. for consistency training. Needs ``alpha >= 0``."""
        if self.alpha < 0:
            raise ValueError("samples() draws segmentations: it needs alpha >= 0")
        ids = self.tokenizer.sample(text, num_samples, self.alpha, key=self.key(index, epoch))
        head, tail = [BOS_ID] * self.add_bos, [EOS_ID] * self.add_eos
        return [_convert(self._truncate(head + one + tail), self.output) for one in ids]

    def keys(self, indices: Iterable, epoch: int | None = None) -> list:
        """``[key(i, epoch) for i in indices]``, quickly for plain int indices."""
        epoch = self.epoch if epoch is None else _integer(epoch, "epoch")
        indices = indices if isinstance(indices, list) else list(indices)
        if (
            0 <= epoch < _EPOCH_LIMIT
            and all(type(i) is int for i in indices)
            and (not indices or (min(indices) >= 0 and max(indices) < _INDEX_LIMIT))
        ):
            base = epoch << _INDEX_BITS  # the packed keys of key(), without a call each
            return [base | i for i in indices]
        return [self.key(i, epoch) for i in indices]

    def encode_lists(
        self, texts: Sequence[Text], indices: Iterable, epoch: int | None = None, num_threads: int | None = None
    ) -> list[list[int]]:
        """``[encode_list(t, i, epoch) for t, i in zip(texts, indices)]`` on several threads."""
        keys = self.keys(indices, epoch)
        lists = self.tokenizer.encode_batch(
            texts, add_bos=self.add_bos, add_eos=self.add_eos, alpha=self.alpha, keys=keys, num_threads=num_threads
        )
        if self.max_length is not None:
            lists = [self._truncate(ids) for ids in lists]
        return lists

    def encode_flat(
        self, texts: Sequence[Text], indices: Iterable, epoch: int | None = None, num_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The documents' ids as (ids, offsets) numpy arrays (see :func:`flatten`),
        encoded on several threads without Python lists; identical to calling the
        transform one by one.

        >>> transform = EncodeTransform(model, alpha=0.1, seed=0)
        >>> ids, offsets = transform.encode_flat(texts, range(len(texts)), epoch=2)
        >>> list(ids[offsets[5]:offsets[6]]) == transform(texts[5], 5, epoch=2)
        True
        """
        ids, offsets = encode_flat(
            self.tokenizer,
            texts,
            alpha=self.alpha,
            keys=self.keys(indices, epoch),
            add_bos=self.add_bos,
            add_eos=self.add_eos,
            num_threads=num_threads,
        )
        if self.max_length is not None:
            ids, offsets = _truncate_flat(ids, offsets, self.max_length, self.add_eos)
        return ids, offsets

    def __repr__(self) -> str:
        return (
            f"EncodeTransform(vocab_size={self.tokenizer.vocab_size}, alpha={self.alpha}, seed={self.seed!r}, "
            f"epoch={self.epoch}, output={self.output!r})"
        )


# ---------------------------------------------------------------------------
# Hugging Face datasets


class _DatasetsMapFunction:
    """The function ``datasets_map`` hands to ``Dataset.map``. A class (not a closure)
    so that its fingerprint — which ``datasets`` computes by pickling it — holds the
    model, the seed, alpha and the epoch: another epoch is another cache entry."""

    def __init__(
        self, transform: EncodeTransform, epoch: int, text_column: str, index_column: str | None, output_column: str
    ):
        # A shallow copy whose default epoch is this one: the fingerprint must not change
        # with the caller's transform.epoch, only with what decides the samples.
        self.transform = copy.copy(transform)
        self.transform.epoch = epoch
        self.epoch = epoch
        self.text_column = text_column
        self.index_column = index_column
        self.output_column = output_column

    def __call__(self, batch, indices=None):
        keys = batch[self.index_column] if self.index_column is not None else indices
        lists = self.transform.encode_lists(batch[self.text_column], keys, self.epoch, num_threads=1)
        return {self.output_column: lists}


def datasets_map(
    dataset,
    transform: EncodeTransform,
    *,
    epoch: int | None = None,
    text_column: str = "text",
    index_column: str | None = None,
    output_column: str = "input_ids",
    num_proc: int | None = None,
    batch_size: int = 1000,
    **map_kwargs,
):
    """Tokenize a Hugging Face ``datasets.Dataset`` for one epoch with ``Dataset.map``.

    >>> transform = EncodeTransform(model, alpha=0.1, seed=0)
    >>> train = datasets_map(ds, transform, epoch=3, num_proc=2)
    >>> train[7]["input_ids"] == transform(ds[7]["text"], 7, epoch=3)
    True

    Each row is keyed by (epoch, its row index) — or by the value in
    ``index_column`` (a stable document id, which survives shuffle, select and
    filter) — so the result is the same for any ``num_proc`` and batch size.
    ``datasets`` caches ``map`` results under a fingerprint of the function; here
    the fingerprint includes the model, seed, alpha and epoch, so a cached result
    is reused only for the very same epoch (it is then exactly right, the samples
    being pure functions) and every new epoch is sampled afresh. Extra keyword
    arguments go to ``Dataset.map``.
    """
    epoch = transform.epoch if epoch is None else _integer(epoch, "epoch")
    function = _DatasetsMapFunction(transform, epoch, text_column, index_column, output_column)
    return dataset.map(
        function,
        batched=True,
        batch_size=batch_size,
        with_indices=index_column is None,
        num_proc=num_proc,
        **map_kwargs,
    )


class _DatasetsTransform:
    def __init__(
        self, transform: EncodeTransform, text_column: str, index_column: str, output_column: str, keep_columns: bool
    ):
        self.transform = transform
        self.text_column = text_column
        self.index_column = index_column
        self.output_column = output_column
        self.keep_columns = keep_columns

    def __call__(self, batch):
        if self.index_column not in batch:
            raise KeyError(
                f"the dataset has no {self.index_column!r} column: add one before set_transform, "
                f"e.g. ds = ds.add_column({self.index_column!r}, range(len(ds)))"
            )
        lists = self.transform.encode_lists(
            batch[self.text_column], batch[self.index_column], num_threads=1 if _in_worker() else None
        )
        out = dict(batch) if self.keep_columns else {self.index_column: batch[self.index_column]}
        out[self.output_column] = [_convert(ids, self.transform.output) for ids in lists]
        return out


def datasets_transform(
    transform: EncodeTransform,
    *,
    text_column: str = "text",
    index_column: str = "index",
    output_column: str = "input_ids",
    keep_columns: bool = False,
) -> Callable:
    """A function for ``Dataset.set_transform`` that samples on the fly, nothing cached.

    >>> transform = EncodeTransform(model, alpha=0.1, seed=0)
    >>> ds = ds.add_column("index", range(len(ds)))
    >>> ds.set_transform(datasets_transform(transform))
    >>> transform.set_epoch(1)   # before each epoch's DataLoader iteration
    >>> ds[7]["input_ids"] == transform(texts[7], 7)
    True

    ``set_transform`` passes rows without their indices, so the dataset needs a
    column of stable document ids (``index_column``). The epoch is read from
    ``transform.epoch`` when a row is fetched: call ``transform.set_epoch`` in the
    main process before iterating (DataLoader workers receive a fresh copy each
    epoch unless ``persistent_workers=True`` — see docs/data-loaders.md).
    """
    return _DatasetsTransform(transform, text_column, index_column, output_column, keep_columns)


# ---------------------------------------------------------------------------
# PyTorch (classes built on first access, so that torch is imported only then)


def _dist_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        r, w = 0, 1
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                r, w = dist.get_rank(), dist.get_world_size()
        except ImportError:
            pass
        rank = r if rank is None else rank
        world_size = w if world_size is None else world_size
    rank, world_size = _integer(rank, "rank"), _integer(world_size, "world_size")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0 .. world_size - 1, not {rank} of {world_size}")
    return rank, world_size


def _is_path(source) -> bool:
    return isinstance(source, (str, os.PathLike))


def _decoding_error(path, encoding: str, offset: int, reason: str) -> ValueError:
    """The error for a file that does not decode: it names the file and the byte offset in it."""
    return ValueError(
        f"{path}: not valid {encoding} at byte offset {offset} ({reason}); "
        "pass encoding= if the files are in another encoding"
    )


def _first_undecodable(path, encoding: str) -> tuple[int, str] | None:
    """(byte offset, reason) of the first bytes of a file that do not decode, or None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    start = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            pending = decoder.getstate()[0]  # (bytes held back from the last chunk)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                return start - len(pending) + error.start, error.reason
            if not chunk:
                return None
            start += len(chunk)


def _split_key(key, default_epoch: int):
    """A map-style index is an int or an (epoch, index) pair from EpochSampler."""
    if isinstance(key, tuple):
        epoch, index = key
        return _integer(epoch, "epoch"), index
    return default_epoch, key


def _build_torch_classes() -> None:
    from torch.utils.data import Dataset, IterableDataset, Sampler, get_worker_info

    class TokenizedDataset(Dataset):
        """Map-style: ``dataset[i]`` is document ``texts[i]`` sampled for the current epoch.

        >>> ds = TokenizedDataset(texts, EncodeTransform(model, alpha=0.1, seed=0))
        >>> loader = DataLoader(ds, batch_size=32, num_workers=2, collate_fn=pad)
        >>> for epoch in range(3):
        ...     ds.set_epoch(epoch)
        ...     for batch in loader:
        ...         pass  # (train on batch["input_ids"])
        >>> len(ds), batch["input_ids"].shape
        (200, torch.Size([8, ...]))

        ``texts`` is any sequence of str or bytes. An index may also be an
        ``(epoch, i)`` pair, as :class:`EpochSampler` yields, which carries the
        epoch to persistent workers. With ``return_index`` an item is
        ``(i, ids)``. Batches are encoded together on the core's fast path
        (``__getitems__``), each item exactly as if fetched alone; for numpy and
        torch output the batch is a :class:`FlatBatch`, which :func:`flatten` and
        :func:`pad` read as it is.
        """

        def __init__(
            self,
            texts: Sequence[Text],
            transform: EncodeTransform,
            *,
            return_index: bool = False,
            output: str = "numpy",
        ):
            self.texts = texts
            self.transform = transform
            self.return_index = return_index
            self.output = _check_output(output)

        @property
        def epoch(self) -> int:
            return self.transform.epoch

        def set_epoch(self, epoch: int) -> None:
            self.transform.set_epoch(epoch)

        def __len__(self) -> int:
            return len(self.texts)

        def _index(self, index):
            """A negative int index counted from the end, as a sequence's: the same document, same key."""
            if isinstance(index, (int, np.integer)) and not isinstance(index, bool) and index < 0:
                if index < -len(self.texts):
                    raise IndexError(f"index {index} out of range for {len(self.texts)} documents")
                return int(index) + len(self.texts)
            return index

        def _item(self, index, ids):
            ids = _convert(ids, self.output)
            return (index, ids) if self.return_index else ids

        def __getitem__(self, key):
            epoch, index = _split_key(key, self.transform.epoch)
            index = self._index(index)
            return self._item(index, self.transform.encode_list(self.texts[index], index, epoch))

        def __getitems__(self, keys: Sequence) -> Sequence:
            keys = keys if isinstance(keys, list) else list(keys)
            epoch = None
            if all(type(k) is int for k in keys):  # plain indices: the common case
                indices = keys if not keys or min(keys) >= 0 else [self._index(i) for i in keys]
            else:
                pairs = [_split_key(k, self.transform.epoch) for k in keys]
                epochs = {e for e, _ in pairs}
                if len(epochs) > 1:
                    return [self[k] for k in keys]
                epoch = epochs.pop() if epochs else None
                indices = [self._index(i) for _, i in pairs]
            texts = [self.texts[i] for i in indices]
            threads = 1 if _in_worker() else None
            if self.output == "list":
                lists = self.transform.encode_lists(texts, indices, epoch, num_threads=threads)
                return list(zip(indices, lists)) if self.return_index else lists
            ids, offsets = self.transform.encode_flat(texts, indices, epoch, num_threads=threads)
            return FlatBatch(ids, offsets, indices, self.output, self.return_index)

    class EpochSampler(Sampler):
        """Wraps a sampler (or a length) and yields ``(epoch, index)`` pairs, so the
        epoch travels with each index — correct even with ``persistent_workers=True``,
        where a ``set_epoch`` on the dataset would never reach the workers.

        >>> from torch.utils.data import RandomSampler
        >>> ds = TokenizedDataset(texts, EncodeTransform(model, alpha=0.1, seed=0))
        >>> sampler = EpochSampler(RandomSampler(ds))
        >>> loader = DataLoader(ds, sampler=sampler, batch_size=32, num_workers=2,
        ...                     persistent_workers=True, collate_fn=pad)
        >>> for epoch in range(2):
        ...     sampler.set_epoch(epoch)
        ...     for batch in loader:
        ...         pass  # (train on batch["input_ids"])

        ``set_epoch`` is passed on to the wrapped sampler when it has one
        (``DistributedSampler``).
        """

        def __init__(self, sampler, epoch: int = 0):
            self.sampler = range(sampler) if isinstance(sampler, int) else sampler
            self.epoch = _integer(epoch, "epoch")

        def set_epoch(self, epoch: int) -> None:
            self.epoch = _integer(epoch, "epoch")
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(self.epoch)

        def __len__(self) -> int:
            return len(self.sampler)

        def __iter__(self):
            epoch = self.epoch
            return ((epoch, i) for i in self.sampler)

    class TextStream(IterableDataset):
        """Streams documents from text files (or an iterable of texts), sampled for
        the current epoch, sharded across DataLoader workers and distributed ranks.

        >>> transform = EncodeTransform(model, alpha=0.1, seed=0)
        >>> stream = TextStream(["corpus.txt"], transform)
        >>> stream = TextStream(None, transform, texts=texts)  # (or texts in memory)
        >>> loader = DataLoader(stream, batch_size=None, num_workers=2)
        >>> stream.set_epoch(1)
        >>> sum(1 for ids in loader), sum(1 for text in texts if text)  # (empty ones skipped)
        (100, 100)

        ``files`` is a path or a list of paths; or else ``texts=`` is a sequence
        of texts, or a callable returning a fresh iterable of them (for sources
        read once per pass). A one-shot iterator (``sys.stdin``) works without
        workers. With ``document="line"`` each line of the files is a document (line
        endings removed); with ``"file"`` each file is one, its text as it is (line
        endings kept). A file that does not decode raises a ValueError naming it and
        the byte offset. Empty documents are skipped; the others are numbered in
        reading order — that number is the key index — and document ``g`` goes to
        shard ``g % num_shards``; shard ``s`` belongs to rank ``s % world_size``
        and, within the rank, to worker ``(s // world_size) % num_workers``.
        ``rank``/``world_size`` default to ``torch.distributed``'s when it is
        initialised (create the stream after ``init_process_group``), else 0 and 1.

        Each yielded item is one document's ids — or ``(index, ids)`` with
        ``return_index`` — or, with ``block_size``, a block of exactly that many
        ids packed from consecutive documents of one shard with ``<eos>`` after
        each document (the last partial block of each shard is dropped unless
        ``drop_last=False``). With ``batch_size=None`` a DataLoader's workers
        hand out documents in exactly the serial order (it takes one item from
        each worker in turn). Samples never depend on the number of workers; with
        packing, which documents share a block depends on ``num_shards``
        (default ``world_size * num_workers``), so fix it to make blocks
        independent of the worker count too.
        """

        def __init__(
            self,
            files,
            transform: EncodeTransform,
            *,
            texts=None,
            document: str = "line",
            block_size: int | None = None,
            drop_last: bool = True,
            num_shards: int | None = None,
            rank: int | None = None,
            world_size: int | None = None,
            return_index: bool = False,
            output: str = "numpy",
            encoding: str = "utf-8",
        ):
            if document not in ("line", "file"):
                raise ValueError(f"document must be 'line' or 'file', not {document!r}")
            if (files is None) == (texts is None):
                raise ValueError("give either files (a path or a list of paths) or texts=, not both")
            if files is not None:
                files = [files] if _is_path(files) else list(files)
                if not all(_is_path(f) for f in files):
                    raise TypeError("files must be paths; pass an iterable of texts as texts=")
                missing = [f for f in files if not os.path.isfile(f)]
                if missing:
                    raise FileNotFoundError(
                        f"no such file: {str(missing[0])[:80]!r} (to stream texts rather than files, pass texts=)"
                    )
            self.files = files
            self.texts = texts
            self.transform = transform
            self.document = document
            if block_size is not None and _integer(block_size, "block_size") < 1:
                raise ValueError(f"block_size must be a positive int, not {block_size!r}")
            if block_size is not None and return_index:
                raise ValueError("return_index has no meaning for packed blocks")
            self.block_size = None if block_size is None else int(block_size)
            self.drop_last = drop_last
            if num_shards is not None:
                num_shards = _integer(num_shards, "num_shards")
                if num_shards < 1:
                    raise ValueError(f"num_shards must be >= 1, not {num_shards}")
            self.num_shards = num_shards
            self.rank, self.world_size = _dist_rank_world(rank, world_size)
            self.return_index = return_index
            self.output = _check_output(output)
            self.encoding = encoding

        @property
        def epoch(self) -> int:
            return self.transform.epoch

        def set_epoch(self, epoch: int) -> None:
            self.transform.set_epoch(epoch)

        # -- reading ---------------------------------------------------------
        def _texts(self, one_shot_ok: bool) -> Iterator[Text]:
            if self.files is None:
                if callable(self.texts):  # each worker calls it: a fresh iterable of its own
                    yield from self.texts()
                    return
                if iter(self.texts) is self.texts and not one_shot_ok:
                    raise ValueError(
                        "a one-shot iterator cannot be shared by DataLoader workers; pass a "
                        "list, file paths, or a callable returning a fresh iterable"
                    )
                yield from self.texts
                return
            for path in self.files:
                if self.document == "file":  # read as bytes: the content as it is, line endings too
                    with open(path, "rb") as f:
                        data = f.read()
                    try:
                        text = data.decode(self.encoding)
                    except UnicodeDecodeError as error:
                        raise _decoding_error(path, self.encoding, error.start, error.reason) from None
                    yield text
                    continue
                try:
                    with open(path, encoding=self.encoding, newline="") as f:
                        for line in f:
                            yield line.rstrip("\r\n")
                except UnicodeDecodeError as error:
                    # Its position is in the reader's buffer: find the bytes in the file.
                    start, reason = _first_undecodable(path, self.encoding) or (error.start, error.reason)
                    raise _decoding_error(path, self.encoding, start, reason) from None

        def _my_documents(self) -> Iterator[tuple[int, int, Text]]:
            """(shard, index, text) of the documents of this rank and worker."""
            info = get_worker_info()
            worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
            rank, world = self.rank, self.world_size
            shards = self.num_shards or world * workers
            if shards < world:
                raise ValueError(
                    f"num_shards={shards} leaves ranks without documents: with world_size="
                    f"{world} it must be at least {world}"
                )
            texts = (t for t in self._texts(one_shot_ok=workers == 1) if t)
            for index, text in enumerate(texts):
                shard = index % shards
                if shard % world == rank and (shard // world) % workers == worker:
                    yield shard, index, text

        def _batches(self) -> Iterator[tuple[list[int], list[int], list[list[int]]]]:
            """(shards, indices, id lists) of this worker's documents, a core batch at a time."""
            transform = self.transform
            docs = self._my_documents()
            while True:
                chunk = list(itertools.islice(docs, _STREAM_BATCH))
                if not chunk:
                    return
                lists = transform.encode_lists([t for _, _, t in chunk], [i for _, i, _ in chunk], num_threads=1)
                yield [s for s, _, _ in chunk], [i for _, i, _ in chunk], lists

        def __iter__(self):
            if self.block_size is None:
                for _, indices, lists in self._batches():
                    for index, ids in zip(indices, lists):
                        ids = _convert(ids, self.output)
                        yield (index, ids) if self.return_index else ids
                return
            yield from self._packed()

        def _packed(self):
            size = self.block_size
            assert size is not None  # (only __iter__ with a block size calls this)
            eos = [] if self.transform.add_eos else [EOS_ID]
            buffers: dict = {}
            for shards, _, lists in self._batches():
                for shard, ids in zip(shards, lists):
                    buf = buffers.setdefault(shard, [])
                    buf += ids
                    buf += eos
                    while len(buf) >= size:
                        yield _convert(buf[:size], self.output)
                        del buf[:size]
            if not self.drop_last:
                for shard in sorted(buffers):
                    if buffers[shard]:
                        yield _convert(buffers[shard], self.output)

    for cls in (TokenizedDataset, EpochSampler, TextStream):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        globals()[cls.__name__] = cls


_TORCH_NAMES = ("TokenizedDataset", "TextStream", "EpochSampler")


def __getattr__(name):
    if name in _TORCH_NAMES:
        _build_torch_classes()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
