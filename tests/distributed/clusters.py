"""A Dask cluster for the tests: two single-thread worker processes on this machine."""

from __future__ import annotations

import contextlib

TIMEOUT = 60


@contextlib.contextmanager
def two_workers(set_as_default: bool):
    """A Client of a LocalCluster of two worker processes, once both have started. The
    dashboard takes a free port (the default 8787 may be held by another job, and the
    warning distributed then gives fails a test under filterwarnings=error)."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", scheduler_kwargs={"dashboard": False}
    ) as cluster:
        with Client(cluster, set_as_default=set_as_default) as client:
            client.wait_for_workers(2, timeout=TIMEOUT)
            yield client
