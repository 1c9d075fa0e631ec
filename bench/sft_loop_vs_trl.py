"""Benchmark: Flywheel's explicit LoRA SFT loop vs trl's SFTTrainer, same model, data and batches.

Both train SmolLM2-135M-Instruct with the same LoRA config (r=16 on all linear layers), batch 8,
the fraud workload's chat-formatted examples, loss on the assistant turn only. Prints seconds per
step and tokens/s for each and their ratio.

    .venv/bin/python -m bench.sft_loop_vs_trl --steps 6     (needs the [bench] extra: trl)
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
from flywheel.training.config import SftConfig
from flywheel.training.models import resolve_base_model  # noqa: E402
from flywheel.training.sft import to_conversations, train_sft  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_trl(rows, cfg: SftConfig, system_prompt: str, base: Path, out: Path) -> tuple[float, int]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        max_length=cfg.max_seq_length,
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        disable_tqdm=True,
        seed=cfg.seed,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(to_conversations(rows, system_prompt)),
        processing_class=tok,
        peft_config=LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.target_modules,
            task_type="CAUSAL_LM",
        ),
    )
    trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0, int(trainer.state.num_input_tokens_seen or 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6)
    a = p.parse_args()
    w = load_workload(ROOT / "configs/workloads/fraud.yaml")
    cfg = w.sft.model_copy(update={"max_steps": a.steps, "device": "cpu"})
    home = Home.resolve()
    base = resolve_base_model(cfg.base_model, home.models)
    rows = generate(cfg.max_steps * cfg.batch_size, seed=7)
    ours = train_sft(rows, cfg, w.system_prompt, home.runs / "bench-loop", home.models)
    trl_s, _ = run_trl(rows, cfg, w.system_prompt, base, home.runs / "bench-trl")
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"flywheel loop : {ours.seconds / a.steps:6.2f} s/step  {ours.tokens_per_second:7.1f} tokens/s")
    # trl does not count input tokens unless asked; both see batch x steps examples of the same data
    print(f"trl SFTTrainer: {trl_s / a.steps:6.2f} s/step  (same batches: {a.steps} x {cfg.batch_size} examples)")
    print(f"speed-up      : {trl_s / ours.seconds:.2f}x")


if __name__ == "__main__":
    main()
