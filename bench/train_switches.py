"""The SFT loop's speed switches on this machine's CPU: the fraud workload's recipe (SmolLM2-135M-Instruct, LoRA,
its rows and batch) with each switch on and off, each in a process of its own (so its peak memory is its own),
printing tokens/s over the second half of the steps, peak RSS, the final loss and the ratio to the plain loop.
A switch must leave the losses equal within noise; the row says when it does not.

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.train_switches [--steps 12] [--batch 8] [--seq 192]

The CUDA switches (liger, fp8) and the GPU numbers come from bench/gpu_train.py on an H200.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = {  # name: SftConfig switches
    "plain": {"fused_loss": "off"},
    "fused chunked": {"fused_loss": "chunked"},
    "compile regional": {"fused_loss": "off", "compile": "regional"},
    "chunked + regional": {"fused_loss": "chunked", "compile": "regional"},
}


def one(switches: dict, steps: int, batch: int, seq: int, out: Path) -> dict:
    """One run of the recipe with ``switches`` (in this process)."""
    from examples.fraud import generate
    from flywheel.core.home import Home
    from flywheel.core.workload import load_workload
    from flywheel.training.sft import train_sft

    root = Path(__file__).resolve().parents[1]
    wl = load_workload(root / "configs/workloads/fraud.yaml")
    cfg = wl.sft.model_copy(
        update={
            "device": "cpu",
            "max_steps": steps,
            "epochs": None,
            "batch_size": batch,
            "max_seq_length": seq,
            "checkpoint_every": 0,
            "general_replay": 0.0,
            "lora_dropout": 0.0,
            **switches,
        }  # fmt: skip
    )
    tps: list[float] = []
    res = train_sft(generate(batch * steps, seed=7), cfg, wl.system_prompt, out, Home.resolve().models,
                    on_step=lambda s, loss, t: tps.append(t), log=lambda m: None)  # fmt: skip
    half = tps[len(tps) // 2 :]
    return {
        "tokens_per_s": sum(half) / len(half),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "losses": res.losses,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=192)
    p.add_argument("--only", help=argparse.SUPPRESS)  # a child process: run this variant, print JSON
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.only:
        with tempfile.TemporaryDirectory() as d:
            print(json.dumps(one(VARIANTS[a.only], a.steps, a.batch, a.seq, Path(d))))
        return
    rows = {}
    for name in VARIANTS:
        cmd = [sys.executable, "-m", "bench.train_switches", "--only", name, "--steps", str(a.steps),
               "--batch", str(a.batch), "--seq", str(a.seq)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:20} {rows[name]['tokens_per_s']:8.0f} tokens/s  {rows[name]['peak_rss_mb']:7.0f} MB", flush=True)
    base = rows["plain"]
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print(f"SmolLM2-135M-Instruct, LoRA r16, batch {a.batch}, {a.seq} tokens, {a.steps} steps (tokens/s: 2nd half)")
    print(f"{'variant':20} {'tokens/s':>9} {'vs plain':>9} {'peak RSS MB':>12} {'final loss':>11}  same losses")
    for name, r in rows.items():
        same = all(abs(x - y) <= 2e-3 * abs(y) for x, y in zip(r["losses"], base["losses"], strict=True))
        print(f"{name:20} {r['tokens_per_s']:9.0f} {r['tokens_per_s'] / base['tokens_per_s']:8.2f}x "
              f"{r['peak_rss_mb']:12.0f} {r['losses'][-1]:11.4f}  {'yes' if same else 'NO'}")  # fmt: skip


if __name__ == "__main__":
    main()
