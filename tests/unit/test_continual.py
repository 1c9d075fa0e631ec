"""The continual-training policy: feedback windows by watermark (each row new in exactly one cycle), weighted
corrections, replay, warm start from an adapter, label-weighted loss, steps from epochs, the time budget."""

from pathlib import Path

import pytest
import torch

from examples.fraud import generate
from flywheel.core.errors import ConfigError
from flywheel.feedback.store import FeedbackStore
from flywheel.training.config import ContinualConfig, SftConfig
from flywheel.training.continual import cycle_rows, feedback_slices, weighted

SP = "You triage card transactions."


def _store(tmp_path, n: int, start: int = 0) -> tuple[FeedbackStore, list[int]]:
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    seqs = []
    for i in range(start, start + n):
        iid = store.log_interaction(
            workload="fraud",
            model="fraud",
            messages=[{"role": "system", "content": SP}, {"role": "user", "content": f"txn {i}"}],
            response="LEGIT: no fraud rule applies",
            latency_ms=1.0,
        )
        fb = store.add_feedback(iid, 1) if i % 2 else store.add_feedback(iid, -1, correction="FRAUD: velocity")
        seqs.append(fb["feedback_seq"])
    return store, seqs


def test_feedback_seqs_are_monotonic_and_the_watermark_bounds_the_read(tmp_path):
    store, seqs = _store(tmp_path, 6)
    assert seqs == sorted(seqs) and len(set(seqs)) == 6 and store.watermark("fraud") == seqs[-1]
    window = store.training_rows("fraud", upto=seqs[3])
    assert [r["text"] for r in window] == ["txn 0", "txn 1", "txn 2", "txn 3"]
    assert [r["kind"] for r in window] == ["correction", "approved", "correction", "approved"]


def test_each_feedback_row_is_new_in_exactly_one_cycle(tmp_path):
    store, seqs = _store(tmp_path, 4)
    first = feedback_slices(store, "fraud", seqs[-1])
    assert [r["text"] for r in first["new"]] == ["txn 0", "txn 1", "txn 2", "txn 3"] and first["old"] == []
    store.mark_consumed("fraud", first["upto"], "run-1", len(first["new"]))
    again = feedback_slices(store, "fraud", seqs[-1])  # a rerun on the same watermark adds no rows
    assert again["new"] == [] and len(again["old"]) == 4 and (again["after"], again["upto"]) == (seqs[-1], seqs[-1])
    _, more = _store(tmp_path, 3, start=4)  # traffic goes on after the trigger fired
    second = feedback_slices(store, "fraud", more[1])
    assert [r["text"] for r in second["new"]] == ["txn 4", "txn 5"]  # not txn 6: after the watermark
    assert [r["text"] for r in second["old"]] == ["txn 0", "txn 1", "txn 2", "txn 3"]


def test_feedback_given_again_counts_at_its_latest_seq(tmp_path):
    store, seqs = _store(tmp_path, 2)
    store.mark_consumed("fraud", seqs[-1], "run-1", 2)
    first = store.list("fraud")[0]["id"]
    later = store.add_feedback(first, -1, correction="FRAUD: cross-border $1,200")  # an analyst revises
    new = feedback_slices(store, "fraud", later["feedback_seq"])["new"]
    assert [(r["text"], r["answer"]) for r in new] == [("txn 0", "FRAUD: cross-border $1,200")]


def _fb(i: int, kind: str) -> dict:
    return {"id": f"fb-{i}", "text": f"t{i}", "answer": "FRAUD: x", "label": "FRAUD", "kind": kind}


