"""What the SFT and DPO recipes share: device and process group, model set-up, schedule, checkpoints.

The loops themselves stay in ``sft.py`` and ``dpo.py`` (torchtune-style: a reader sees batch, forward,
backward, clip, step, schedule). This module holds what would otherwise be written twice.

Checkpoints (``<out>/checkpoints/step-<N>/``, written to a temporary folder and renamed, so a kill -9
leaves either the old or the new one): the trainable weights (safetensors), the optimizer state, the
RNG states (Python, torch, CUDA), the data order and the loss history. The schedule is a pure function
of the step, so restoring the step restores it. Resuming continues at step N+1 with the same batches
and the same dropout masks as an uninterrupted run.

Multi-GPU: the same recipe under ``torchrun --nproc_per_node G`` (``flywheel train --nproc G``) runs
DistributedDataParallel (NCCL on CUDA, gloo on CPU); each rank takes its share of a global batch of
``batch_size x G`` examples; rank 0 writes checkpoints and the result.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.training.config import SftConfig
from flywheel.training.kernels import (
    apply_compile,
    apply_fp8,
    apply_liger,
    attention_kwargs,
    base_of,
    offloaded_adamw,
)
from flywheel.training.methods import (
    MethodInfo,
    _layers,
    apply_method,
    aux_loss,
    qlora_base,
    set_token_mask,
    trainable_state,
    warm_start,
)
from flywheel.training.models import pick_device, resolve_base_model


@dataclass
class Runtime:
    device: str
    bf16: bool
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def runtime(cfg: SftConfig) -> Runtime:
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = pick_device(cfg.device)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        if device == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    return Runtime(device, bf16, rank, world)


def build_model(cfg: SftConfig, models_dir, rt: Runtime):
    """Base model + tokenizer + the method's trainable weights, on the device, in train mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from flywheel.training.flops import matmul_params

    base_path = resolve_base_model(cfg.base_model, models_dir)
    if cfg.liger_kernels:  # patched into transformers' classes before the model is built
        from transformers import AutoConfig

        apply_liger(rt.device, AutoConfig.from_pretrained(str(base_path)).model_type)
    tok = AutoTokenizer.from_pretrained(str(base_path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(cfg.seed)
    # PEFT on GPUs: the frozen base in bf16 (half the memory traffic, no per-step casts); trainable
    # weights stay fp32 and autocast runs the matmuls in bf16. Full fine-tuning keeps fp32 master weights.
    dtype = torch.bfloat16 if rt.bf16 and cfg.method != "full" else torch.float32
    attention = attention_kwargs(cfg.attention, rt.device)
    if cfg.method == "qlora":
        model = qlora_base(base_path, torch.bfloat16 if rt.bf16 else torch.float16, **attention)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=dtype, **attention)
    n_matmul = matmul_params(model)
    model, info = apply_method(model, cfg)
    if cfg.init_adapter:  # continue from a trained adapter (a cycle warm-started from the champion)
        warm_start(model, cfg, cfg.init_adapter)
    for p in model.parameters():  # trainable weights in fp32 even over a bf16 base
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    if cfg.method != "qlora":
        model.to(rt.device)
    if cfg.fp8:
        apply_fp8(model, rt.device)
    model.train()
    checkpointing = cfg.gradient_checkpointing == "on" or (
        cfg.gradient_checkpointing == "auto" and rt.device.startswith("cuda")
    )
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    apply_compile(model, cfg.compile, _layers(base_of(model)))
    return model, tok, base_path, info, n_matmul, checkpointing


def optimizer(model, cfg: SftConfig, rt: Runtime):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer_offload:
        return offloaded_adamw(params, cfg, rt.device), params
    return torch.optim.AdamW(
        params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=rt.device.startswith("cuda")
    ), params


def sharded(cfg: SftConfig, rt: Runtime) -> bool:
    return rt.world > 1 and cfg.parallel == "fsdp"


def shard(model, cfg: SftConfig, rt: Runtime):
    """``parallel: fsdp`` with several ranks: FSDP2 (``fully_shard``) on each decoder layer, then the whole model —
    weights, gradients and optimizer state split across the ranks. Before the optimizer is built (the parameters
    become DTensors in place)."""
    if not sharded(cfg, rt):
        return model
    from torch.distributed.fsdp import fully_shard

    for layer in _layers(base_of(model)):
        fully_shard(layer)
    fully_shard(model)
    return model


def gather_trainable(model) -> dict:
    """name -> full tensor of every trainable weight of an FSDP-sharded model: a collective (every rank calls it)."""
    return {n: p.detach().full_tensor() for n, p in model.named_parameters() if p.requires_grad}


def wrap_distributed(model, cfg: SftConfig, rt: Runtime):
    if rt.world == 1 or sharded(cfg, rt):  # FSDP2 shards in place (shard), no wrapper
        return model
    from torch.nn.parallel import DistributedDataParallel

    # moe_adapter routes each token to top_k experts: some experts get no gradient in a step.
    return DistributedDataParallel(
        model,
        device_ids=[int(rt.device.split(":")[1])] if ":" in rt.device else None,
        find_unused_parameters=cfg.method == "moe_adapter",
    )


def lr_at(step: int, cfg: SftConfig) -> float:
    """Linear warmup over ``warmup_ratio`` of the steps, then cosine to zero."""
    warm = max(1, int(cfg.max_steps * cfg.warmup_ratio))
    if step < warm:
        return cfg.learning_rate * (step + 1) / warm
    progress = (step - warm) / max(1, cfg.max_steps - warm)
    return cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * progress))


