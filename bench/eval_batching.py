"""Benchmark: the evaluation's generated answers, batched (what the suite runs) vs one request at a time (what
the gateway's old engine did), on the real SmolLM2-135M-Instruct and the fraud workload's prompt.

Same model, same golden rows, greedy decoding: prints examples/s of each, the ratio, and whether the answers
are the same (left padding must not change a greedy answer beyond float noise).

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.eval_batching --examples 500 --batch 16
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from examples.fraud import generate  # noqa: E402
from flywheel.core.home import Home  # noqa: E402
from flywheel.core.workload import load_workload  # noqa: E402
from flywheel.evaluation.scorers import answer_outcomes  # noqa: E402
from flywheel.training.models import load_model_and_tokenizer, resolve_base_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=500)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--adapter", default=None, help="An adapter folder (default: the base model alone).")
    a = p.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    wl = load_workload(ROOT / "configs/workloads/fraud.yaml")
    base = resolve_base_model(wl.sft.base_model, Home.resolve().models)
    model, tok = load_model_and_tokenizer(base, a.adapter)
    rows = generate(a.examples, seed=wl.data.seed + 1, noise=0.0, prefix="bench")
    n_tok = wl.eval.max_new_tokens
    runs = {}
    for bs in (a.batch, 1):
        t = time.perf_counter()
        frame, cost = answer_outcomes(model, tok, rows, wl.labels, wl.system_prompt, n_tok, bs)
        runs[bs] = (frame, time.perf_counter() - t, cost)
        print(
            f"batch {bs:>3}: {a.examples} answers in {runs[bs][1]:.1f}s = {a.examples / runs[bs][1]:.2f} examples/s, "
            f"{cost['tokens_per_answer']:.1f} tokens/answer, p50 latency {cost['latency_ms_p50']:.0f} ms",
            flush=True,
        )
    same = (runs[a.batch][0]["answer"] == runs[1][0]["answer"]).mean()
    acc = {bs: (f["gold"] == f["pred"]).mean() for bs, (f, _, _) in runs.items()}
    print(
        f"machine {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; model {wl.sft.base_model}{' + ' + a.adapter if a.adapter else ''}"
    )
    print(
        f"speed-up batched/one-by-one: {runs[1][1] / runs[a.batch][1]:.2f}x; identical answers {same:.1%}; "
        f"accuracy {acc[a.batch]:.3f} (batched) vs {acc[1]:.3f}"
    )


if __name__ == "__main__":
    main()
