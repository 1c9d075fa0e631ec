"""Speed switches of the SFT loop (``SftConfig``): the fused linear + cross-entropy loss, liger's fused kernels,
``torch.compile`` and FP8 matmuls. Each keeps the numbers: a switch that changes the loss is a bug (the tests
compare each one against the plain loss on CPU where it can run there).

- ``fused_loss: chunked`` — the LM head and the cross-entropy in chunks of ``fused_loss_chunk`` labelled tokens,
  each recomputed in the backward pass (activation checkpointing): the full ``[tokens, vocabulary]`` logits never
  exist, and positions without a label (the prompt) never meet the head at all. Pure PyTorch, any device.
- ``fused_loss: liger`` — liger-kernel's Triton ``LigerFusedLinearCrossEntropyLoss`` (CUDA; extra ``gpu``).
- ``liger_kernels: true`` — liger's fused RMSNorm, SwiGLU and RoPE patched into the Llama-family model (CUDA).
- ``compile: model | regional`` — ``torch.compile`` of the whole model, or of each decoder layer (one graph
  reused by every layer: compiles once, recompiles less).
- ``fp8: true`` — torchao's float8 training for the linear layers of full fine-tuning (Hopper or newer).
- ``optimizer_offload: true`` — AdamW's state on the CPU (torchao): full fine-tuning of 8B on one GPU.
- ``attention: sdpa | eager | flash_attention_2`` — the attention kernel; flash-attention runs packed rows as
  variable-length sequences (the position ids mark where each example starts): no FLOPs on padding.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from flywheel.core.errors import ConfigError

IGNORE = -100


def base_of(model) -> nn.Module:
    """The transformers model inside a PEFT wrapper (its modules carry the adapters)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def head_of(model) -> nn.Linear:
    head = base_of(model).get_output_embeddings()
    if type(head) is not nn.Linear:  # an adapter on the head (modules_to_save, LoRA) would be bypassed
        raise ConfigError(f"fused_loss: the LM head is a {type(head).__name__}, not a plain Linear: use off")
    return head


_PASS_THROUGH = nn.Identity()  # one object: a compiled model's guards see the same head at every step


@contextmanager
def hidden_states_out(model):
    """For one forward: the model returns its last hidden states as ``.logits`` (the head is lent out)."""
    base = base_of(model)
    head = base.get_output_embeddings()
    base.set_output_embeddings(_PASS_THROUGH)
    try:
        yield head
    finally:
        base.set_output_embeddings(head)


def _chunk_logp(hidden, weight, bias, target):
    logits = nn.functional.linear(hidden, weight, bias).float()
    return -nn.functional.cross_entropy(logits, target, reduction="none")


def _labelled(hidden, labels):
    """The next-token pairs that carry a label: (their hidden states ``[N, H]``, targets ``[N]``, mask ``[B, T-1]``)."""
    target = labels[:, 1:]
    keep = target != IGNORE
    return hidden[:, :-1][keep], target[keep], keep


def _token_logps(h, head: nn.Linear, y, chunk: int):
    """log p(y) for each row of ``h``, the head applied ``chunk`` rows at a time (recomputed in the backward pass
    when gradients are wanted): at most ``[chunk, vocabulary]`` logits exist at once."""
    parts = []
    for s in range(0, y.numel(), chunk):
        args = (h[s : s + chunk], head.weight, head.bias, y[s : s + chunk])
        parts.append(torch.utils.checkpoint.checkpoint(_chunk_logp, *args, use_reentrant=False)
                     if torch.is_grad_enabled() else _chunk_logp(*args))  # fmt: skip
    return torch.cat(parts) if parts else h.new_zeros(0, dtype=torch.float32)


def labelled_logps(hidden, head: nn.Linear, labels, chunk: int = 1024):
    """Per row: the sum of log p(token) over its labelled tokens, and how many there are (DPO's sequence
    log-probabilities), from the last hidden states in chunks — without the full logits."""
    h, y, keep = _labelled(hidden, labels)
    rows = torch.arange(keep.shape[0], device=keep.device).unsqueeze(1).expand_as(keep)[keep]
    sums = torch.zeros(keep.shape[0], dtype=torch.float32, device=hidden.device)
    return sums.index_add(0, rows, _token_logps(h, head, y, chunk)), keep.sum(-1).float()