def before_step(step: int, cfg: SftConfig, opt, model, mask) -> None:
    """Before a step's forward: the scheduled learning rate, and the MoE router's token mask (padding is not routed)."""
    for g in opt.param_groups:
        g["lr"] = lr_at(step, cfg)
    if cfg.method == "moe_adapter":
        set_token_mask(model, mask)


def optimizer_step(loss, model, cfg: SftConfig, params, opt) -> None:
    """The loss plus the MoE balancing loss (weighted by ``router_aux_loss``) backward, gradients clipped
    to norm 1, one optimizer step, gradients zeroed."""
    import torch

    extra = aux_loss(model)
    total = loss + cfg.router_aux_loss * extra if extra is not None else loss
    total.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


@dataclass
class TrainState:
    """Everything besides weights and optimizer that a resumed run needs to continue identically."""

    step: int = 0
    order: list[int] = field(default_factory=list)
    rng: list | None = None
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    resumed_from: int | None = None


class Batches:
    """Epochs of shuffled example indices, as many as the steps need; its state goes into checkpoints."""

    def __init__(self, n: int, seed: int, state: TrainState):
        self.n = n
        self.state = state
        self.rng = random.Random(seed)
        if state.rng is not None:
            self.rng.setstate(_tuples(state.rng))

    def take(self, batch_size: int, rt: Runtime) -> list[int]:
        """This rank's ``batch_size`` examples of the next global batch of ``batch_size x world``."""
        k = batch_size * rt.world
        out = []
        while len(out) < k:
            if not self.state.order:
                self.state.order = list(range(self.n))
                self.rng.shuffle(self.state.order)
            out.append(self.state.order.pop())
        self.state.rng = list(self.rng.getstate())
        return out[rt.rank * batch_size : (rt.rank + 1) * batch_size]


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


