"""GPU check: the SFT recipe and the evaluator on CUDA with bf16, tokens/s and MFU.

Runs Flywheel's own LoRA recipe (flywheel/training/sft.py) unchanged with ``device: cuda``: bf16
autocast, gradient checkpointing, fused AdamW. The model has SmolLM2-135M-Instruct's exact
architecture and tokenizer (config.json + tokenizer from the converted model) with random weights,
because the 98 MB GGUF cannot travel to the GPU machine; throughput and MFU depend on the shapes,
not on the weight values.

MFU = achieved model FLOP/s / peak bf16 FLOP/s, with FLOPs per trained token:
  full fine-tune: 6·N (forward 2N, backward 4N)              -- the PaLM / nanoGPT convention
  LoRA:           4·N (forward 2N, backward w.r.t. activations 2N; the adapter's own weight
                  gradients add 2·N_lora·2 ≈ 0.3 % here) -- gradient checkpointing recomputes the
                  forward (another 2N) but, by convention, recomputation is not counted as useful work
N counts every matmul weight (the tied embedding is counted once, as the LM head). Attention
score FLOPs (12·layers·d·seq per token ≈ 2 % at seq 160) are left out, so MFU is a slight under-estimate.

    python -m bench.gpu_check --arch .gpu/smollm2-arch --out results/    (on a CUDA machine)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362e12}  # dense, no sparsity


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=40)
    a = p.parse_args()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from examples.fraud import generate
    from flywheel.evaluation.config import EvalConfig
    from flywheel.evaluation.suite import evaluate_model
    from flywheel.training.config import SftConfig
    from flywheel.training.sft import train_sft

    assert torch.cuda.is_available(), "needs a CUDA device"
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_BF16.items() if k in name), 989.4e12)
    base = Path("/tmp/flywheel-gpu/smollm2-arch")
    base.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(a.arch))
    model.save_pretrained(base)
    for f in a.arch.iterdir():
        if f.name != "config.json":
            (base / f.name).write_bytes(f.read_bytes())
    n_params = sum(p.numel() for p in model.parameters())
    del model
    sp = "You triage card transactions. Answer FRAUD or LEGIT, then a colon and a one-line reason."
    rows = generate(4096, seed=7)
    report = {"device": name, "torch": torch.__version__, "peak_bf16_flops": peak, "params": n_params, "runs": []}
    for batch, ckpt in ((8, True), (64, True), (64, False), (256, False)):
        cfg = SftConfig(
            base_model=str(base),
            device="cuda",
            max_steps=a.steps,
            batch_size=batch,
            max_seq_length=160,
            gradient_checkpointing="on" if ckpt else "off",
            checkpoint_every=0,
        )
        times: list[tuple[int, float, int]] = []
        t0 = time.perf_counter()
        torch.cuda.reset_peak_memory_stats()

        def on_step(step, loss, tps):
            torch.cuda.synchronize()
            times.append((step, time.perf_counter() - t0, loss))  # noqa: B023 - called within this iteration

        res = train_sft(
            rows, cfg, sp, Path(f"/tmp/flywheel-gpu/run-{batch}-{ckpt}"), Path("/tmp/flywheel-gpu"), on_step=on_step
        )
        # steady state: the second half of the steps (the first include CUDA/cuBLAS warm-up)
        half = len(times) // 2
        tokens_per_step = res.tokens / res.steps
        dt = times[-1][1] - times[half - 1][1]
        tps = tokens_per_step * (len(times) - half) / dt
        run = {
            "batch": batch,
            "gradient_checkpointing": ckpt,
            "steps": res.steps,
            "tokens_per_step": tokens_per_step,
            "tokens_per_second": round(tps),
            "mfu_lora_4N": round(4 * n_params * tps / peak, 4),
            "mfu_if_full_6N": round(6 * n_params * tps / peak, 4),
            "first_loss": res.losses[0],
            "final_loss": res.final_loss,
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "device": res.device,
        }
        print(json.dumps(run), flush=True)
        report["runs"].append(run)
    t = time.perf_counter()
    ev = evaluate_model(
        base,
        None,
        generate(512, seed=8),
        "general text " * 500,
        ["FRAUD", "LEGIT"],
        sp,
        EvalConfig(max_examples=512, batch_size=64, general_mc=None),
    )
    report["eval"] = {
        "examples": 512,
        "seconds": round(time.perf_counter() - t, 2),
        "accuracy_random_weights": ev["accuracy"],
    }
    print(json.dumps(report["eval"]), flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gpu_check.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
