"""Scale: a ~1 GB JSONL corpus through ingest and bounded-memory curation on this machine, with the peak
memory of the whole process tree (driver, Dask workers, ingest sandboxes) sampled every 0.2 s.

The corpus is generated: documents of ~1 KB (40 % common English words, 60 % from a 20,000-word vocabulary),
1 % planted exact copies and 1 % near-copies (a few words changed). The recipe is NeMo Curator's English
heuristic set, exact dedup and fuzzy dedup with the Curator preset (char 24-grams, 20 x 13), streaming on.

    OMP_NUM_THREADS=2 python -m bench.curate_scale --mb 1024 --work /tmp/flywheel-scale
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def generate(path: Path, mb: int, seed: int = 0) -> int:
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    common = (
        "the of and to in is was that for it with as on be by at this are from or have an they which one "
        "you had not but what all were when we there can been has more if will would who so no"
    ).split()
    vocab = np.array(common + ["".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(20_000)])
    weights = np.r_[
        np.full(len(common), 0.4 / len(common)), np.full(len(vocab) - len(common), 0.6 / (len(vocab) - len(common)))
    ]
    target, n, written = mb << 20, 0, 0
    recent: list[str] = []
    with open(path, "w") as f:
        while written < target:
            r = rng.random()
            if r < 0.01 and recent:
                text = recent[rng.integers(len(recent))]  # exact copy
            elif r < 0.02 and recent:
                words = recent[rng.integers(len(recent))].split(" ")
                for k in rng.integers(0, len(words), 3):
                    words[k] = vocab[rng.integers(len(vocab))]
                text = " ".join(words)  # near copy: 3 words changed
            else:
                words = rng.choice(vocab, 150, p=weights)
                sentences = [" ".join(words[i : i + 15]).capitalize() + "." for i in range(0, 150, 15)]
                text = " ".join(sentences)
                recent = (recent + [text])[-1000:]
            line = json.dumps({"id": f"d{n:08d}", "text": text}) + "\n"
            f.write(line)
            written += len(line)
            n += 1
    return n


class PeakRss:
    """Peak resident memory of this process and all its children, sampled."""

    def __init__(self, every: float = 0.2):
        import psutil

        self.proc, self.every, self.peak, self.stop = psutil.Process(), every, 0, False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                procs = [self.proc] + self.proc.children(recursive=True)
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except Exception:  # noqa: BLE001 - a child that ended between listing and reading
                pass
            time.sleep(self.every)

    def reset(self) -> int:
        peak, self.peak = self.peak, 0
        return peak


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=1024)
    p.add_argument("--work", type=Path, default=Path("/tmp/flywheel-scale"))
    p.add_argument(
        "--processes",
        type=int,
        default=0,
        help="curate on a LocalCluster of this many single-thread worker processes with a 2 GiB memory limit "
        "each (Dask spills above 60 %%), as FLYWHEEL_DASK_ADDRESS would point at; 0: the default cluster "
        "(one single-thread worker process per core, Dask's memory limits)",
    )
    a = p.parse_args()
    from flywheel.core.config import load_config
    from flywheel.core.dataset import DatasetWriter
    from flywheel.curation.config import CurationConfig
    from flywheel.curation.streaming import curate_streaming
    from flywheel.ingest.config import IngestConfig
    from flywheel.ingest.engine import run_ingest

    a.work.mkdir(parents=True, exist_ok=True)
    corpus = a.work / f"corpus-{a.mb}mb.jsonl"
    if not corpus.exists():
        t = time.perf_counter()
        n = generate(corpus, a.mb)
        print(
            f"generated {corpus} ({corpus.stat().st_size / 2**20:.0f} MiB, {n} docs) in {time.perf_counter() - t:.0f} s"
        )
    mon = PeakRss()
    base = mon.proc.memory_info().rss
    t = time.perf_counter()
    # JSONL is read in 8 MiB blocks of lines, so max_file_bytes (a guard for whole-file readers) does not apply.
    res = run_ingest([corpus], IngestConfig(chunking={"enabled": False}), cache_dir=a.work / "cache")
    if res.quarantine:
        raise SystemExit(f"ingest quarantined the corpus: {res.quarantine}")
    with DatasetWriter(a.work, "ingested") as w:
        for frame in res.frames():
            w.write(frame)
    src = w.dataset
    t_ingest, peak_ingest = time.perf_counter() - t, mon.reset()
    print(
        f"ingest: {src.rows} rows in {t_ingest:.0f} s, {res.stats.as_dict()}, {len(res.quarantine)} quarantined; "
        f"peak RSS {peak_ingest / 2**20:.0f} MiB"
    )
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs/curation/nemo-heuristics-en.yaml", CurationConfig)
    cfg = cfg.model_copy(
        update={"streaming": "on", "fuzzy_dedup": cfg.fuzzy_dedup.model_copy(update={"enabled": True})}
    )
    address, cluster = None, None
    if a.processes:
        from distributed import LocalCluster

        cluster = LocalCluster(
            n_workers=a.processes, threads_per_worker=1, processes=True, memory_limit="2GiB", dashboard_address=None
        )
        address = cluster.scheduler_address
    mon.reset()
    t = time.perf_counter()
    with DatasetWriter(a.work, "curated") as kw, DatasetWriter(a.work, "removed") as rw:
        stats = curate_streaming(src, cfg, kw, rw, a.work / "curate-work", address)
    t_curate, peak_curate = time.perf_counter() - t, mon.reset()
    mon.stop = True
    print(
        f"curate ({f'{a.processes} worker processes, 2 GiB each' if a.processes else 'default cluster'}): "
        f"{json.dumps(stats['summary'])} in {t_curate:.0f} s; "
        f"peak RSS of the process tree {peak_curate / 2**20:.0f} MiB "
        f"(driver at start {base / 2**20:.0f} MiB)"
    )
    if cluster is not None:
        cluster.close()
    for step, counts in stats["steps"].items():
        print(f"  {step:18s} {counts}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