def test_corrections_count_more_and_replay_is_drawn_per_new_row():
    policy = ContinualConfig(correction_weight=3, approved_weight=1, replay_ratio=2.0, seed=5)
    new = [_fb(1, "correction"), _fb(2, "approved")]
    assert [r["id"] for r in weighted(new, policy)] == ["fb-1", "fb-1#2", "fb-1#3", "fb-2"]
    curated = [{"id": f"c{i:03d}", "text": "x", "answer": "LEGIT: y", "label": "LEGIT"} for i in range(100)]
    old = [_fb(9, "correction")]
    rows, counts = cycle_rows(curated, new, old, policy, warm=True)
    assert counts == {
        "start": "champion",
        "new_feedback": 2,
        "corrections": 1,
        "new_rows": 4,
        "curated_rows": 0,
        "old_feedback": 0,
        "replay_rows": 8,
    }
    assert [r["id"] for r in rows[:4]] == ["fb-1", "fb-1#2", "fb-1#3", "fb-2"] and len(rows) == 12
    assert rows == cycle_rows(curated, new, old, policy, warm=True)[0]  # the same draw every time
    from_base, c = cycle_rows(curated, new, old, policy, warm=False)  # everything so far, from the base
    assert len(from_base) == 100 + 3 + 4 and c["curated_rows"] == 100 and c["old_feedback"] == 1


def test_steps_follow_the_epochs():
    from flywheel.training.sft import planned_steps

    assert planned_steps(SftConfig(epochs=1.0, batch_size=8, max_steps=1000), 600) == 75
    assert planned_steps(SftConfig(epochs=1.5, batch_size=8, max_steps=100), 600) == 100  # capped
    assert planned_steps(SftConfig(max_steps=40), 600) == 40


def test_label_tokens_get_the_label_weight(tiny_model):
    from transformers import AutoTokenizer

    from flywheel.training.data import IGNORE, answer_weights, conversation, encode_chat, separator_ids

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    ids, labels = encode_chat(tok, conversation({"text": "a txn", "answer": "FRAUD: cross-border $1,200"}, SP))
    w = answer_weights(torch.tensor([labels]), separator_ids(tok), 5.0, 1.0)[0].tolist()
    answer = [(tok.decode([t]), wt) for t, wt in zip(labels, w) if t != IGNORE]
    weights = [wt for _, wt in answer]
    k = weights.count(5.0)
    assert weights == [5.0] * k + [1.0] * (len(weights) - k)  # the label first, then the reason
    assert "".join(t for t, _ in answer[:k]).strip() == "FRAUD:"
    assert all(wt == 0 for t, wt in zip(labels, w) if t == IGNORE)
    assert sum(wt == 5.0 for _, wt in answer) < len(answer)


def test_weighted_loss_with_unit_weights_is_the_model_loss(tiny_model):
    from flywheel.training.data import answer_weights, collate, encode_sft_rows
    from flywheel.training.models import load_model_and_tokenizer
    from flywheel.training.sft import weighted_loss

    model, tok = load_model_and_tokenizer(tiny_model)
    enc = encode_sft_rows(tok, generate(4, seed=1), SP, 128)
    ids, labels, mask, _ = collate([(i, lab, None) for i, lab in enc.examples], tok.pad_token_id)
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    with torch.no_grad():
        plain = model(**inputs).loss
        ours = weighted_loss(model, inputs, answer_weights(labels, set(), 1.0, 1.0))
    assert float(ours) == pytest.approx(float(plain), rel=1e-5)


def tiny_sft(tiny_model, **kw) -> SftConfig:
    """An SFT config on the tiny generated model (for speed), without checkpoints."""
    base = {"base_model": str(tiny_model), "batch_size": 4, "max_seq_length": 128, "checkpoint_every": 0}
    return SftConfig(**{**base, **kw})


def test_warm_start_continues_the_adapter_and_refuses_another_shape(tiny_model, tmp_path):
    from safetensors.torch import load_file

    from flywheel.training.sft import train_sft

    def run(cfg, rows, out):
        return train_sft(rows, cfg, SP, tmp_path / out, tmp_path / "m", log=lambda *_: None)

    cfg = tiny_sft(tiny_model, max_steps=10, learning_rate=1e-2)
    first = run(cfg, generate(16, seed=1), "a")
    saved = load_file(str(Path(first.adapter_dir) / "adapter_model.safetensors"))
    # learning rate ~0: the warm run's adapter is the first one's, to the last digit that matters
    frozen = cfg.model_copy(update={"init_adapter": first.adapter_dir, "learning_rate": 1e-12, "max_steps": 1})
    second = run(frozen, generate(16, seed=2), "b")
    now = load_file(str(Path(second.adapter_dir) / "adapter_model.safetensors"))
    assert set(now) == set(saved) and all(torch.allclose(now[k], saved[k], atol=1e-6) for k in saved)
    # on the same batch, the warm start's first loss is the trained adapter's, far below a cold start's
    cold = run(cfg.model_copy(update={"max_steps": 1}), generate(16, seed=1), "c")
    warm = run(cfg.model_copy(update={"max_steps": 1, "init_adapter": first.adapter_dir}), generate(16, seed=1), "d")
    assert warm.losses[0] < cold.losses[0] / 2
    other = cfg.model_copy(update={"init_adapter": first.adapter_dir, "lora_r": 4})
    with pytest.raises(ConfigError, match="init_adapter: .* does not fit sft.lora"):
        run(other, generate(8, seed=3), "e")


