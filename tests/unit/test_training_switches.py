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
