"""Overhead of Flywheel's SFT recipe over a bare transformers + peft loop: same model, data, batches, LoRA.

The bare loop is what a user would write by hand: get_peft_model, AdamW, forward/backward/step over the
same encoded examples in the same order. The recipe adds the schedule, gradient clipping, checkpoint
bookkeeping, per-step token/FLOP accounting and the MoE/aux-loss hooks. Both run in this process, in
alternating rounds (recipe, bare, recipe, bare, ...), and tokens/s is measured over the steps after the
first two (warm-up). Goal: overhead <= 3 %.

    OMP_NUM_THREADS=2 python -m bench.train_vs_bare_loop --steps 8 --rounds 2           # SmolLM2-135M on CPU
    python -m bench.train_vs_bare_loop --base /path/to/model --device cuda --batch 32    # on a GPU
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from examples.fraud import generate  # noqa: E402
from flywheel.core.home import Home  # noqa: E402
from flywheel.training.config import SftConfig  # noqa: E402
from flywheel.training.data import collate, encode_sft_rows  # noqa: E402
from flywheel.training.models import resolve_base_model  # noqa: E402
from flywheel.training.sft import train_sft  # noqa: E402

SP = "You triage card transactions. Answer FRAUD or LEGIT, then a colon and a one-line reason."


def bare_loop(cfg: SftConfig, base: Path, rows: list[dict], device: str) -> list[float]:
    """Step durations of a hand-written LoRA loop over the same examples in the same order as the recipe."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(str(base))
    bf16 = device == "cuda"
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.bfloat16 if bf16 else torch.float32)
    model = (
        get_peft_model(
            model,
            LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules=cfg.target_modules,
                task_type="CAUSAL_LM",
            ),
        )
        .to(device)
        .train()
    )
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate, fused=bf16)
    examples = encode_sft_rows(tok, rows, SP, cfg.max_seq_length).examples
    rng, order = random.Random(cfg.seed), []
    durations, last = [], time.perf_counter()
    for _ in range(cfg.max_steps):
        batch = []
        while len(batch) < cfg.batch_size:
            if not order:
                order = list(range(len(examples)))
                rng.shuffle(order)
            batch.append(examples[order.pop()])
        ids, labels, mask, _ = (t.to(device) for t in collate([(i, lab, None) for i, lab in batch], tok.pad_token_id))
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the recipe reads the loss every step too (a device sync, like this one)
        now = time.perf_counter()
        durations.append(now - last)
        last = now
    return durations


def step_tokens(cfg: SftConfig, base: Path, rows: list[dict]) -> list[int]:
    """Non-padding tokens of each step's batch (both loops draw the same batches)."""
    from transformers import AutoTokenizer

    examples = encode_sft_rows(AutoTokenizer.from_pretrained(str(base)), rows, SP, cfg.max_seq_length).examples
    rng, order, out = random.Random(cfg.seed), [], []
    for _ in range(cfg.max_steps):
        n = 0
        for _ in range(cfg.batch_size):
            if not order:
                order = list(range(len(examples)))
                rng.shuffle(order)
            n += len(examples[order.pop()][0])
        out.append(n)
    return out


def recipe(cfg: SftConfig, rows: list[dict], models: Path, out: Path, per_step: list[int]) -> list[float]:
    marks = []

    def on_step(step, loss, tps):  # called after the step's loss.item(), i.e. after a device sync
        marks.append(time.perf_counter())

    res = train_sft(rows, cfg, SP, out, models, on_step=on_step, log=lambda *_: None)
    assert res.tokens == sum(per_step), "the recipe and the bare loop must see the same batches"
    return [b - a for a, b in zip(marks, marks[1:])]  # durations of steps 2..N


def rate(per_step: list[int], durations: list[float]) -> float:
    """tokens/s over steps 3..N (the first two warm up): both loops' durations end at a loss.item()."""
    tail = durations[-(len(per_step) - 2) :]
    return sum(per_step[2:]) / sum(tail)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", default="smollm2-135m-instruct")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    import shutil
    import tempfile

    home = Home.resolve()
    base = resolve_base_model(a.base, home.models)
    rows = generate(512, seed=7)
    cfg = SftConfig(
        base_model=str(base),
        device=a.device,
        max_steps=a.steps,
        batch_size=a.batch,
        max_seq_length=160,
        checkpoint_every=0,
        gradient_checkpointing="off",
        lora_dropout=0.05,
    )
    per_step = step_tokens(cfg, base, rows)
    ours, bare = [], []
    for r in range(a.rounds):
        tmp = Path(tempfile.mkdtemp())
        d_ours = recipe(cfg, rows, home.models, tmp, per_step)
        shutil.rmtree(tmp, ignore_errors=True)
        d_bare = bare_loop(cfg, base, rows, a.device)
        ours.append(rate(per_step, d_ours))
        bare.append(rate(per_step, d_bare))
        print("  step ms, recipe:", [round(1000 * d) for d in d_ours[-(a.steps - 2) :]], flush=True)
        print("  step ms, bare:  ", [round(1000 * d) for d in d_bare[-(a.steps - 2) :]], flush=True)
        print(f"round {r + 1}: recipe {ours[-1]:.0f} tokens/s, bare loop {bare[-1]:.0f} tokens/s", flush=True)
    mo, mb = statistics.median(ours), statistics.median(bare)
    print(
        f"median: recipe {mo:.0f} tokens/s, bare {mb:.0f} tokens/s, recipe/bare = {mo / mb:.3f} "
        f"(overhead {100 * (1 - mo / mb):+.1f} %)"
    )


if __name__ == "__main__":
    main()
