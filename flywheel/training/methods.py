"""Parameter-efficient fine-tuning methods behind one switch, ``SftConfig.method``.

    model, info = apply_method(model, cfg)           # freezes the base, adds the method's weights
    save_trained(model, cfg, out_dir, tok)           # adapter folder (or the whole model for `full`)
    model = load_trained(base_model, adapter_dir)    # same logits as before saving

Seven methods come from peft (``lora``, ``qlora``, ``dora``, ``ia3``, ``prompt_tuning``,
``prefix_tuning``) or need no adapter at all (``full``). Three are ours, because peft has no
bottleneck adapters and nobody ships the two gated mixes:

- ``adapter``: a bottleneck (down -> SiLU -> up, up initialised at zero) parallel to every FFN:
  ``mlp(x) + up(act(down(x)))`` (He et al. 2022 found the parallel placement better than Houlsby's
  serial one).
- ``unipelt`` (Mao et al. 2022): in every layer LoRA on ``target_modules``, a prefix of
  ``num_virtual_tokens`` keys/values, and a parallel FFN adapter, each scaled by a learned gate, so
  training decides per layer which method matters. LoRA and adapter gates are per token,
  ``sigmoid(w . x + b)`` from the sub-layer's input, as in the paper. The prefix gate is per layer and
  multiplies the prefix's un-normalised attention weights (``exp(q.k) * g``, i.e. ``log g`` added to the
  prefix logits): at g -> 0 the prefix vanishes exactly, which the paper's ``g * P_k`` cannot do (a zero
  key still takes softmax mass). Gates start at sigmoid(-2) = 0.12 for the prefix, 0.5 for the others.
- ``moe_adapter``: the FFN adapter split into ``num_experts`` bottleneck experts with a linear router;
  each token goes to its ``top_k`` experts, weighted by the renormalised router softmax, plus Switch
  Transformer's load-balancing loss ``E * sum_e f_e * p_e`` (weight ``router_aux_loss``).

Merging for serving: ``full`` is the model; ``lora``, ``dora`` and ``ia3`` merge into the base weights
(``merge_and_unload``: no extra latency); ``prompt_tuning``, ``prefix_tuning``, ``adapter``,
``unipelt`` and ``moe_adapter`` cannot (the prefix, the input-dependent gates and the router are not
linear maps of the weights) and are served with their modules in place.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from flywheel.core.errors import ConfigError, MethodUnavailable
from flywheel.training.config import SftConfig

PEFT_LIBRARY = {"lora", "qlora", "dora", "ia3", "prompt_tuning", "prefix_tuning"}
OURS = {"adapter", "unipelt", "moe_adapter"}
MERGEABLE = {"full", "lora", "dora", "ia3"}
ADAPTER_FILE = "flywheel_adapter.safetensors"
ADAPTER_META = "flywheel_adapter.json"
ATTENTION = "flywheel_sdpa"


@dataclass
class MethodInfo:
    method: str
    trainable_params: int
    total_params: int
    mergeable: bool


# --------------------------------------------------------------------------- our modules


class Bottleneck(nn.Module):
    """down -> SiLU -> up; ``up`` starts at zero so the model is unchanged before training."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.down = nn.Linear(dim, width)
        self.up = nn.Linear(width, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        return self.up(nn.functional.silu(self.down(x)))


class Gate(nn.Module):
    """Per-token scalar gate sigmoid(w . x + b) (UniPELT)."""

    def __init__(self, dim: int, bias: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(dim, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.constant_(self.proj.bias, bias)

    def forward(self, x):
        return torch.sigmoid(self.proj(x))


class MoEAdapter(nn.Module):
    """``num_experts`` bottlenecks and a router; top-k routing; Switch load-balancing loss in ``aux_loss``."""

    def __init__(self, dim: int, width: int, experts: int, top_k: int):
        super().__init__()
        self.router = nn.Linear(dim, experts, bias=False)
        nn.init.normal_(self.router.weight, std=0.02)
        self.experts = nn.ModuleList(Bottleneck(dim, width) for _ in range(experts))
        self.top_k = top_k
        self.aux_loss = None
        self.token_mask = None  # [B, S] of the batch being trained: padding is neither routed nor counted

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        probs = torch.softmax(self.router(flat).float(), dim=-1)  # [T, E]
        weights, chosen = probs.topk(self.top_k, dim=-1)  # [T, k]
        weights = (weights / weights.sum(-1, keepdim=True)).to(x.dtype)
        tm = self.token_mask
        real = tm.reshape(-1).bool() if tm is not None and tm.numel() == flat.shape[0] else None
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            rows, slot = (chosen == e).nonzero(as_tuple=True)
            if real is not None:
                keep = real[rows]
                rows, slot = rows[keep], slot[keep]
            if rows.numel():
                out.index_add_(0, rows, (expert(flat[rows]) * weights[rows, slot, None]).to(out.dtype))
        if self.training:
            # Switch Transformer: E * sum_e (fraction of tokens whose first choice is e) * (mean router prob of e),
            # over real tokens only. Counting the padding tail of packed rows gave non-finite gradients on CUDA
            # (H200, bench/RESULTS.md), and padding should not steer the router anyway.
            p, c = (probs[real], chosen[real]) if real is not None else (probs, chosen)
            n = probs.shape[-1]
            frac = torch.bincount(c[:, 0], minlength=n).to(probs.dtype) / max(1, c.shape[0])
            self.aux_loss = n * (frac * p.mean(0)).sum()
        return out.reshape(x.shape)


class AdaptedMLP(nn.Module):
    """The layer's FFN plus a parallel adapter (optionally gated): ``mlp(x) + g(x) * adapter(x)``."""

    def __init__(self, mlp: nn.Module, adapter: nn.Module, gate: Gate | None = None):
        super().__init__()
        self.mlp = mlp
        self.flywheel_adapter = adapter
        self.flywheel_gate = gate

    def forward(self, x):
        extra = self.flywheel_adapter(x)
        if self.flywheel_gate is not None:
            extra = extra * self.flywheel_gate(x)
        return self.mlp(x) + extra


class GatedLoRA(nn.Module):
    """``base(x) + g(x) * (alpha/r) * B(A(dropout(x)))``, B initialised at zero (UniPELT's LoRA part)."""

    def __init__(self, base: nn.Linear, r: int, alpha: int, dropout: float):
        super().__init__()
        self.base = base
        self.lora_a = nn.Linear(base.in_features, r, bias=False)
        self.lora_b = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)
        self.scale = alpha / r
        self.dropout = nn.Dropout(dropout)
        self.gate = Gate(base.in_features)

    def forward(self, x):
        return self.base(x) + self.gate(x) * self.lora_b(self.lora_a(self.dropout(x))) * self.scale


class GatedPrefix(nn.Module):
    """Per-layer prefix keys/values [kv_heads, L, head_dim] and a gate on their attention weights."""

    def __init__(self, kv_heads: int, length: int, head_dim: int):
        super().__init__()
        self.key = nn.Parameter(torch.randn(kv_heads, length, head_dim) * 0.02)
        self.value = nn.Parameter(torch.zeros(kv_heads, length, head_dim))
        self.gate_logit = nn.Parameter(torch.tensor(-2.0))

    def forward(self, batch: int, dtype):
        k = self.key.to(dtype).unsqueeze(0).expand(batch, -1, -1, -1)
        v = self.value.to(dtype).unsqueeze(0).expand(batch, -1, -1, -1)
        return k, v, nn.functional.logsigmoid(self.gate_logit)  # log g, added to the prefix logits


def _prefix_attention(module, query, key, value, attention_mask, **kwargs):
    """SDPA with the module's gated prefix (if any) prepended to the keys and values.

    Registered as attention implementation ``flywheel_sdpa`` so it works for any model whose attention
    calls transformers' attention interface (Llama, Mistral, Qwen2, ...), with and without a KV cache:
    the prefix is added here, after the cache update, and never stored in the cache.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    prefix = getattr(module, "flywheel_prefix", None)
    if prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    b, _, q_len, _ = query.shape
    k_len = key.shape[2]
    pk, pv, log_gate = prefix(b, query.dtype)
    if attention_mask is None:  # causal, the queries being the last q_len positions of the keys
        allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)[None, None]
        real = torch.zeros(allowed.shape, dtype=query.dtype, device=query.device).masked_fill(~allowed, float("-inf"))
    elif attention_mask.dtype == torch.bool:
        allowed = attention_mask[..., :k_len]
        real = torch.zeros(allowed.shape, dtype=query.dtype, device=query.device).masked_fill(~allowed, float("-inf"))
    else:
        real = attention_mask[..., :k_len].to(query.dtype)
    pre = log_gate.to(query.dtype).expand(real.shape[0], 1, real.shape[2], pk.shape[2])
    mask = torch.cat([pre, real.expand(real.shape[0], 1, real.shape[2], k_len)], dim=-1)
    kwargs.pop("is_causal", None)
    return sdpa_attention_forward(
        module, query, torch.cat([pk, key], 2), torch.cat([pv, value], 2), mask, is_causal=False, **kwargs
    )


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, _prefix_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def _layers(model) -> list[nn.Module]:
    for path in ("model.layers", "model.decoder.layers", "transformer.h"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return list(obj)
    raise ValueError(f"{type(model).__name__}: no decoder layers found (expected model.layers)")


def _add_ours(model, cfg: SftConfig) -> None:
    hidden = model.config.hidden_size
    for layer in _layers(model):
        if cfg.method == "adapter":
            layer.mlp = AdaptedMLP(layer.mlp, Bottleneck(hidden, cfg.adapter_dim))
        elif cfg.method == "moe_adapter":
            layer.mlp = AdaptedMLP(layer.mlp, MoEAdapter(hidden, cfg.adapter_dim, cfg.num_experts, cfg.top_k))
        elif cfg.method == "unipelt":
            layer.mlp = AdaptedMLP(layer.mlp, Bottleneck(hidden, cfg.adapter_dim), Gate(hidden))
            for parent in (layer.self_attn, layer.mlp.mlp):
                for name in cfg.target_modules:
                    child = getattr(parent, name, None)
                    if isinstance(child, nn.Linear):
                        setattr(parent, name, GatedLoRA(child, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout))
            attn = layer.self_attn
            kv_heads = model.config.num_key_value_heads
            head_dim = getattr(model.config, "head_dim", None) or hidden // model.config.num_attention_heads
            attn.flywheel_prefix = GatedPrefix(kv_heads, cfg.num_virtual_tokens, head_dim)
    if cfg.method == "unipelt":
        _register_attention()
        model.config._attn_implementation = ATTENTION
    for module in model.modules():  # train exactly our modules' weights (a GatedLoRA's base stays frozen)
        if isinstance(module, (Bottleneck, Gate, MoEAdapter, GatedPrefix)):
            module.requires_grad_(True)
        elif isinstance(module, GatedLoRA):
            module.lora_a.requires_grad_(True)
            module.lora_b.requires_grad_(True)


def _peft_config(cfg: SftConfig):
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, PromptTuningInit

    if cfg.method in ("lora", "qlora", "dora"):
        return LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.target_modules,
            use_dora=cfg.method == "dora",
            task_type="CAUSAL_LM",
        )
    if cfg.method == "ia3":
        return IA3Config(
            target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"], task_type="CAUSAL_LM"
        )
    if cfg.method == "prompt_tuning":
        # Virtual tokens start as embeddings of random vocabulary tokens (trains faster than noise).
        return PromptTuningConfig(
            num_virtual_tokens=cfg.num_virtual_tokens,
            task_type="CAUSAL_LM",
            prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB,
        )
    if cfg.method == "prefix_tuning":
        # The reparameterisation MLP of the prefix-tuning paper (Li & Liang 2021): more stable than raw prefixes.
        return PrefixTuningConfig(
            num_virtual_tokens=cfg.num_virtual_tokens,
            task_type="CAUSAL_LM",
            prefix_projection=True,
            encoder_hidden_size=cfg.adapter_dim * 4,
        )
    raise ValueError(cfg.method)


def qlora_base(path: str | Path, dtype, **load):
    """The 4-bit NF4 base model QLoRA trains on (CUDA + bitsandbytes only)."""
    if not torch.cuda.is_available():
        raise MethodUnavailable("method qlora: needs a CUDA GPU (4-bit NF4 weights via bitsandbytes); use lora on CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MethodUnavailable("method qlora: bitsandbytes is not installed (pip install '.[gpu]')") from None
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
    )
    return AutoModelForCausalLM.from_pretrained(
        str(path), quantization_config=quant, dtype=dtype, device_map={"": 0}, **load
    )


def apply_method(model, cfg: SftConfig):
    """Freeze the base and add the method's trainable weights; returns (model, MethodInfo)."""
    total = sum(p.numel() for p in model.parameters())
    if cfg.method == "full":
        for p in model.parameters():
            p.requires_grad = True
    elif cfg.method in PEFT_LIBRARY:
        import warnings

        from peft import get_peft_model, prepare_model_for_kbit_training

        if cfg.method == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        with warnings.catch_warnings():  # peft 0.21 still asks transformers 5 the deprecated is_gradient_checkpointing
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(model, _peft_config(cfg))
    elif cfg.method in OURS:
        for p in model.parameters():
            p.requires_grad = False
        _add_ours(model, cfg)
    else:
        raise ValueError(f"method {cfg.method!r}: unknown")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, MethodInfo(cfg.method, int(trainable), int(total), cfg.method in MERGEABLE)


def set_token_mask(model, mask) -> None:
    """Tell the MoE routers which positions of the next batch are real tokens (None: all)."""
    for m in model.modules():
        if isinstance(m, MoEAdapter):
            m.token_mask = mask


def aux_loss(model) -> torch.Tensor | None:
    """Sum of the MoE routers' load-balancing losses of the last forward (None for other methods)."""
    losses = [m.aux_loss for m in model.modules() if isinstance(m, MoEAdapter) and m.aux_loss is not None]
    return torch.stack(losses).sum() if losses else None


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def save_trained(
    model, cfg: SftConfig, out_dir: str | Path, tok=None, base_model_path: str | None = None, weights=None
) -> Path:
    """Write the trained result: a peft adapter folder, our adapter folder, or the full model. ``weights``: the
    trained weights gathered from an FSDP-sharded model (name -> full tensor), written instead of the model's."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # DistributedDataParallel
    if cfg.method in OURS:
        from safetensors.torch import save_file

        state = weights if weights is not None else trainable_state(model)
        save_file({k: v.contiguous().cpu() for k, v in state.items()}, str(out_dir / ADAPTER_FILE))
        (out_dir / ADAPTER_META).write_text(
            json.dumps({"method": cfg.method, "config": cfg.model_dump(), "base_model_path": base_model_path}, indent=2)
        )
    elif weights is not None:  # peft filters its adapter's weights from the dict; `full` has all of them
        model.save_pretrained(str(out_dir), state_dict={k: v.cpu() for k, v in weights.items()})
    else:
        model.save_pretrained(str(out_dir))  # peft adapter, or the whole model for `full`
    if tok is not None:
        tok.save_pretrained(str(out_dir))
    return out_dir


def warm_start(model, cfg: SftConfig, folder: str | Path) -> int:
    """Load a trained adapter's weights into the model's freshly added trainable ones (``init_adapter``: a
    cycle continues from the champion instead of from the base). Same method and shape, or a ConfigError that
    says what differs. Returns the number of tensors loaded."""
    folder = Path(folder)
    kind = adapter_kind(folder)
    if cfg.method == "full" or kind in ("none", "full"):
        raise ConfigError(f"init_adapter: {folder} is not an adapter for method {cfg.method} (kind {kind})")
    if (kind == "peft") != (cfg.method in PEFT_LIBRARY):
        raise ConfigError(f"init_adapter: {folder} holds a {kind} adapter, method {cfg.method} needs the other kind")
    if kind == "peft":
        from peft import load_peft_weights, set_peft_model_state_dict

        state = load_peft_weights(str(folder), device="cpu")
        try:
            res = set_peft_model_state_dict(model, state)
        except RuntimeError as e:  # a size mismatch: another rank or other target modules
            first = str(e).splitlines()[0]
            raise ConfigError(f"init_adapter: {folder} does not fit sft.{cfg.method} ({first})") from None
        if res.unexpected_keys:
            raise ConfigError(f"init_adapter: {folder} has weights this config lacks, e.g. {res.unexpected_keys[0]}")
        return len(state)
    from safetensors.torch import load_file

    state = load_file(str(folder / ADAPTER_FILE))
    mine = trainable_state(model)
    if set(mine) != set(state) or any(mine[k].shape != state[k].shape for k in mine):
        raise ConfigError(f"init_adapter: {folder} has other adapter weights than sft.{cfg.method} here")
    model.load_state_dict(state, strict=False)
    return len(state)


def adapter_kind(folder: str | Path) -> str:
    """'peft', 'flywheel', 'full' or 'none' for a trained-output folder."""
    folder = Path(folder)
    if (folder / "adapter_config.json").exists():
        return "peft"
    if (folder / ADAPTER_META).exists():
        return "flywheel"
    if (folder / "config.json").exists():
        return "full"
    return "none"


def load_trained(model, folder: str | Path, merge: bool = True):
    """Attach a trained adapter folder to a loaded base ``model`` (for `full`, load the folder itself instead).

    peft adapters of mergeable methods are merged (no extra latency at inference)."""
    folder = Path(folder)
    kind = adapter_kind(folder)
    if kind == "peft":
        from peft import PeftConfig, PeftModel

        model = PeftModel.from_pretrained(model, str(folder))
        peft_type = str(PeftConfig.from_pretrained(str(folder)).peft_type).split(".")[-1].lower()
        if merge and peft_type in ("lora", "ia3"):  # DoRA is a LoRA config with use_dora: merges too
            model = model.merge_and_unload()
        return model
    if kind == "flywheel":
        from safetensors.torch import load_file

        meta = json.loads((folder / ADAPTER_META).read_text())
        cfg = SftConfig.model_validate(meta["config"])
        model, _ = apply_method(model, cfg)
        state = load_file(str(folder / ADAPTER_FILE))
        missing = set(trainable_state(model)) - set(state)
        if missing:
            raise ValueError(f"{folder}: adapter lacks {len(missing)} weights, e.g. {sorted(missing)[0]}")
        model.load_state_dict(state, strict=False)
        for p in model.parameters():
            p.requires_grad = False
        return model
    raise ValueError(f"{folder}: not an adapter folder (no adapter_config.json or {ADAPTER_META})")
