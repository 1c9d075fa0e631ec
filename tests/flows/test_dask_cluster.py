"""Scale-out that runs: a real `dask scheduler` and two `dask worker` processes on loopback; ingest (through
FLYWHEEL_DASK_ADDRESS) and streaming curation (through the address, as the curate task passes it) run their units
on both workers and write the same Datasets, digest for digest, as the in-process LocalCluster."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from examples.documents import write_documents
from examples.fraud import generate, write_jsonl
from flywheel.curation.config import CurationConfig
from flywheel.curation.run import curate_dataset
from flywheel.ingest.config import IngestConfig
from flywheel.ingest.run import ingest_dataset

DASK = str(Path(sys.executable).parent / "dask")


@pytest.fixture
def cluster(tmp_path):
    from distributed import Client

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "DASK_LOGGING__DISTRIBUTED": "warning"}
    sched = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched)], env=env, stderr=subprocess.DEVNULL)]  # fmt: skip
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([DASK, "worker", "--scheduler-file", str(sched), "--nthreads", "1",
                                           "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{len(procs)}"],
                                          env=env, stderr=subprocess.DEVNULL))  # fmt: skip
        deadline = time.monotonic() + 60
        while not (sched.exists() and sched.stat().st_size):  # the scheduler writes its file once it listens
            assert procs[0].poll() is None and time.monotonic() < deadline, "the dask scheduler did not start"
            time.sleep(0.1)
        client = Client(scheduler_file=str(sched), timeout=60)
        client.wait_for_workers(2, timeout=120)
        yield client
        client.close()
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_ingest_and_streaming_curation_run_on_a_real_two_worker_cluster(cluster, tmp_path, monkeypatch):
    from distributed import get_task_stream

    data = tmp_path / "data"
    write_jsonl(generate(300, seed=3), data / "train.jsonl")
    write_documents(data)
    address = cluster.scheduler.address
    assert len(cluster.scheduler_info()["workers"]) == 2

    cfg = IngestConfig(workers=2)
    local = ingest_dataset([str(data)], "local", cfg, tmp_path / "ds-local", tmp_path / "cache-local").dataset
    monkeypatch.setenv("FLYWHEEL_DASK_ADDRESS", address)
    with get_task_stream(cluster) as ingest_stream:
        remote = ingest_dataset([str(data)], "remote", cfg, tmp_path / "ds-remote", tmp_path / "cache-remote")
    assert remote.dataset.digest == local.digest and remote.dataset.rows == local.rows > 300
    assert {t["worker"] for t in ingest_stream.data} == set(cluster.scheduler_info()["workers"])  # both worked

    cur = CurationConfig(streaming="on", partitions=4)
    kept_local, _, stats_local = curate_dataset(local, "c-local", cur, tmp_path / "ds-local", tmp_path / "w1")
    with get_task_stream(cluster) as curate_stream:
        kept, removed, stats = curate_dataset(remote.dataset, "c-remote", cur, tmp_path / "ds-remote", tmp_path / "w2",
                                              dask_address=address)  # fmt: skip
    assert kept.digest == kept_local.digest and stats["summary"] == stats_local["summary"]
    assert stats["summary"]["total"] == remote.dataset.rows and kept.rows + removed.rows == remote.dataset.rows
    assert len({t["worker"] for t in curate_stream.data}) == 2
