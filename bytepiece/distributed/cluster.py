"""Finding a Dask cluster: an existing client, a scheduler's address or file, a local
cluster started for the run, or the session's default client.

Dask is imported only here and only when a cluster is asked for, so ``import
bytepiece.distributed`` works without it (``pip install "dask[distributed]"``, the ``dask`` extra, adds it).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..training import TrainerError

#: Where to run: at most one of these may be given.
PLACES = ("client", "address", "scheduler_file", "local_workers")
#: Every engine option a training call accepts.
DASK_OPTIONS = PLACES + ("blocksize", "split_every", "storage_options")


# (as convert._sp_pb: an optional dependency imported on first use, with the pip line
# in the error; alike by shape, each with its own message)
def import_dask_distributed():
    try:
        import distributed
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Dask is not installed: pip install 'dask[distributed]' (the dask extra of bytepiece)"
        ) from error
    return distributed


def connect(
    client=None, address: str | None = None, scheduler_file: str | None = None, local_workers: int | None = None
):
    """(client, close) for one of: an existing ``client``, a scheduler ``address``
    (``tcp://host:8786``), a ``scheduler_file`` written by ``dask scheduler
    --scheduler-file``, or ``local_workers`` processes on this machine. ``close()``
    shuts down only what this call opened."""
    given = [x is not None for x in (client, address, scheduler_file, local_workers)]
    if sum(given) > 1:
        raise ValueError("give one of client, address, scheduler_file, local_workers")
    if client is not None:
        return client, lambda: None
    distributed = import_dask_distributed()
    if address is not None:
        c = distributed.Client(address)
        return c, c.close
    if scheduler_file is not None:
        c = distributed.Client(scheduler_file=os.fspath(scheduler_file))
        return c, c.close
    if local_workers is not None:
        # No dashboard, and the scheduler's HTTP server on a free port: with
        # dashboard_address=None it still binds 8787 and, when another cluster on the
        # machine holds that port, warns and moves.
        cluster = distributed.LocalCluster(
            n_workers=int(local_workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
        )
        c = distributed.Client(cluster)

        def close():
            c.close()
            cluster.close()

        return c, close
    raise ValueError("no cluster: pass client=, address=, scheduler_file= or local_workers=")


def check_options(options: dict[str, Any]) -> None:
    """Refuse unknown engine options and block sizes that are not positive integers."""
    unknown = set(options) - set(DASK_OPTIONS)
    if unknown:
        raise TypeError(f"unknown options: {sorted(unknown)}; the Dask options are {list(DASK_OPTIONS)}")
    for name in ("blocksize", "split_every"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise TrainerError(f"{name} must be a positive integer, not {value!r}")


def names_no_place(options: dict[str, Any]) -> bool:
    return all(options.get(k) is None for k in PLACES)


def with_default_client(options: dict[str, Any]) -> dict[str, Any]:
    """options, with the session's default Client when they name no place to run."""
    check_options(options)
    if names_no_place(options):
        distributed = import_dask_distributed()
        try:
            options = dict(options, client=distributed.default_client())
        except ValueError:
            raise ValueError(
                "engine='dask' needs a cluster: pass client=, address=, scheduler_file= or "
                "local_workers=, or create a distributed.Client first"
            ) from None
    return options
