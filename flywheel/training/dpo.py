"""The DPO recipe (Rafailov et al. 2023), torchtune-style: one explicit loop.

Rows: ``prompt`` (text or a chat), ``chosen``, ``rejected`` — e.g. built from feedback by
``FeedbackStore.preference_pairs`` (chosen = the correction or a positively rated answer, rejected =
the negatively rated answer). Any PEFT method of ``SftConfig.method`` applies.

    loss = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))   [+ sft_weight * NLL(c)]

The reference is the starting model (the base, or the base with a fresh adapter, which changes nothing
for LoRA-like methods); its log-probabilities are computed once before training and kept in
``<out>/reference_logps.json`` (trl's ``precompute_ref_log_probs``): no second model in memory, and a
resumed run uses the same reference. Log-probabilities are sums over the answer's tokens.

    python -m flywheel.training.run --config configs/training/dpo-feedback.yaml [--resume] [--json]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from flywheel.training.config import DpoConfig
from flywheel.training.data import IGNORE, collate, encode_rows
from flywheel.training.kernels import fused_head, hidden_states_out, labelled_logps
from flywheel.training.recipe import (
    Batches,
    Checkpoints,
    Meter,
    TrainResult,
    before_step,
    build_model,
    optimizer,
    optimizer_step,
    runtime,
    shard,
    sharded,
    start_state,
    wrap_distributed,
    wrap_up,
)


def encode_pairs(tok, rows: list[dict], system_prompt: str, cfg: DpoConfig):
    """[(chosen ids, labels), (rejected ids, labels)] per kept pair, and counts."""
    return encode_rows(
        tok, rows, system_prompt, cfg.max_seq_length, cfg.truncation, ("chosen", "rejected"), "preference pair"
    )


def sequence_logps(model, ids, labels, mask, fused: str = "off", chunk: int = 1024, head_model=None):
    """Sum of log p(token) over labelled tokens, per row. ``fused`` (not off): the head and the log-softmax in
    chunks of labelled tokens, without the full logits (``head_model``: the unwrapped model whose head is lent)."""
    import torch.nn.functional as F

    if fused != "off":
        with hidden_states_out(head_model or model) as head:
            hidden = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        return labelled_logps(hidden, head, labels, chunk)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
    target = labels[:, 1:]
    logp = -F.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
    keep = (target != IGNORE).float()
    return (logp * keep).sum(-1), keep.sum(-1)


def reference_logps(
    model, pairs, pad_id: int, device: str, batch: int, bf16: bool, fused: str = "off", chunk_size: int = 1024
) -> list[list[float]]:
    import torch

    was_training = model.training
    model.eval()
    out = []
    with (
        torch.no_grad(),
        torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16, enabled=bf16),
    ):
        for i in range(0, len(pairs), batch):
            chunk = pairs[i : i + batch]
            ids, labels, mask, _ = (
                t.to(device) for t in collate([c for c, _ in chunk] + [r for _, r in chunk], pad_id)
            )
            lp, _ = sequence_logps(model, ids, labels, mask, fused, chunk_size)
            n = len(chunk)
            out += [[float(lp[j]), float(lp[n + j])] for j in range(n)]
    model.train(was_training)
    return out


def train_dpo(
    rows: list[dict],
    cfg: DpoConfig,
    system_prompt: str,
    out_dir: str | Path,
    models_dir: str | Path,
    on_step: Callable[[int, float, float], None] | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
    keep_model: bool = False,
) -> TrainResult:
    import torch
    import torch.nn.functional as F

    out_dir = Path(out_dir)
    rt = runtime(cfg)
    model, tok, base_path, info, n_matmul, checkpointing = build_model(cfg, models_dir, rt)
    pairs, counts = encode_pairs(tok, rows, system_prompt, cfg)
    # the fused head: chunked (liger's kernel gives a loss, not DPO's per-row log-probabilities)
    fused = fused_head(cfg, model, rt.device, rt.world).replace("liger", "chunked")
    ref_file = out_dir / "reference_logps.json"
    if resume and ref_file.exists():
        ref = json.loads(ref_file.read_text())
    else:
        ref = reference_logps(
            model, pairs, tok.pad_token_id, rt.device, cfg.batch_size, rt.bf16, fused, cfg.fused_loss_chunk
        )
        if rt.main:
            out_dir.mkdir(parents=True, exist_ok=True)
            ref_file.write_text(json.dumps(ref))
    model = shard(model, cfg, rt)  # parallel: fsdp (several ranks), before the optimizer sees the parameters
    opt, params = optimizer(model, cfg, rt)
    ckpts = Checkpoints(out_dir / "checkpoints", cfg.keep_checkpoints, fsdp=sharded(cfg, rt))
    state = start_state(ckpts, model, opt, resume, log)
    batches = Batches(len(pairs), cfg.seed, state)
    train_model = wrap_distributed(model, cfg, rt)
    device_type = "cuda" if rt.device.startswith("cuda") else "cpu"
    meter = Meter(cfg, rt, state, ckpts, model, opt, info, n_matmul, on_step)
    accuracies = []
    for step in range(state.step, cfg.max_steps):
        picked = batches.take(cfg.batch_size, rt)
        chosen = [pairs[i][0] for i in picked]
        rejected = [pairs[i][1] for i in picked]
        ids, labels, mask, _ = (t.to(rt.device) for t in collate(chosen + rejected, tok.pad_token_id))
        ref_c = torch.tensor([ref[i][0] for i in picked], device=rt.device)
        ref_r = torch.tensor([ref[i][1] for i in picked], device=rt.device)
        before_step(step, cfg, opt, model, mask)
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=rt.bf16):
            logp, n_tok = sequence_logps(train_model, ids, labels, mask, fused, cfg.fused_loss_chunk, model)
            pc, pr = logp[: len(picked)], logp[len(picked) :]
            margin = cfg.beta * ((pc - ref_c) - (pr - ref_r))
            loss = -F.logsigmoid(margin).mean()
            if cfg.sft_weight:
                loss = loss + cfg.sft_weight * (-pc / n_tok[: len(picked)]).mean()
        optimizer_step(loss, model, cfg, params, opt)

        accuracies.append(float((margin > 0).float().mean()))
        meter.step(step, loss, mask)
    meter.stop()

    counts["reward_accuracy_last"] = accuracies[-1] if accuracies else None
    return wrap_up(meter, model, tok, base_path, out_dir, "dpo", len(pairs), counts, checkpointing, keep_model)
