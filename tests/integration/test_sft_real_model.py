"""On the real SmolLM2-135M-Instruct: LoRA SFT on the fraud workload's train split raises held-out
accuracy above the base model's (issue 5's acceptance; about 4 minutes on 2 cores: marker `integration`).

The base model rambles: about a quarter of its generated answers start with the right label (0.23 on 64 rows)."""

import pytest

from examples.fraud import generate
from flywheel.core.workload import load_workload
from flywheel.evaluation.config import EvalConfig
from flywheel.evaluation.suite import evaluate_model
from flywheel.training.models import resolve_base_model
from flywheel.training.sft import train_sft

pytestmark = pytest.mark.integration


def test_lora_sft_beats_the_base_model_on_held_out_data(session_dir, tmp_path, root):
    wl = load_workload(root / "configs/workloads/fraud.yaml")
    train = generate(wl.data.n_train, seed=wl.data.seed, noise=wl.data.noise)
    test = generate(120, seed=wl.data.seed + 1, prefix="test")
    assert not {r["text"] for r in train} & {r["text"] for r in test}
    base = resolve_base_model(wl.sft.base_model, session_dir / "models")
    # 40 steps without replay (the demo's recipe trains 94): enough to beat the base, short enough for CI
    cfg = wl.sft.model_copy(
        update={"device": "cpu", "checkpoint_every": 0, "max_steps": 40, "epochs": None, "general_replay": 0.0}
    )
    res = train_sft(train, cfg, wl.system_prompt, tmp_path, session_dir / "models", log=lambda *_: None)
    assert res.steps == 40 and res.final_loss < res.losses[0] / 2
    ev = EvalConfig(max_examples=120, batch_size=16, general_mc=None)
    general = "The committee met on Tuesday to review the annual budget and the new library opening hours. " * 40
    before = evaluate_model(base, None, test, general, wl.labels, wl.system_prompt, ev)
    after = evaluate_model(base, res.adapter_dir, test, general, wl.labels, wl.system_prompt, ev)
    print(
        f"held-out accuracy: base {before['accuracy']:.3f} -> LoRA {after['accuracy']:.3f}; "
        f"perplexity {before['perplexity']:.1f} -> {after['perplexity']:.1f}; {res.tokens_per_second:.0f} tokens/s"
    )
    assert after["accuracy"] >= before["accuracy"] + 0.05
    assert after["recall_legit"] > before["recall_legit"]
