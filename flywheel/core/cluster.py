"""The Dask client every stage runs on: an in-process LocalCluster on a laptop, a scheduler address on a cluster.

    with dask_client(os.environ.get("FLYWHEEL_DASK_ADDRESS"), threads=4) as client:
        client.submit(...)
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def dask_client(address: str | None = None, workers: int = 1, threads: int = 2):
    from distributed import Client, LocalCluster

    if address:
        client = Client(address)
        try:
            yield client
        finally:
            client.close()
        return
    # processes=False: one in-process worker, so no subprocesses (and no second Prefect client) on a laptop.
    with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield client