class Checkpoints:
    def __init__(self, root: str | Path, keep: int, fsdp: bool = False):
        """``fsdp``: the model is sharded (FSDP2): saving gathers the full weights and optimizer state on every
        rank (a collective) and rank 0 writes them; restoring shards them again."""
        self.root = Path(root)
        self.keep = keep
        self.fsdp = fsdp

    def all(self) -> list[Path]:
        if not self.root.exists():
            return []
        done = [p for p in self.root.glob("step-*") if (p / "state.json").exists() and not p.name.endswith(".tmp")]
        return sorted(done, key=lambda p: int(p.name.split("-")[1]))

    def latest(self) -> Path | None:
        found = self.all()
        return found[-1] if found else None

    def save(self, model, opt, state: TrainState, main: bool = True) -> Path | None:
        import torch
        from safetensors.torch import save_file

        model = getattr(model, "module", model)
        if self.fsdp:  # every rank: gather; rank 0: write
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            weights = gather_trainable(model)
            full = StateDictOptions(full_state_dict=True, cpu_offload=True)
            optim = get_optimizer_state_dict(model, opt, options=full)
            if not main:
                return None
        else:
            weights, optim = trainable_state(model), opt.state_dict()
        final = self.root / f"step-{state.step}"
        tmp = self.root / f"step-{state.step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous().cpu() for k, v in weights.items()}, str(tmp / "trainable.safetensors"))
        torch.save(optim, tmp / "optimizer.pt")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, tmp / "rng.pt")
        (tmp / "state.json").write_text(
            json.dumps({**state.__dict__, "scheduler": {"kind": "warmup-cosine", "step": state.step}})
        )
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in self.all()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def restore(self, model, opt, path: Path) -> TrainState:
        import torch
        from safetensors.torch import load_file

        inner = getattr(model, "module", model)
        weights = load_file(str(path / "trainable.safetensors"))
        missing = set(trainable_state(inner)) - set(weights)
        if missing:
            raise ValueError(
                f"checkpoint {path}: does not match this config ({len(missing)} trainable weights missing, "
                f"e.g. {sorted(missing)[0]})"
            )
        optim = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
        with torch.no_grad():
            for name, p in inner.named_parameters():
                if name not in weights:
                    continue
                full = weights[name].to(p.device, p.dtype)
                if self.fsdp:  # this rank's shard of the full weight
                    from torch.distributed.tensor import distribute_tensor

                    full = distribute_tensor(full, p.device_mesh, p.placements)
                p.copy_(full)
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(inner, opt, optim, options=StateDictOptions(full_state_dict=True))
        else:
            opt.load_state_dict(optim)
        rng = torch.load(path / "rng.pt", weights_only=False)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        data = json.loads((path / "state.json").read_text())
        data.pop("scheduler", None)
        state = TrainState(**data)
        state.resumed_from = state.step
        return state


def start_state(ckpts: Checkpoints, model, opt, resume: bool, log=print) -> TrainState:
    """Fresh state, or the latest checkpoint's when resuming; refuses to overwrite an earlier run's checkpoints."""
    latest = ckpts.latest()
    if resume and latest is not None:
        state = ckpts.restore(model, opt, latest)
        log(f"resuming from {latest} (step {state.step})")
        return state
    if not resume and latest is not None:
        raise FileExistsError(
            f"{ckpts.root} holds checkpoints of an earlier run (latest {latest.name}): "
            "resume it (--resume) or remove the folder"
        )
    return TrainState()


def reduce_mean(value: float, rt: Runtime) -> float:
    if rt.world == 1:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return float(t.item()) / rt.world


def reduce_sum(value: int, rt: Runtime) -> int:
    if rt.world == 1:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return int(t.item())


def model_shape(model) -> tuple[int, int]:
    """(layers, attention width = heads x head dim) from the model config."""
    cfg = getattr(model, "config", None) or model.get_base_model().config
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return cfg.num_hidden_layers, heads * head_dim


@dataclass
class TrainResult:
    adapter_dir: str
    recipe: str
    method: str
    base_model: str
    base_model_path: str
    steps: int
    examples: int
    train_loss: float
    final_loss: float
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    tokens_per_second: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
    device: str = "cpu"
    mfu: float = 0.0
    flops_per_token: float = 0.0
    peak_flops: float = 0.0
    peak_source: str = ""
    gradient_checkpointing: bool = False
    mergeable: bool = False
    data_counts: dict = field(default_factory=dict)
    resumed_from: int | None = None
    world_size: int = 1

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "model"}


