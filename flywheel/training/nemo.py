"""NeMo backend (``backend: nemo``, extra ``nemo``, CUDA): the same TrainConfig, run by NeMo 2 for large models.

NeMo brings what a single-process recipe lacks at scale: tensor/pipeline/sequence parallelism,
FP8, distributed optimizers. Here it trains through NeMo's AutoModel path, which fine-tunes a Hugging
Face model folder in place (no checkpoint conversion), with ``llm.finetune``:

    model = llm.HFAutoModelForCausalLM(model_name=<local folder>)
    llm.finetune(model=model, data=llm.FineTuningDataModule(dataset_root=<jsonl folder>, ...),
                 trainer=nl.Trainer(devices=..., strategy=..., max_steps=...), peft=llm.peft.LoRA(dim=r))

Methods NeMo 2 offers: ``full``, ``lora`` and ``dora`` (the others are ours or peft's: use
``backend: torch``). SFT only; DPO runs on the torch backend. This module is import-guarded: on a machine
without ``nemo_toolkit`` (this project's CPU boxes) it raises ConfigError naming the extra, and nothing
here has run against a real NeMo install yet (README: "NeMo backend").
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from flywheel.core.errors import ConfigError
from flywheel.training.config import TrainConfig

NEMO_METHODS = ("full", "lora", "dora")


def check(cfg: TrainConfig) -> None:
    rcfg = cfg.recipe_config()
    if cfg.recipe != "sft":
        raise ConfigError("backend: nemo runs the sft recipe only (DPO runs on backend: torch)")
    if rcfg.method not in NEMO_METHODS:
        raise ConfigError(
            f"method: {rcfg.method} is not offered by NeMo 2 (it has {', '.join(NEMO_METHODS)}); use backend: torch"
        )
    try:
        import nemo  # noqa: F401
        from nemo.collections import llm  # noqa: F401
    except ImportError:
        raise ConfigError(
            "backend: nemo needs NeMo 2 (pip install '.[nemo]' in the checkout, CUDA machines); "
            "backend: torch runs every method here"
        ) from None


def nemo_jsonl(rows: list[dict], system_prompt: str, folder: Path) -> Path:
    """NeMo's fine-tuning data format: one {"input", "output"} object per line (training.jsonl)."""
    from flywheel.training.data import conversation

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "training.jsonl", "w") as f:
        for row in rows:
            msgs = conversation(row, system_prompt)
            prompt = "\n".join(f"{m['role']}: {m['content']}" for m in msgs[:-1])
            f.write(json.dumps({"input": prompt, "output": msgs[-1]["content"]}) + "\n")
    return folder


def train_nemo(rows: list[dict], cfg: TrainConfig, out_dir: Path, models_dir: Path):
    check(cfg)
    import torch
    from nemo import lightning as nl
    from nemo.collections import llm

    from flywheel.training.models import resolve_base_model
    from flywheel.training.recipe import TrainResult

    rcfg = cfg.recipe_config()
    base = resolve_base_model(rcfg.base_model, models_dir)
    data = llm.FineTuningDataModule(
        dataset_root=str(nemo_jsonl(rows, cfg.system_prompt, out_dir / "nemo-data")),
        seq_length=rcfg.max_seq_length,
        micro_batch_size=rcfg.batch_size,
        global_batch_size=rcfg.batch_size * max(1, torch.cuda.device_count()),
    )
    peft = (
        None
        if rcfg.method == "full"
        else (llm.peft.DoRA if rcfg.method == "dora" else llm.peft.LoRA)(
            dim=rcfg.lora_r, alpha=rcfg.lora_alpha, dropout=rcfg.lora_dropout
        )
    )
    trainer = nl.Trainer(
        devices=max(1, torch.cuda.device_count()),
        max_steps=rcfg.max_steps,
        accelerator="gpu",
        strategy=nl.MegatronStrategy() if rcfg.method != "full" else "auto",
        plugins=nl.MegatronMixedPrecision(precision="bf16-mixed"),
        log_every_n_steps=1,
    )
    t0 = time.perf_counter()
    llm.finetune(
        model=llm.HFAutoModelForCausalLM(model_name=str(base)),
        data=data,
        trainer=trainer,
        peft=peft,
        log=nl.NeMoLogger(log_dir=str(out_dir / "nemo")),
    )  # NeMo's default optimizer and schedule
    nan = float("nan")  # losses live in NeMo's own logs (out_dir/nemo)
    return TrainResult(
        adapter_dir=str(out_dir / "nemo"),
        recipe="sft",
        method=rcfg.method,
        base_model=rcfg.base_model,
        base_model_path=str(base),
        steps=rcfg.max_steps,
        examples=len(rows),
        train_loss=nan,
        final_loss=nan,
        losses=[nan],
        seconds=time.perf_counter() - t0,
        device="cuda",
    )
