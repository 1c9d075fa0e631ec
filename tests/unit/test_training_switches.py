"""The SFT loop's speed switches keep the numbers (flywheel/training/kernels.py), on the tiny model where each can
run on a CPU: the chunked linear + cross-entropy equals the model's own loss (value and gradients, weighted and
not, through a LoRA wrapper), training with it follows the same loss curve, and so does a regionally compiled
model. The CUDA-only switches (liger, fp8) fail fast on a CPU with the field's name; their numbers are measured
on a GPU (bench/gpu_train.py)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from examples.fraud import generate
from flywheel.core.errors import ConfigError
from flywheel.training.config import SftConfig
from flywheel.training.data import answer_weights, collate, encode_sft_rows, separator_ids
from flywheel.training.kernels import hidden_states_out, linear_cross_entropy
from flywheel.training.sft import train_sft, weighted_loss

SP = "You triage card transactions."


def _batch(tiny_model, n=6):
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    tok.pad_token = tok.pad_token or tok.eos_token
    enc = encode_sft_rows(tok, generate(n, seed=3), SP, 128, "prompt_left").examples
    ids, labels, mask, _ = collate([(i, lab, None) for i, lab in enc], tok.pad_token_id, False)
    return tok, {"input_ids": ids, "attention_mask": mask, "labels": labels, "use_cache": False}


def _fused(model, inputs, weights=None, chunk=7):
    with hidden_states_out(model) as head:
        hidden = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
    return linear_cross_entropy(hidden, head, inputs["labels"], weights, chunk)


@pytest.mark.parametrize("lora", [False, True])
def test_the_chunked_loss_equals_the_models_loss_and_its_gradients(tiny_model, lora):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    _, inputs = _batch(tiny_model)
    trained = [p for p in model.parameters() if p.requires_grad]

    plain = model(**inputs).loss
    g_plain = torch.autograd.grad(plain, trained)
    fused = _fused(model, inputs)  # 7 labelled tokens a chunk: many chunks, a ragged last one
    g_fused = torch.autograd.grad(fused, trained)
    assert fused.item() == pytest.approx(plain.item(), rel=1e-5)
    for a, b in zip(g_plain, g_fused, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    head = model.get_output_embeddings() if not lora else model.get_base_model().get_output_embeddings()
    assert type(head) is torch.nn.Linear  # lent out for one forward, given back


def test_the_chunked_loss_keeps_the_answer_weights(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    tok, inputs = _batch(tiny_model)
    w = answer_weights(inputs["labels"], separator_ids(tok), 3.0, 0.5)
    assert w.unique().numel() > 2  # label and reason tokens weigh differently
    assert _fused(model, inputs, w).item() == pytest.approx(weighted_loss(model, inputs, w).item(), rel=1e-5)


def _curve(tiny_model, tmp_path, name, **switches) -> list[float]:
    cfg = SftConfig(base_model=str(tiny_model), device="cpu", method="lora", max_steps=5, batch_size=4,
                    learning_rate=1e-2, max_seq_length=128, checkpoint_every=0, **switches)  # fmt: skip
    res = train_sft(generate(24, seed=5), cfg, SP, tmp_path / name, tmp_path / "models", log=lambda m: None)
    return res.losses


def test_training_with_the_fused_loss_follows_the_same_curve(tiny_model, tmp_path):
    off = _curve(tiny_model, tmp_path, "off", fused_loss="off")
    chunked = _curve(tiny_model, tmp_path, "chunked", fused_loss="chunked", fused_loss_chunk=16)
    assert len(off) == len(chunked) == 5 and off[0] != off[-1]
    assert chunked == pytest.approx(off, rel=1e-4)


def test_a_regionally_compiled_model_follows_the_same_curve(tiny_model, tmp_path):
    """torch.compile (inductor, CPU) of each decoder layer: the same losses within float tolerance. No LoRA
    dropout here: compiled code draws its dropout masks from another random stream than eager code."""
    torch._dynamo.reset()
    eager = _curve(tiny_model, tmp_path, "eager", lora_dropout=0.0)
    compiled = _curve(tiny_model, tmp_path, "regional", compile="regional", lora_dropout=0.0)
    assert compiled == pytest.approx(eager, rel=1e-3)


def test_dpo_with_the_fused_head_follows_the_same_curve(tiny_model, tmp_path):
    """DPO's per-row log-probabilities from the chunked head: the reference and every step's loss unchanged."""
    from flywheel.training.config import DpoConfig
    from flywheel.training.dpo import train_dpo

    prompts = [r["text"] for r in generate(12, seed=9)]
    rows = [{"prompt": p, "chosen": "LEGIT: normal spend", "rejected": "FRAUD: odd merchant"} for p in prompts]

    def run(name, **switches):
        cfg = DpoConfig(base_model=str(tiny_model), device="cpu", method="lora", max_steps=4, batch_size=4,
                        learning_rate=1e-2, max_seq_length=128, checkpoint_every=0, lora_r=8, lora_dropout=0.0,
                        **switches)  # fmt: skip
        res = train_dpo(rows, cfg, SP, tmp_path / name, tmp_path / "m", log=lambda *_: None)
        return res.losses, (tmp_path / name / "reference_logps.json").read_text()

    off, ref_off = run("off", fused_loss="off")
    chunked, ref_chunked = run("chunked", fused_loss="chunked", fused_loss_chunk=16)
    assert chunked == pytest.approx(off, rel=1e-4) and off[0] != off[-1]
    import json

    flat = [[x for pair in json.loads(r) for x in pair] for r in (ref_off, ref_chunked)]
    assert len(flat[0]) == 24 and flat[1] == pytest.approx(flat[0], rel=1e-5)


def test_packed_rows_give_the_same_curve_with_either_attention_kernel(tiny_model, tmp_path):
    """Packed rows (position ids restart per example): eager attention and SDPA follow the same loss curve."""
    sdpa = _curve(tiny_model, tmp_path, "sdpa", packing=True, lora_dropout=0.0, attention="sdpa")
    eager = _curve(tiny_model, tmp_path, "eager-attn", packing=True, lora_dropout=0.0, attention="eager")
    assert eager == pytest.approx(sdpa, rel=1e-4) and sdpa[0] != sdpa[-1]


def test_the_cuda_switches_fail_fast_on_a_cpu_with_their_name(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="fused_loss: liger: needs a CUDA GPU"):
        _curve(tiny_model, tmp_path, "liger", fused_loss="liger")
    with pytest.raises(ConfigError, match="liger_kernels: needs a CUDA GPU"):
        _curve(tiny_model, tmp_path, "ligerk", liger_kernels=True)
    with pytest.raises(ConfigError, match="optimizer_offload: needs a CUDA GPU"):
        _curve(tiny_model, tmp_path, "offload", optimizer_offload=True)
    with pytest.raises(ConfigError, match="attention: flash_attention_2: needs a CUDA GPU"):
        _curve(tiny_model, tmp_path, "flash", attention="flash_attention_2")
    with pytest.raises(ValueError, match="attention: unipelt brings its own attention"):
        SftConfig(method="unipelt", attention="sdpa")
    with pytest.raises(ValueError, match="fp8: only for method full"):
        SftConfig(method="lora", fp8=True)
    with pytest.raises(ValueError, match="fused_loss: not with prompt_tuning"):
        SftConfig(method="prompt_tuning", fused_loss="chunked")
    cfg = SftConfig(base_model=str(tiny_model), device="cpu", method="full", fp8=True, max_steps=1)
    with pytest.raises(ConfigError, match="fp8: needs a CUDA GPU"):
        train_sft(generate(8, seed=5), cfg, SP, tmp_path / "fp8", tmp_path / "models", log=lambda m: None)


def _torchrun(tmp_path, name: str, sft: dict, resume: bool = False) -> dict:
    """``flywheel.training.run`` under torchrun: 2 gloo ranks on the CPU; rank 0's result.json."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    rows = tmp_path / "rows.jsonl"
    if not rows.exists():
        rows.write_text("".join(json.dumps({"text": r["text"], "answer": r["answer"]}) + "\n"
                                for r in generate(32, seed=3)))  # fmt: skip
    cfg = tmp_path / f"{name}.json"
    cfg.write_text(json.dumps({"name": name, "dataset": str(rows), "system_prompt": SP,
                               "output_dir": str(tmp_path / name), "sft": sft}))  # fmt: skip
    env = {**os.environ, "FLYWHEEL_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "flywheel.training.run", "--config", str(cfg), "--json", *(["--resume"] if resume else [])]  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / name / "result.json").read_text())


@pytest.mark.parametrize("method", ["lora", "full"])
def test_fsdp2_on_two_ranks_follows_ddp_and_resumes(tiny_model, tmp_path, method):
    """parallel: fsdp (FSDP2 on 2 gloo ranks): the same loss curve as DDP on the same global batches, the trained
    weights saved whole by rank 0 (they load into a fresh base), and a run resumed from its sharded-then-gathered
    checkpoint continues the curve of an uninterrupted one."""
    sft = {"base_model": str(tiny_model), "device": "cpu", "method": method, "max_steps": 6, "batch_size": 4,
           "learning_rate": 1e-3 if method == "full" else 1e-2, "max_seq_length": 128, "lora_dropout": 0.0,
           "checkpoint_every": 3}  # fmt: skip
    ddp = _torchrun(tmp_path, "ddp", {**sft, "parallel": "ddp"})
    fsdp = _torchrun(tmp_path, "fsdp", {**sft, "parallel": "fsdp"})
    assert fsdp["world_size"] == 2 and len(fsdp["losses"]) == 6 and fsdp["losses"][0] != fsdp["losses"][-1]
    assert fsdp["losses"] == pytest.approx(ddp["losses"], rel=2e-3)
    from flywheel.training.methods import load_trained

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    if method == "full":  # the whole model, each weight whole (not a rank's shard), and trained
        saved = AutoModelForCausalLM.from_pretrained(str(tmp_path / "fsdp" / "adapter"), dtype=torch.float32)
        moved = [n for n, p in saved.named_parameters() if not torch.equal(p, base.get_parameter(n))]
        assert saved.get_parameter("model.embed_tokens.weight").shape == base.model.embed_tokens.weight.shape
        assert len(moved) == len(list(base.parameters()))
    else:
        load_trained(base, tmp_path / "fsdp" / "adapter")  # every adapter weight, whole
    # resume: 3 steps' checkpoint of a shorter run, then on to 6
    import shutil

    shutil.copytree(tmp_path / "fsdp" / "checkpoints" / "step-3", tmp_path / "again" / "checkpoints" / "step-3")
    again = _torchrun(tmp_path, "again", {**sft, "parallel": "fsdp"}, resume=True)
    assert again["resumed_from"] == 3 and again["losses"] == pytest.approx(fsdp["losses"], rel=2e-3)
