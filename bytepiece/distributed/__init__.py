"""Training and encoding on a Dask cluster, and count files that merge later.

Nothing here imports Dask until a cluster is asked for: ``pip install
"dask[distributed]"`` (or installing bytepiece with its ``dask`` extra) adds it.
See docs/distributed.md for how to run it on several machines.

>>> from bytepiece.distributed import DaskTrainer
>>> t = DaskTrainer(max_vocab_size=8000, client=client, verbose=False)
>>> t.train_files(["corpus.txt"])
>>> t.save("my.model")

(``address="tcp://scheduler:8786"`` instead of ``client`` connects to a running
cluster, ``local_workers=4`` starts one on this machine; paths may be URLs such as
``s3://bucket/corpus/``.)

Where things are:

- ``engine``: :class:`DaskEngine`, the trainer's counting jobs on a cluster (a merge
  tree on the workers; the model is byte-identical to a local run);
- ``blocks``: files as byte ranges the workers read, cut where the local reader cuts;
- ``cluster``: connecting to a cluster, checking the engine options;
- ``counts``: :class:`Counts`, one stage's merged tables, saved, loaded and merged;
- ``training``: :class:`DaskTrainer`, training in steps through count files, and the
  helpers behind ``Trainer(engine="dask")``;
- ``shards``: :func:`encode_files`, token shards written by the workers;
- ``storage``: local paths and URLs (fsspec) alike.
"""

from .blocks import DEFAULT_BLOCKSIZE, BlockEncodingError, list_blocks, list_files, read_block
from .cluster import connect
from .counts import UNTAGGED, Counts, load_counts, merge_counts, model_digest
from .engine import DEFAULT_SPLIT_EVERY, IN_FLIGHT_PER_THREAD, DaskEngine
from .shards import InputChangedError, ShardError, encode_files, iter_encoded, load_encoded
from .training import (
    DaskTrainer,
    count_ngrams,
    count_pieces,
    train_files_on_dask,
    train_from_counts,
    train_texts_on_dask,
)

__all__ = [
    "DaskTrainer",
    "DaskEngine",
    "Counts",
    "count_ngrams",
    "count_pieces",
    "merge_counts",
    "load_counts",
    "train_from_counts",
    "train_files_on_dask",
    "train_texts_on_dask",
    "list_blocks",
    "list_files",
    "read_block",
    "encode_files",
    "load_encoded",
    "iter_encoded",
    "ShardError",
    "InputChangedError",
    "connect",
    "model_digest",
    "UNTAGGED",
    "BlockEncodingError",
    "DEFAULT_BLOCKSIZE",
    "DEFAULT_SPLIT_EVERY",
    "IN_FLIGHT_PER_THREAD",
]