class Meter:
    """Per-step bookkeeping the recipes share: tokens, model FLOPs, the loss history (a non-finite loss stops
    the run), the progress callback and periodic checkpoints; at the end, the TrainResult."""

    def __init__(
        self,
        cfg: SftConfig,
        rt: Runtime,
        state: TrainState,
        ckpts: Checkpoints,
        model,
        opt,
        info: MethodInfo,
        n_matmul: int,
        on_step=None,
    ):
        import time

        from flywheel.training.flops import peak_flops

        self.cfg, self.rt, self.state, self.ckpts, self.model, self.opt = cfg, rt, state, ckpts, model, opt
        self.info, self.n_matmul, self.on_step = info, n_matmul, on_step
        self.layers, self.attn_dim = model_shape(model)
        self.peak, self.peak_source = peak_flops(rt.device, rt.bf16)
        self.flops, self.tokens, self.seconds = 0.0, 0, 0.0
        self.t0 = time.perf_counter()

    def step(self, step: int, loss, mask) -> None:
        """After optimizer step ``step`` (0-based): ``loss`` is the step's loss tensor, ``mask`` its token mask."""
        import time

        from flywheel.training.flops import flops_per_token

        cfg, rt, state = self.cfg, self.rt, self.state
        n_tokens = reduce_sum(int(mask.sum()), rt)
        self.flops += n_tokens * flops_per_token(
            self.n_matmul,
            self.info.trainable_params if cfg.method != "full" else 0,
            self.layers,
            self.attn_dim,
            float(mask.sum(1).float().mean()),
            cfg.method == "full",
        )
        self.tokens += n_tokens
        state.tokens += n_tokens
        state.losses.append(reduce_mean(float(loss.item()), rt))
        if not math.isfinite(state.losses[-1]):
            raise FloatingPointError(
                f"loss is {state.losses[-1]} at step {step + 1}: lower learning_rate, or resume "
                f"from the last checkpoint in {self.ckpts.root} with other settings"
            )
        state.step = step + 1
        if self.on_step and rt.main:
            self.on_step(state.step, state.losses[-1], self.tokens / (time.perf_counter() - self.t0))
        due = cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < cfg.max_steps
        if due and (rt.main or self.ckpts.fsdp):  # FSDP: every rank takes part in gathering the state
            self.ckpts.save(self.model, self.opt, state, main=rt.main)

    def stop(self) -> None:
        import time

        import torch

        if self.rt.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.t0

    def result(
        self, recipe: str, base_path, adapter_dir, examples: int, data_counts: dict, checkpointing: bool
    ) -> TrainResult:
        cfg, state, info, sec = self.cfg, self.state, self.info, self.seconds
        losses = state.losses
        return TrainResult(
            adapter_dir=str(adapter_dir),
            recipe=recipe,
            method=cfg.method,
            base_model=cfg.base_model,
            base_model_path=str(base_path),
            steps=state.step,
            examples=examples,
            train_loss=sum(losses) / len(losses),
            final_loss=losses[-1],
            losses=losses,
            tokens=state.tokens,
            seconds=sec,
            tokens_per_second=self.tokens / sec if sec else 0.0,
            trainable_params=info.trainable_params,
            total_params=info.total_params,
            device=self.rt.device,
            mfu=(self.flops / sec / self.peak) if sec and self.peak == self.peak else 0.0,
            flops_per_token=self.flops / self.tokens if self.tokens else 0.0,
            peak_flops=self.peak,
            peak_source=self.peak_source,
            gradient_checkpointing=checkpointing,
            mergeable=info.mergeable,
            data_counts=data_counts,
            resumed_from=state.resumed_from,
            world_size=self.rt.world,
        )


def wrap_up(
    meter: Meter,
    model,
    tok,
    base_path,
    out_dir: Path,
    recipe: str,
    examples: int,
    data_counts: dict,
    checkpointing: bool,
    keep_model: bool,
) -> TrainResult:
    """After the loop: the trained weights to ``<out>/adapter`` (rank 0), the process group closed, the result."""
    from flywheel.training.methods import save_trained, set_token_mask

    set_token_mask(model, None)  # inference routes every token it is given
    adapter_dir = Path(out_dir) / "adapter"
    weights = gather_trainable(model) if sharded(meter.cfg, meter.rt) else None  # collective
    if meter.rt.main:
        save_trained(model, meter.cfg, adapter_dir, tok, str(base_path), weights)
    finish(meter.rt)
    result = meter.result(recipe, base_path, adapter_dir, examples, data_counts, checkpointing)
    if keep_model:  # tests compare the in-memory model with the reloaded adapter
        result.model = model.eval()
    return result


def finish(rt: Runtime) -> None:
    if rt.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


__all__ = [
    "Runtime",
    "runtime",
    "build_model",
    "optimizer",
    "wrap_distributed",
    "lr_at",
    "TrainState",
    "Batches",
    "Checkpoints",
    "start_state",
    "reduce_mean",
    "reduce_sum",
    "model_shape",
    "TrainResult",
    "Meter",
    "wrap_up",
    "finish",
    "MethodInfo",
]
