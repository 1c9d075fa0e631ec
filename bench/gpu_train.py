"""GPU check of the fine-tuning engine: MFU of LoRA and full SFT on the largest models that fit, plus
QLoRA, DoRA, UniPELT and the MoE adapter on CUDA (bf16) — Flywheel's recipe unchanged — and then each speed
switch of issue 18 (fused linear + cross-entropy, liger's kernels, regional torch.compile, FP8) on the same
shapes, rows and batch (needs the `gpu` extra: liger-kernel, torchao). unsloth and torchtune are not run by this
script (their harnesses need the GPU to be written against; see bench/RESULTS.md).

Models are random-weight Llamas with real shapes (SmolLM2's tokenizer, 49,152 tokens): the weights
cannot travel to the device (64 MiB per call) and throughput depends on shapes only. Rows are the fraud
workload's examples packed into ``--seq`` tokens (``packing: true``), so no FLOPs go to padding.
MFU = the recipe's own figure (flywheel/training/flops.py): 6N (+ attention) per token for full
fine-tuning, 4N + 6N_adapter (+ attention) for PEFT, over the H100/H200 dense bf16 peak (989.4 TFLOP/s);
tokens/s over the second half of the steps (the first include CUDA/cuBLAS warm-up).

    python -m bench.gpu_train --tokenizer .gpu/smollm2-arch --out $OUT      (on a CUDA machine)
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

# name: (hidden, layers, intermediate, heads, kv heads)
SHAPES = {
    "llama-1.7b": (2048, 24, 8192, 32, 32),  # SmolLM2-1.7B
    "llama-8b": (4096, 32, 14336, 32, 8),  # Llama-3-8B body (vocab 49,152 here)
}
DEVICE = "cuda"
OFF = {"fused_loss": "off"}  # the loop as it was measured before the switches (issue 18)
LIGER = {"fused_loss": "liger", "liger_kernels": True}
RUNS = [  # (shape, method, batch, seq, gradient checkpointing, steps, switches)
    ("llama-8b", "lora", 4, 2048, "off", 12, OFF),
    ("llama-8b", "lora", 16, 2048, "on", 10, OFF),
    ("llama-1.7b", "full", 8, 2048, "off", 12, OFF),
    ("llama-1.7b", "lora", 8, 2048, "off", 12, OFF),
    ("llama-1.7b", "dora", 8, 2048, "off", 8, OFF),
    ("llama-1.7b", "unipelt", 8, 2048, "off", 8, OFF),
    ("llama-1.7b", "moe_adapter", 8, 2048, "off", 8, OFF),
    ("llama-1.7b", "qlora", 8, 2048, "on", 8, OFF),
    # issue 18: each switch on the same shapes, rows and batch (index 8 on); the losses must match the OFF rows'
    ("llama-8b", "lora", 4, 2048, "off", 12, {"fused_loss": "chunked"}),
    ("llama-8b", "lora", 4, 2048, "off", 12, {"fused_loss": "liger"}),
    ("llama-8b", "lora", 4, 2048, "off", 12, LIGER),
    ("llama-8b", "lora", 4, 2048, "off", 12, {**LIGER, "compile": "regional"}),
    ("llama-8b", "lora", 8, 2048, "off", 12, {**LIGER, "compile": "regional"}),  # the memory the loss freed
    ("llama-1.7b", "full", 8, 2048, "off", 12, LIGER),
    ("llama-1.7b", "full", 8, 2048, "off", 12, {**LIGER, "compile": "regional"}),
    ("llama-1.7b", "full", 8, 2048, "off", 12, {**LIGER, "compile": "regional", "fp8": True}),
    ("llama-1.7b", "lora", 8, 2048, "off", 12, {**LIGER, "compile": "regional"}),
    ("llama-1.7b", "dora", 8, 2048, "off", 8, {**LIGER, "compile": "regional"}),
    ("llama-8b", "lora", 4, 2048, "off", 12, {**LIGER, "compile": "regional", "attention": "flash_attention_2"}),
    ("llama-8b", "full", 4, 2048, "on", 8, {**LIGER, "optimizer_offload": True}),  # 8B full on one GPU
    ("llama-1.7b", "full", 8, 2048, "off", 12, {**LIGER, "compile": "regional", "attention": "flash_attention_2"}),
]


def make_model(shape: str, tokenizer: Path, root: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = root / shape
    if (out / "config.json").exists():
        return out
    hidden, layers, inter, heads, kv = SHAPES[shape]
    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=hidden,
        num_hidden_layers=layers,
        intermediate_size=inter,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        max_position_embeddings=8192,
        tie_word_embeddings=shape != "llama-8b",
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    with torch.device(DEVICE):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    for f in tokenizer.iterdir():
        if f.name not in ("config.json", "generation_config.json"):
            shutil.copy(f, out / f.name)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--root", type=Path, default=Path("/tmp/flywheel-gpu"))
    p.add_argument("--only", default="", help="comma-separated run indexes")
    p.add_argument("--dry-cpu", action="store_true", help="tiny shapes on the CPU: checks the script, measures nothing")
    a = p.parse_args()
    import torch

    global DEVICE
    if a.dry_cpu:
        DEVICE = "cpu"
        SHAPES.update({k: (64, 2, 128, 4, 2) for k in SHAPES})
        torch.cuda.is_available = lambda: True  # noqa: E731 (only to pass the guard below)
        torch.cuda.synchronize = lambda: None  # noqa: E731
        torch.cuda.reset_peak_memory_stats = lambda: None  # noqa: E731
        torch.cuda.max_memory_allocated = lambda: 0  # noqa: E731
        torch.cuda.empty_cache = lambda: None  # noqa: E731
        torch.cuda.get_device_name = lambda *_: "dry-run CPU"  # noqa: E731

    from examples.fraud import generate
    from flywheel.training.config import SftConfig
    from flywheel.training.sft import train_sft

    assert torch.cuda.is_available(), "needs a CUDA device"
    a.out.mkdir(parents=True, exist_ok=True)
    sp = "You triage card transactions. Answer FRAUD or LEGIT, then a colon and a one-line reason."
    rows = generate(6000, seed=7)
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": []}
    pick = {int(i) for i in a.only.split(",") if i}
    for i, (shape, method, batch, seq, ckpt, steps, switches) in enumerate(RUNS):
        if pick and i not in pick:
            continue
        t_setup = time.perf_counter()
        try:
            base = make_model(shape, a.tokenizer, a.root)
            cfg = SftConfig(
                base_model=str(base),
                method=method,
                device="cpu" if a.dry_cpu else "cuda",
                max_steps=steps,
                batch_size=batch,
                max_seq_length=seq,
                packing=True,
                gradient_checkpointing=ckpt,
                checkpoint_every=0,
                learning_rate=2e-5 if method == "full" else 1e-4,
                lora_r=16,
                **switches,
            )
            marks: list[tuple[int, float]] = []
            torch.cuda.reset_peak_memory_stats()
            t0 = [0.0]

            def on_step(step, loss, tps):
                torch.cuda.synchronize()
                if step == 1:
                    t0[0] = time.perf_counter()  # noqa: B023 - called within this iteration
                marks.append((step, time.perf_counter()))  # noqa: B023

            res = train_sft(rows, cfg, sp, a.root / f"run-{i}", a.root / "models", on_step=on_step, log=lambda *_: None)
            half = len(marks) // 2
            dt = marks[-1][1] - marks[half - 1][1]
            tokens_per_step = res.tokens / res.steps
            tps = tokens_per_step * (len(marks) - half) / dt
            run = {
                "i": i,
                "shape": shape,
                "method": method,
                "batch": batch,
                "seq": seq,
                "gradient_checkpointing": ckpt,
                "switches": switches,
                "steps": res.steps,
                "params": res.total_params,
                "trainable": res.trainable_params,
                "tokens_per_step": round(tokens_per_step),
                "tokens_per_second": round(tps),
                "flops_per_token": res.flops_per_token,
                "mfu_steady": round(res.flops_per_token * tps / res.peak_flops, 4),
                "mfu_whole_run": round(res.mfu, 4),
                "peak_source": res.peak_source,
                "first_loss": round(res.losses[0], 4),
                "final_loss": round(res.final_loss, 4),
                "losses": [round(x, 3) for x in res.losses],
                "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                "setup_s": round(time.perf_counter() - t_setup - res.seconds, 1),
            }
        except Exception as e:  # noqa: BLE001 - one failing method must not hide the others' numbers
            run = {"i": i, "shape": shape, "method": method, "switches": switches,
                   "error": f"{type(e).__name__}: {e}"[:500]}  # fmt: skip
        print(json.dumps(run), flush=True)
        report["runs"].append(run)
        (a.out / "gpu_train.json").write_text(json.dumps(report, indent=2))
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
