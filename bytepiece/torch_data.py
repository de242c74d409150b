"""The PyTorch datasets of :mod:`bytepiece.data`: ``TokenizedDataset`` (map-style),
``TextStream`` (iterable, sharded across workers and ranks) and ``EpochSampler``.

Why it is built this way: torch takes a second and hundreds of MB to import, and most
users of ``bytepiece.data`` (``EncodeTransform``, ``pad``, the ``datasets`` helpers) never
need it. So the classes are made by :func:`build_classes` on the first access of one of
their names in ``bytepiece.data``, which then holds them as its own (their module is
``bytepiece.data``, so pickles name them there, and a spawned worker that unpickles one
builds them again). Everything they compute comes from the ``EncodeTransform`` they hold.
"""

from __future__ import annotations

import codecs
import itertools
import os
from collections.abc import Iterator, Sequence

import numpy as np

from .data import _STREAM_BATCH, EncodeTransform, FlatBatch, _check_output, _convert, _in_worker, _integer
from .model import EOS_ID
from .tokenizer import Text


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


def build_classes() -> tuple[type, type, type]:
    """(TokenizedDataset, EpochSampler, TextStream), made now (torch is imported here);
    bytepiece.data names them as its own."""
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
            """A negative int index counted from the end, as a sequence's: the same document, same
            key. A bool is no index (True would read document 1 under the key True)."""
            if isinstance(index, (bool, np.bool_)):
                raise TypeError(f"a dataset index is an int or an (epoch, int) pair, not {index!r}")
            if isinstance(index, (int, np.integer)) and index < 0:
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
            # (a number of documents, or a sampler; True is neither)
            self.sampler = range(_integer(sampler, "sampler")) if isinstance(sampler, (int, np.integer)) else sampler
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

    return TokenizedDataset, EpochSampler, TextStream