def linear_cross_entropy(hidden, head: nn.Linear, labels, weights=None, chunk: int = 1024, kind: str = "chunked"):
    """Token-weighted next-token loss ``sum(w * CE) / sum(w)`` from the last hidden states ``[B, T, H]`` and the
    head, without the full logits. ``weights`` ``[B, T]`` (default: 1 on every labelled token) as in
    ``sft.weighted_loss``; ``kind``: ``chunked`` (PyTorch, any device) or ``liger`` (Triton, CUDA, unweighted)."""
    h, y, keep = _labelled(hidden, labels)
    w = weights[:, 1:][keep].to(torch.float32) if weights is not None else None
    if kind == "liger":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        if w is not None and not bool((w == 1).all()):
            raise ConfigError("fused_loss: liger takes no per-token weights (label_weight/reason_weight): chunked")
        return LigerFusedLinearCrossEntropyLoss()(head.weight, h, y, head.bias)
    if w is None:
        w = torch.ones_like(y, dtype=torch.float32)
    return -(_token_logps(h, head, y, chunk) * w).sum() / w.sum().clamp_min(1e-8)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def fused_head(cfg, model, device: str, world: int = 1) -> str:
    """``fused_loss`` resolved for this run (``off | chunked | liger``): auto is liger on CUDA when liger-kernel is
    installed, else chunked (on this CPU chunked ran 1.31x the plain loss's tokens/s in 13 % less memory:
    bench/train_switches.py); off for prompt_tuning and FSDP. Fails fast when the head carries an adapter."""
    kind = cfg.fused_loss
    if kind == "auto":
        if cfg.method == "prompt_tuning" or (world > 1 and cfg.parallel == "fsdp"):
            return "off"  # virtual tokens shift the positions; FSDP2 gathers the sharded head inside forward only
        kind = "liger" if device.startswith("cuda") and _importable("liger_kernel") else "chunked"
    elif kind == "liger":
        _need_cuda("fused_loss: liger", device)
        if not _importable("liger_kernel"):
            raise ConfigError("fused_loss: liger needs liger-kernel (pip install '.[gpu]')")
    if kind != "off":
        head_of(model)
    return kind


def _need_cuda(what: str, device: str) -> None:
    if not device.startswith("cuda"):
        raise ConfigError(f"{what}: needs a CUDA GPU (Triton / float8 kernels); this run is on {device}")


def apply_liger(device: str, model_type: str) -> None:
    """liger's fused RMSNorm, SwiGLU and RoPE for the model's family, patched into transformers before it loads."""
    _need_cuda("liger_kernels", device)
    try:
        from liger_kernel.transformers import monkey_patch
    except ImportError:
        raise ConfigError("liger_kernels: needs liger-kernel (pip install '.[gpu]')") from None
    patch = getattr(monkey_patch, f"apply_liger_kernel_to_{model_type}", None)
    if patch is None:
        raise ConfigError(f"liger_kernels: liger has no kernels for model type {model_type!r}")
    patch(rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False)


def attention_kwargs(attention: str, device: str) -> dict:
    """``from_pretrained`` arguments for the ``attention`` setting (none for auto: transformers' default)."""
    if attention == "auto":
        return {}
    if attention == "flash_attention_2":
        _need_cuda("attention: flash_attention_2", device)
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            raise ConfigError("attention: flash_attention_2 needs flash-attn (pip install flash-attn)") from None
    return {"attn_implementation": attention}


def offloaded_adamw(params, cfg, device: str):
    """AdamW with its moments and its step on the CPU (torchao), the weights and gradients on the GPU."""
    _need_cuda("optimizer_offload", device)
    try:
        from torchao.optim import CPUOffloadOptimizer
    except ImportError:
        raise ConfigError("optimizer_offload: needs torchao (pip install '.[gpu]')") from None
    return CPUOffloadOptimizer(
        params, torch.optim.AdamW, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True
    )


def apply_fp8(model, device: str) -> int:
    """torchao float8 training on every Linear whose shapes the kernels take (both dims multiples of 16), the
    LM head left in bf16; returns how many were converted."""
    _need_cuda("fp8", device)
    if torch.cuda.get_device_capability() < (8, 9):
        raise ConfigError("fp8: needs compute capability 8.9+ (Ada, Hopper); this GPU has less")
    try:
        from torchao.float8 import convert_to_float8_training
    except ImportError:
        raise ConfigError("fp8: needs torchao (pip install '.[gpu]')") from None
    converted = []

    def wanted(mod: nn.Module, fqn: str) -> bool:
        ok = isinstance(mod, nn.Linear) and "lm_head" not in fqn and mod.in_features % 16 == 0
        ok = ok and mod.out_features % 16 == 0
        if ok:
            converted.append(fqn)
        return ok

    convert_to_float8_training(model, module_filter_fn=wanted)
    return len(converted)


def apply_compile(model, how: str, layers: list[nn.Module]) -> None:
    """``torch.compile`` in place (the state dict keeps its names): the whole model, or each decoder layer."""
    if how == "off":
        return
    if how == "model":
        model.compile()
        return
    for layer in layers:
        layer.compile()
