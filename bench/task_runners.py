"""Does a Prefect task runner pay for the loop's independent stages? The first half of a cycle (and the nightly
``refresh-data`` flow) has two independent branches — the labelled examples (JSONL: ingest + curate) and the
documents (PDFs: ingest with OCR + curate) — which the flows run one after the other today. This runs the same two
branches three ways, each in a fresh home (no ingest cache), and prints the wall time and the ratio to sequential:

- ``sequential``: one after the other (what the flows do);
- ``threads``: ``branch.map`` on Prefect's ``ThreadPoolTaskRunner(max_workers=2)``;
- ``dask``: ``branch.map`` on prefect-dask's ``DaskTaskRunner`` (a 2-worker ``LocalCluster`` of processes).

Every mode must produce the same Datasets (digest for digest), or the row is marked. Needs ``pip install
prefect-dask==0.3.7`` (not a dependency of the project: it is installed only to measure it).

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.task_runners [--n-train 20000] [--copies 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from prefect import flow, task


@task(name="branch")
def branch(paths: list[str], name: str, workload_path: str) -> dict:
    """One branch of the cycle's first half: ingest, then curate (the tasks' own code, in this task)."""
    from flywheel.core.workload import load_workload
    from tasks.curate import curate_dataset
    from tasks.ingest import ingest_documents

    cfg = load_workload(workload_path)
    raw = ingest_documents.fn(paths, f"{name}-raw", cfg.ingest)
    cur = curate_dataset.fn(raw["path"], name, cfg.curation)
    return {"name": name, "raw": raw["digest"], "curated": cur["digest"], "rows": cur["rows"]}


def _branches(data: Path, workload_path: str) -> list[tuple[list[str], str, str]]:
    docs = sorted(str(p) for p in data.glob("**/*") if p.suffix in (".pdf", ".md", ".txt", ".html", ".docx"))
    return [([str(data / "fraud-train.jsonl")], "fraud-train", workload_path), (docs, "fraud-documents", workload_path)]


@flow(name="bench-sequential")
def sequential(work: list) -> list[dict]:
    return [branch(*w) for w in work]


def _mapped(work: list) -> list[dict]:
    futures = branch.map([w[0] for w in work], [w[1] for w in work], [w[2] for w in work])
    return [f.result() for f in futures]


def _write_data(root: Path, n_train: int, copies: int) -> Path:
    """The bundled sample data, once for every mode (the rows name their files: the same paths, the same
    Datasets): ``n_train`` examples and ``copies`` of the document set."""
    from examples.documents import write_documents
    from examples.fraud import generate, write_jsonl
    from examples.policies import write_policies

    data = root / "data" / "fraud"
    write_jsonl(generate(n_train, seed=1), data / "fraud-train.jsonl")
    for k in range(copies):  # the fraud policy PDF, a note, a corrupt PDF, and the six policy manuals
        write_documents(data / f"set-{k}")
        write_policies(data / f"set-{k}" / "manuals")
    return data


def _prepare(root: Path) -> tuple[Path, str]:
    """A fresh home (no ingest cache, no Datasets) and the fraud workload's config."""
    import yaml

    home = Path(tempfile.mkdtemp(prefix="home-", dir=root))
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/workloads/fraud.yaml").read_text())
    wl = home / "fraud.yaml"
    wl.write_text(yaml.safe_dump(spec))
    return home, str(wl)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-train", type=int, default=20000)
    p.add_argument("--copies", type=int, default=10, help="copies of the sample document set (PDFs)")
    p.add_argument("--modes", nargs="+", default=["sequential", "threads", "dask"])
    a = p.parse_args()

    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect.testing.utilities import prefect_test_harness

    root = Path(tempfile.mkdtemp(prefix="bench-runners-"))
    results = {}
    data = _write_data(root, a.n_train, a.copies)
    with prefect_test_harness(server_startup_timeout=120):
        for mode in ["warm-up", *a.modes]:  # the first run pays the imports and model loads: not timed
            home, wl = _prepare(root)
            os.environ["FLYWHEEL_HOME"] = str(home)  # before any cluster starts: its workers inherit it
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
            work = _branches(data, wl)
            from tasks.common import registry

            registry().experiment_id("curation")  # MLflow's SQLite schema, created once: two Dask worker
            # processes creating it at the same time fail ("database is locked", found by this bench)
            t0 = time.perf_counter()
            if mode in ("sequential", "warm-up"):
                out = sequential(work)
            elif mode == "threads":
                out = flow(name="bench-threads", task_runner=ThreadPoolTaskRunner(max_workers=2))(_mapped)(work)
            else:
                from prefect_dask import DaskTaskRunner

                runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True})
                out = flow(name="bench-dask", task_runner=runner)(_mapped)(work)
            results[mode] = (time.perf_counter() - t0, out)
            print(f"{mode:10} {results[mode][0]:7.1f} s  " + "  ".join(f"{o['name']} {o['rows']} rows" for o in out))

    results.pop("warm-up")
    base = results.get("sequential")
    omp = os.environ.get("OMP_NUM_THREADS")
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={omp}")
    print(f"{'mode':10} {'wall s':>8} {'vs sequential':>14}  same Datasets")
    for mode, (secs, out) in results.items():
        same = base is None or [o["curated"] for o in out] == [o["curated"] for o in base[1]]
        ratio = f"{base[0] / secs:.2f}x" if base else "—"
        print(f"{mode:10} {secs:8.1f} {ratio:>14}  {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
