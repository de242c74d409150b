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
and ``EpochSampler`` are built on first access (in :mod:`bytepiece.torch_data`).

>>> from bytepiece.data import EncodeTransform
>>> transform = EncodeTransform("model.zip", alpha=0.1, seed=0, add_eos=True)
>>> transform("Hello world", index=7, epoch=3)
[910, 111, 1351, 35, 13881, 2]
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Sequence
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


_TORCH_NAMES = ("TokenizedDataset", "TextStream", "EpochSampler")


def __getattr__(name):
    if name in _TORCH_NAMES:
        from .torch_data import build_classes

        for cls in build_classes():
            cls.__module__ = __name__
            cls.__qualname__ = cls.__name__
            globals()[cls.__name__] = cls
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