def test_the_time_budget_stops_training_and_keeps_the_adapter(tiny_model, tmp_path):
    from flywheel.training.sft import train_sft

    said = []
    cfg = tiny_sft(tiny_model, max_steps=50, max_minutes=1e-6)
    res = train_sft(generate(16, seed=1), cfg, SP, tmp_path, tmp_path / "m", log=said.append)
    assert res.steps == 1 and (Path(res.adapter_dir) / "adapter_config.json").exists()
    assert any("time budget" in s and "after 1 of 50 steps" in s for s in said)


def test_generative_replay_pool_is_cached_deterministic_and_extends(tiny_model, tmp_path):
    from flywheel.training.replay import OPENINGS, self_replay_texts

    first = self_replay_texts(tiny_model, 20, max_tokens=8, cache_dir=tmp_path)
    assert len(first) == 20 and all(any(t.startswith(o) for o in OPENINGS) for t in first)
    more = self_replay_texts(tiny_model, 40, max_tokens=8, cache_dir=tmp_path)  # extends the same pool
    assert more[:20] == first and len(more) == 40
    again = self_replay_texts(tiny_model, 40, max_tokens=8, cache_dir=tmp_path / "other")  # regenerated: same texts
    assert again == more


def test_training_with_generative_replay_counts_the_plain_text_rows(tiny_model, tmp_path):
    from flywheel.training.sft import train_sft

    cfg = tiny_sft(tiny_model, max_steps=2, max_seq_length=64, general_replay=0.5, label_weight=5.0)
    res = train_sft(generate(16, seed=1), cfg, SP, tmp_path, tmp_path / "m", log=lambda *_: None)
    assert res.data_counts["general_replay"] == 8 and res.data_counts["kept"] == 16


def test_dpo_step_trains_on_the_new_windows_pairs_only(tiny_model, tmp_path):
    from types import SimpleNamespace

    from flywheel.training.continual import dpo_after_sft
    from flywheel.training.sft import train_sft

    store, seqs = _store(tmp_path, 6)  # txn 0, 2, 4 corrected (rating -1 + correction): three pairs
    assert len(store.preference_pairs("fraud")) == 3
    assert len(store.preference_pairs("fraud", upto=seqs[-1], after=seqs[2])) == 1  # only txn 4 is new
    sft = tiny_sft(tiny_model, max_steps=2, batch_size=2, max_seq_length=64)
    first = train_sft(generate(8, seed=1), sft, SP, tmp_path / "sft", tmp_path / "m", log=lambda *_: None)
    wl = SimpleNamespace(name="fraud", sft=sft, system_prompt=SP, continual=ContinualConfig(dpo_steps=2))
    plan = {"watermark": seqs[-1], "after": seqs[2]}
    res, n = dpo_after_sft(store, wl, first.adapter_dir, plan, tmp_path / "run", tmp_path / "m", log=lambda *_: None)
    assert n == 1 and res.recipe == "dpo" and res.steps == 2 and Path(res.adapter_dir).parent.name == "dpo"
    off = SimpleNamespace(**{**vars(wl), "continual": ContinualConfig(dpo_steps=0)})
    assert dpo_after_sft(store, off, first.adapter_dir, plan, tmp_path / "r2", tmp_path / "m") == (None, 0)
    none_new = {"watermark": seqs[-1], "after": seqs[-1]}
    assert dpo_after_sft(store, wl, first.adapter_dir, none_new, tmp_path / "r3", tmp_path / "m") == (None, 0)
