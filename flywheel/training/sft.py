"""The SFT recipe, torchtune-style: one explicit training loop, no BaseTrainer.

Data: rows with ``text`` (the user turn) and ``answer`` (the assistant turn), or ``messages``. Each
example is the base tokenizer's chat template; the loss is on the assistant turns only. Any method of
``SftConfig.method`` (full, LoRA, QLoRA, DoRA, IA3, prompt/prefix tuning, adapters, UniPELT, MoE adapters:
flywheel/training/methods.py), optional packing, checkpoints with resume (flywheel/training/recipe.py).

    python -m flywheel.training.run --config configs/training/sft-lora.yaml [--resume] [--json]
    torchrun --nproc_per_node 2 -m flywheel.training.run --config ...        # DistributedDataParallel

    from flywheel.training.sft import train_sft
    result = train_sft(rows, cfg.sft, system_prompt, out_dir, models_dir, on_step=print, resume=False)

Why a loop and not trl's SFTTrainer: the house style (the loop a reader should see) and a little speed
(``python -m bench.sft_loop_vs_trl``: 4.75 s/step here vs 5.16 for trl 1.16 on 2 CPU cores).
Throughput is tokens/s over non-padding tokens; MFU as in flywheel/training/flops.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from flywheel.training.config import SftConfig
from flywheel.training.data import IGNORE, answer_weights, collate, encode_sft_rows, pack, separator_ids
from flywheel.training.kernels import fused_head, hidden_states_out, linear_cross_entropy
from flywheel.training.recipe import (
    Batches,
    Checkpoints,
    Meter,
    TrainResult,
    before_step,
    build_model,
    lr_at,
    optimizer,
    optimizer_step,
    runtime,
    shard,
    sharded,
    start_state,
    wrap_distributed,
    wrap_up,
)
from flywheel.training.replay import replay_examples, self_replay_texts

__all__ = ["IGNORE", "lr_at", "train_sft", "to_conversations"]


def to_conversations(rows: list[dict], system_prompt: str) -> list[dict]:
    """The same examples in trl's prompt/completion conversation format (used by the benchmark)."""
    return [
        {
            "prompt": [{"role": "system", "content": system_prompt}, {"role": "user", "content": r["text"]}],
            "completion": [{"role": "assistant", "content": r["answer"]}],
        }
        for r in rows
    ]


def planned_steps(cfg: SftConfig, examples: int, world: int = 1) -> int:
    """Optimizer steps of a run: ceil(epochs x examples / global batch), at most max_steps; max_steps without
    epochs. 600 rows, 1 epoch, batch 8: 75 steps."""
    if not cfg.epochs:
        return cfg.max_steps
    return max(1, min(cfg.max_steps, math.ceil(cfg.epochs * examples / (cfg.batch_size * world))))


def weighted_loss(model, inputs: dict, weights):
    """Token-weighted next-token loss: sum(w * CE) / sum(w) over the answer tokens (``answer_weights``)."""
    import torch

    labels = inputs["labels"]
    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits[:, :-1].float()
    target, w = labels[:, 1:], weights[:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE, reduction="none"
    ).view_as(target)
    return (ce * w).sum() / w.sum().clamp_min(1e-8)


def train_sft(
    rows: list[dict],
    cfg: SftConfig,
    system_prompt: str,
    out_dir: str | Path,
    models_dir: str | Path,
    on_step: Callable[[int, float, float], None] | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
    keep_model: bool = False,
) -> TrainResult:
    import torch

    out_dir = Path(out_dir)
    rt = runtime(cfg)
    model, tok, base_path, info, n_matmul, checkpointing = build_model(cfg, models_dir, rt)
    enc = encode_sft_rows(tok, rows, system_prompt, cfg.max_seq_length, cfg.truncation)
    if enc.counts["truncated"] or enc.counts["dropped_too_long"]:
        log(
            f"examples longer than {cfg.max_seq_length} tokens: {enc.counts['truncated']} truncated, "
            f"{enc.counts['dropped_too_long']} dropped"
        )
    encoded = enc.examples
    if cfg.general_replay:  # the base model's own plain text, against forgetting (flywheel/training/replay.py)
        k = round(cfg.general_replay * len(encoded))
        texts = self_replay_texts(base_path, k, cache_dir=Path(models_dir))
        encoded = encoded + replay_examples(tok, texts, cfg.max_seq_length)
        enc.counts["general_replay"] = len(encoded) - len(enc.examples)
        log(f"generative replay: {enc.counts['general_replay']} plain-text samples of the base model")
    examples = pack(encoded, cfg.max_seq_length) if cfg.packing else [(ids, labels, None) for ids, labels in encoded]
    if cfg.epochs:
        cfg = cfg.model_copy(update={"max_steps": planned_steps(cfg, len(examples), rt.world)})
        log(f"{cfg.epochs:g} epochs over {len(examples)} examples: {cfg.max_steps} steps")
    weighted = cfg.label_weight != 1.0 or cfg.reason_weight != 1.0
    sep_ids = separator_ids(tok) if weighted else set()
    fused = fused_head(cfg, model, rt.device, rt.world)
    log("loss: " + (f"fused linear + cross-entropy ({fused})" if fused != "off" else "the model's own"))
    model = shard(model, cfg, rt)  # parallel: fsdp (several ranks), before the optimizer sees the parameters
    opt, params = optimizer(model, cfg, rt)
    ckpts = Checkpoints(out_dir / "checkpoints", cfg.keep_checkpoints, fsdp=sharded(cfg, rt))
    state = start_state(ckpts, model, opt, resume, log)
    batches = Batches(len(examples), cfg.seed, state)
    train_model = wrap_distributed(model, cfg, rt)
    device_type = "cuda" if rt.device.startswith("cuda") else "cpu"
    meter = Meter(cfg, rt, state, ckpts, model, opt, info, n_matmul, on_step)
    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes and rt.world == 1 else None
    first_step = state.step
    for step in range(first_step, cfg.max_steps):
        if deadline is not None and step > first_step and time.monotonic() > deadline:  # at least one step
            log(f"time budget of {cfg.max_minutes:g} min reached after {step} of {cfg.max_steps} steps: stopping")
            break
        picked = batches.take(cfg.batch_size, rt)
        ids, labels, mask, pos = (
            t.to(rt.device) for t in collate([examples[i] for i in picked], tok.pad_token_id, cfg.packing)
        )
        before_step(step, cfg, opt, model, mask)
        # Packed rows pass position ids and no mask: transformers builds the block-diagonal causal mask.
        # No KV cache in training (transformers only honours packing without one; it also saves memory).
        inputs = {"input_ids": ids, "labels": labels, "use_cache": False}
        inputs.update({"position_ids": pos} if cfg.packing else {"attention_mask": mask})
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=rt.bf16):
            if fused != "off":  # the head and the loss in chunks of labelled tokens: no full logits
                with hidden_states_out(model) as head:
                    hidden = train_model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
                w = answer_weights(labels, sep_ids, cfg.label_weight, cfg.reason_weight) if weighted else None
                loss = linear_cross_entropy(hidden, head, labels, w, cfg.fused_loss_chunk, fused)
            elif weighted:
                loss = weighted_loss(
                    train_model, inputs, answer_weights(labels, sep_ids, cfg.label_weight, cfg.reason_weight)
                )
            else:
                loss = train_model(**inputs).loss
        optimizer_step(loss, model, cfg, params, opt)

        meter.step(step, loss, mask)
    meter.stop()

    return wrap_up(
        meter, model, tok, base_path, out_dir, "sft", len(enc.examples), enc.counts, checkpointing, keep_model
    )
