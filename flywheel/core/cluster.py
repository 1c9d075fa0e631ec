"""The Dask client every stage runs on: an in-process LocalCluster on a laptop, a scheduler address on a cluster.

    with dask_client(os.environ.get("FLYWHEEL_DASK_ADDRESS"), threads=4) as client:
        client.submit(...)

Without an address, one LocalCluster per shape (workers, threads, worker processes or in-process,
CUDA) is started on first use and kept for the life of the process (stages that follow each other reuse it
instead of starting and tearing down a cluster each: faster, and no teardown races between them); it is closed
at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import threading

_LOCAL: dict[tuple[int, int, bool, bool], object] = {}
_LOCK = threading.Lock()


def _local_cluster(workers: int, threads: int, cuda: bool = False, processes: bool = False):
    from distributed import LocalCluster

    with _LOCK:
        cluster = _LOCAL.get((workers, threads, cuda, processes))
        if cluster is None or cluster.status.name in ("closed", "closing", "failed"):
            if cuda:  # dask-cuda: one worker process per visible GPU (the gpu extra)
                from dask_cuda import LocalCUDACluster

                cluster = LocalCUDACluster(dashboard_address=":0")
            else:
                # processes=False by default: in-process workers, so no subprocesses (and no second Prefect client)
                # on a laptop; long pure-Python work (streaming curation) asks for worker processes instead.
                cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=threads, processes=processes, dashboard_address=":0"
                )
            if not _LOCAL:  # registered after distributed's own exit hooks, so it runs before them (LIFO)
                atexit.register(_close_all)
            _LOCAL[(workers, threads, cuda, processes)] = cluster
        return cluster


def _close_all() -> None:
    import logging

    if not _LOCAL:
        return
    # At exit the log streams may already be closed (pytest, a Prefect worker): keep the teardown quiet.
    for name in [n for n in logging.root.manager.loggerDict if n == "distributed" or n.startswith("distributed.")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for cluster in list(_LOCAL.values()):
        with contextlib.suppress(Exception):
            cluster.close()
    _LOCAL.clear()


@contextlib.contextmanager
def dask_client(
    address: str | None = None, workers: int = 1, threads: int = 2, cuda: bool = False, processes: bool = False
):
    """A client of ``address``, or of the process's LocalCluster (``processes``: worker processes, free of
    this process's GIL; ``cuda``: a dask-cuda LocalCUDACluster)."""
    from distributed import Client

    client = Client(address) if address else Client(_local_cluster(workers, threads, cuda, processes))
    try:
        yield client
    finally:
        client.close()
