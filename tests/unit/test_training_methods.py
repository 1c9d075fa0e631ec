"""The fine-tuning engine on the tiny model (a random 2-layer Llama: trains in a second, not a language model).

Every PEFT method trains (loss goes down), saves, reloads into a fresh base and gives the same logits
and the same greedy generation; resume after kill -9 matches an uninterrupted run; DPO learns the
preferred answer; bad data fails with a clear error or is counted; packing does not leak attention.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from examples.fraud import generate
from flywheel.core.config import validate
from flywheel.core.errors import ConfigError, DataError, MethodUnavailable
from flywheel.training.config import DpoConfig, SftConfig, TrainConfig
from flywheel.training.data import check_columns, collate, encode_sft_rows, pack
from flywheel.training.dpo import train_dpo
from flywheel.training.flops import flops_per_token, matmul_params
from flywheel.training.methods import adapter_kind, load_trained
from flywheel.training.recipe import lr_at
from flywheel.training.sft import train_sft

SP = "You triage card transactions."
ROOT = Path(__file__).resolve().parents[2]

# Learning rates that move each method within 20 steps on the tiny model (calibrated once; the
# zero-initialised adapters and IA3's multiplicative scales need larger steps than LoRA).
METHODS = {
    "full": 1e-3,
    "lora": 1e-2,
    "dora": 1e-2,
    "ia3": 0.3,
    "prompt_tuning": 0.1,
    "prefix_tuning": 3e-2,
    "adapter": 3e-2,
    "unipelt": 1e-2,
    "moe_adapter": 3e-2,
}


def _cfg(tiny_model, method, **kw):
    base = dict(
        base_model=str(tiny_model),
        device="cpu",
        method=method,
        max_steps=20,
        batch_size=8,
        learning_rate=METHODS.get(method, 1e-2),
        max_seq_length=128,
        checkpoint_every=0,
        lora_r=8,
        num_virtual_tokens=8,
    )
    return SftConfig(**{**base, **kw})


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_trains_saves_reloads_with_the_same_logits(method, tiny_model, tmp_path):
    rows = generate(64, seed=3)
    res = train_sft(
        rows, _cfg(tiny_model, method), SP, tmp_path, tmp_path / "models", log=lambda *_: None, keep_model=True
    )
    first, last = sum(res.losses[:3]) / 3, sum(res.losses[-3:]) / 3
    assert last < 0.9 * first, res.losses
    assert res.steps == 20 and res.examples == 64 and res.tokens > 20 * 8 * 20
    if method == "full":
        assert res.trainable_params == res.total_params
    else:
        assert 0 < res.trainable_params < res.total_params / 2
    assert res.mergeable == (method in ("full", "lora", "dora", "ia3"))
    assert res.flops_per_token > 0 and 0 < res.mfu < 1

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    x = tok(["Online purchase of $12.00 at a grocery store"], return_tensors="pt")
    kind = adapter_kind(res.adapter_dir)
    assert kind == {"full": "full", "adapter": "flywheel", "unipelt": "flywheel", "moe_adapter": "flywheel"}.get(
        method, "peft"
    )
    if kind == "full":
        reloaded = AutoModelForCausalLM.from_pretrained(res.adapter_dir)
    else:
        reloaded = load_trained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), res.adapter_dir)
    reloaded.eval()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    n = x["input_ids"].shape[1]
    with torch.no_grad():
        trained = res.model(**x).logits[:, -n:]
        again = reloaded(**x).logits[:, -n:]
        untouched = base(**x).logits
    assert torch.allclose(trained, again, atol=1e-4), (trained - again).abs().max()
    assert (again - untouched).abs().max() > 1e-3  # the adapter does something
    with torch.no_grad():
        g1 = res.model.generate(**x, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        g2 = reloaded.generate(**x, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    assert g1.tolist() == g2.tolist()


def test_lora_merges_into_the_weights_with_the_same_logits(tiny_model, tmp_path):
    res = train_sft(
        generate(32, seed=1), _cfg(tiny_model, "lora", max_steps=8), SP, tmp_path, tmp_path / "m", log=lambda *_: None
    )
    merged = load_trained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), res.adapter_dir, merge=True).eval()
    unmerged = load_trained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), res.adapter_dir, merge=False).eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())  # plain Llama weights again
    x = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=x).logits, unmerged(input_ids=x).logits, atol=1e-4)


def test_unipelt_gates_and_moe_router_are_trained(tiny_model, tmp_path):
    from flywheel.training.methods import GatedLoRA, GatedPrefix, MoEAdapter

    uni = train_sft(
        generate(32, seed=2),
        _cfg(tiny_model, "unipelt", max_steps=10),
        SP,
        tmp_path / "u",
        tmp_path / "m",
        log=lambda *_: None,
        keep_model=True,
    )
    prefixes = [m for m in uni.model.modules() if isinstance(m, GatedPrefix)]
    loras = [m for m in uni.model.modules() if isinstance(m, GatedLoRA)]
    assert len(prefixes) == 2 and len(loras) == 2 * 7  # every layer, every target module
    assert all(
        abs(float(p.gate_logit.detach()) + 2.0) > 1e-4 for p in prefixes
    )  # the prefix gates moved from their init
    assert all(float(m.gate.proj.weight.detach().abs().sum()) > 0 for m in loras)  # the per-token LoRA gates learned
    moe = train_sft(
        generate(32, seed=2),
        _cfg(tiny_model, "moe_adapter", max_steps=10),
        SP,
        tmp_path / "e",
        tmp_path / "m",
        log=lambda *_: None,
        keep_model=True,
    )
    routers = [m for m in moe.model.modules() if isinstance(m, MoEAdapter)]
    assert len(routers) == 2 and all(len(r.experts) == 4 and r.top_k == 2 for r in routers)
    assert all(
        r.aux_loss is not None and 0.9 < float(r.aux_loss.detach()) < 2.1 for r in routers
    )  # E*sum f*p: 1 when balanced
    with torch.no_grad():  # tokens spread over more than top_k experts (the balancing loss at work)
        hidden = torch.randn(200, moe.model.config.hidden_size)
        used = {int(e) for r in routers for e in r.router(hidden).topk(2, -1).indices.flatten()}
    assert len(used) > 2


def test_moe_router_ignores_padding():
    """Padding is neither routed nor counted in the balancing loss (counting the padding tail of packed
    rows gave non-finite gradients on an H200; see bench/RESULTS.md)."""
    from flywheel.training.methods import MoEAdapter

    torch.manual_seed(0)
    moe = MoEAdapter(16, 8, experts=4, top_k=2).train()
    for e in moe.experts:
        torch.nn.init.normal_(e.up.weight)  # non-zero experts, so routed tokens get an output
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    moe.token_mask = mask
    out = moe(x)
    assert (out[0, 3:] == 0).all() and (out[0, :3] != 0).any(dim=-1).all() and (out[1] != 0).any(dim=-1).all()
    real_only = moe.aux_loss
    moe.token_mask = None
    moe(torch.cat([x[0, :3], x[1]]).unsqueeze(0))  # the same 8 real tokens, no padding
    assert float(real_only.detach()) == pytest.approx(float(moe.aux_loss.detach()), rel=1e-5)


def test_qlora_without_cuda_says_what_it_needs(tiny_model, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: qlora runs")
    with pytest.raises(MethodUnavailable, match="CUDA"):
        train_sft(generate(8, seed=1), _cfg(tiny_model, "qlora"), SP, tmp_path, tmp_path / "m")


def test_nemo_backend_is_import_guarded(tmp_path):
    from flywheel.training.nemo import check

    cfg = TrainConfig(dataset="x.jsonl", sft={"backend": "nemo", "method": "lora"})
    with pytest.raises(ConfigError, match="\\.\\[nemo\\]"):
        check(cfg)
    with pytest.raises(ConfigError, match="not offered by NeMo"):
        check(TrainConfig(dataset="x.jsonl", sft={"backend": "nemo", "method": "unipelt"}))


def test_config_rejects_bad_combinations():
    with pytest.raises(ConfigError, match="sft.method"):
        validate(TrainConfig, {"dataset": "d", "sft": {"method": "lorax"}})
    with pytest.raises(ConfigError, match="packing"):
        validate(TrainConfig, {"dataset": "d", "sft": {"method": "prompt_tuning", "packing": True}})
    with pytest.raises(ConfigError, match="top_k"):
        validate(TrainConfig, {"dataset": "d", "sft": {"method": "moe_adapter", "num_experts": 2, "top_k": 3}})


def test_schedule_warms_up_then_decays():
    cfg = SftConfig(max_steps=100, learning_rate=1e-3)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(99, cfg) < 1e-5


# ------------------------------------------------------------------ data: bad input, truncation, packing


def test_bad_datasets_fail_clearly(tiny_model, tmp_path):
    with pytest.raises(DataError, match="no rows"):
        check_columns([], "sft", "empty.jsonl")
    with pytest.raises(DataError, match="missing column\\(s\\) answer.*has id, text"):
        check_columns([{"id": 1, "text": "x"}], "sft", "d")
    with pytest.raises(DataError, match="chosen, rejected"):
        check_columns([{"prompt": "x"}], "dpo", "d")
    check_columns([{"messages": [{"role": "user", "content": "x"}]}], "sft")  # a chat is enough
    from flywheel.training.data import load_rows

    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError):
        load_rows(str(tmp_path / "empty.jsonl"), "sft")
    with pytest.raises(DataError, match="no such file"):
        load_rows(str(tmp_path / "missing.jsonl"), "sft")


def test_long_examples_are_truncated_or_dropped_and_counted(tiny_model):
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    rows = [{"text": "short", "answer": "LEGIT: ok"}, {"text": "word " * 400, "answer": "LEGIT: long"}]
    enc = encode_sft_rows(tok, rows, SP, 64, "prompt_left")
    assert enc.counts == {"total": 2, "kept": 2, "truncated": 1, "dropped_too_long": 0, "dropped_no_answer": 0}
    ids, labels = enc.examples[1]
    learned = [t for t, lab in zip(ids, labels) if lab != -100]
    assert len(ids) == 64 and tok.decode(learned).strip() == "LEGIT: long<|im_end|>"  # the answer survives
    enc = encode_sft_rows(tok, rows, SP, 64, "drop")
    assert enc.counts["kept"] == 1 and enc.counts["dropped_too_long"] == 1
    with pytest.raises(DataError, match="no example left"):
        encode_sft_rows(tok, rows[1:], SP, 64, "drop")


def test_loss_is_only_on_assistant_turns_of_a_chat(tiny_model):
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    chat = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "LEGIT: one"},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "FRAUD: two"},
    ]
    enc = encode_sft_rows(tok, [{"messages": json.dumps(chat)}], SP, 512)
    ids, labels = enc.examples[0]
    spans, cur = [], []
    for t, lab in zip(ids, labels):
        if lab != -100:
            cur.append(t)
        elif cur:
            spans.append(tok.decode(cur))
            cur = []
    spans += [tok.decode(cur)] if cur else []
    assert [s.strip() for s in spans] == ["LEGIT: one<|im_end|>", "FRAUD: two<|im_end|>"]


def test_packed_rows_give_each_example_the_loss_it_has_alone(tiny_model):
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    enc = encode_sft_rows(tok, generate(6, seed=5), SP, 256)
    rows = pack(enc.examples, 256)
    assert len(rows) < len(enc.examples) and sum(len(r[0]) for r in rows) == sum(len(e[0]) for e in enc.examples)
    assert all(len(r[0]) <= 256 for r in rows)
    ids, labels, _, pos = collate(rows[:1], tok.pad_token_id, packed=True)
    n = len(rows[0][0])
    starts = [i for i, p in enumerate(rows[0][2]) if p == 0] + [n]
    assert len(starts) >= 3  # at least two examples in the first row
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0]  # a cache turns packing off
        for start, end in zip(starts, starts[1:]):
            alone = model(input_ids=ids[:, start:end]).logits[0]
            assert torch.allclose(packed[start:end], alone, atol=1e-4)  # no attention across examples


def test_mfu_formula():
    # 6N for full fine-tuning, 4N + 6N_a for PEFT, plus PaLM's 12*L*d*S attention term.
    assert flops_per_token(1000, 0, 2, 64, 100, full=True) == 6000 + 12 * 2 * 64 * 100
    assert flops_per_token(1000, 10, 2, 64, 100, full=False) == 4000 + 60 + 12 * 2 * 64 * 100


def test_matmul_params_counts_linear_weights_once(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    c = model.config
    kv = c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    per_layer = 2 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * kv + 3 * c.hidden_size * c.intermediate_size
    assert matmul_params(model) == c.num_hidden_layers * per_layer + c.vocab_size * c.hidden_size  # + the tied LM head


# ------------------------------------------------------------------ resume after kill -9


def _run(config: Path, env: dict, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flywheel.training.run", "--config", str(config), "--json", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_then_resume_matches_an_uninterrupted_run(tiny_model, tmp_path):
    rows = [{"text": r["text"], "answer": r["answer"]} for r in generate(64, seed=3)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    every = 25
    sft = {
        "base_model": str(tiny_model),
        "method": "lora",
        "max_steps": 300,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "max_seq_length": 128,
        "checkpoint_every": every,
        "lora_dropout": 0.1,
        "lora_r": 8,
    }
    env = {**os.environ, "FLYWHEEL_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    configs = {}
    for name in ("straight", "killed"):
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(
            json.dumps(
                {
                    "name": name,
                    "dataset": str(data),
                    "system_prompt": SP,
                    "output_dir": str(tmp_path / name),
                    "sft": sft,
                }
            )
        )
    straight = _run(configs["straight"], env)
    killed = _run(configs["killed"], env)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 240
    while not (ckpts / f"step-{3 * every}").exists():
        assert time.time() < deadline and killed.poll() is None, "the run ended before its third checkpoint"
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    at_kill = max(int(p.name.split("-")[1]) for p in ckpts.glob("step-*") if not p.name.endswith(".tmp"))
    out, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err
    full = json.loads(out.strip().splitlines()[-1])

    again = _run(configs["killed"], env)  # without --resume: refuses to overwrite, exit 2
    _, err = again.communicate(timeout=120)
    assert again.returncode == 2 and "--resume" in err
    resumed = _run(configs["killed"], env, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["resumed_from"] == at_kill >= 3 * every  # at most one checkpoint interval lost
    assert res["steps"] == full["steps"] == 300
    assert res["losses"] == pytest.approx(full["losses"], abs=1e-5)  # same batches, same dropout masks
    assert res["final_loss"] == pytest.approx(full["final_loss"], abs=1e-5)


# ------------------------------------------------------------------ DPO from feedback


def test_preference_pairs_from_feedback(tmp_path):
    from flywheel.feedback.store import FeedbackStore

    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    ask = lambda text: [{"role": "system", "content": SP}, {"role": "user", "content": text}]  # noqa: E731
    a = store.log_interaction(workload="fraud", model="fraud", messages=ask("t1"), response="LEGIT: fine", latency_ms=1)
    store.add_feedback(a, -1, correction="FRAUD: card testing")
    b = store.log_interaction(workload="fraud", model="fraud", messages=ask("t2"), response="FRAUD: odd", latency_ms=1)
    store.add_feedback(b, -1)
    c = store.log_interaction(
        workload="fraud", model="fraud", messages=ask("t2"), response="LEGIT: regular", latency_ms=1
    )
    store.add_feedback(c, 1)
    d = store.log_interaction(workload="fraud", model="fraud", messages=ask("t3"), response="LEGIT: x", latency_ms=1)
    store.add_feedback(d, -1)  # no correction, no liked answer: no pair
    e = store.log_interaction(workload="fraud", model="fraud", messages=ask("t4"), response="LEGIT: same", latency_ms=1)
    store.add_feedback(e, -1, correction="LEGIT: same")  # a correction equal to the answer teaches nothing
    pairs = store.preference_pairs("fraud")
    assert [(json.loads(p["prompt"])[-1]["content"], p["chosen"], p["rejected"]) for p in pairs] == [
        ("t1", "FRAUD: card testing", "LEGIT: fine"),
        ("t2", "LEGIT: regular", "FRAUD: odd"),
    ]


def test_dpo_learns_the_chosen_answer(tiny_model, tmp_path):
    from flywheel.training.dpo import encode_pairs, reference_logps

    prompts = [json.dumps([{"role": "user", "content": r["text"]}]) for r in generate(24, seed=3)]
    rows = [{"prompt": p, "chosen": "LEGIT: normal spend", "rejected": "FRAUD: odd merchant"} for p in prompts]
    cfg = DpoConfig(
        base_model=str(tiny_model),
        device="cpu",
        method="lora",
        max_steps=15,
        batch_size=4,
        learning_rate=1e-2,
        max_seq_length=128,
        checkpoint_every=0,
        lora_r=8,
    )
    res = train_dpo(rows, cfg, SP, tmp_path, tmp_path / "m", log=lambda *_: None, keep_model=True)
    assert res.losses[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 0: -log sigmoid(0)
    assert res.final_loss < 0.1 and res.data_counts["reward_accuracy_last"] == 1.0
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    pairs, counts = encode_pairs(tok, rows[:4], SP, cfg)
    assert counts["kept"] == 4
    before = reference_logps(
        AutoModelForCausalLM.from_pretrained(str(tiny_model)), pairs, tok.pad_token_id, "cpu", 4, False
    )
    after = reference_logps(res.model, pairs, tok.pad_token_id, "cpu", 4, False)
    assert all(a[0] - a[1] > b[0] - b[1] + 1 for a, b in zip(after, before))  # chosen now clearly preferred
    assert json.loads((tmp_path / "reference_logps.json").read_text())[0] == pytest.approx(before[0], abs=1e-3)


def test_torchrun_two_processes_run_the_same_recipe(tiny_model, tmp_path):
    """The multi-GPU launch path, on CPU: torchrun starts 2 gloo ranks, DDP averages their gradients,
    rank 0 writes the adapter and result.json (world_size 2, global batch 2 x batch_size)."""
    rows = [{"text": r["text"], "answer": r["answer"]} for r in generate(32, seed=3)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(
        json.dumps(
            {
                "name": "ddp",
                "dataset": str(data),
                "system_prompt": SP,
                "output_dir": str(tmp_path / "out"),
                "sft": {
                    "base_model": str(tiny_model),
                    "device": "cpu",
                    "method": "moe_adapter",
                    "max_steps": 12,
                    "batch_size": 4,
                    "learning_rate": 3e-2,
                    "max_seq_length": 128,
                    "checkpoint_every": 5,
                },
            }
        )
    )
    env = {**os.environ, "FLYWHEEL_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "flywheel.training.run",
            "--config",
            str(cfg),
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    assert res["world_size"] == 2 and res["steps"] == 12 and len(res["losses"]) == 12
    assert sum(res["losses"][-3:]) < 0.9 * sum(res["losses"][:3])
    assert (tmp_path / "out" / "adapter" / "flywheel_adapter.safetensors").exists()
    assert sorted(p.name for p in (tmp_path / "out" / "checkpoints").iterdir()) == ["step-10", "step-5"]


def test_a_curated_dataset_with_answers_in_meta_is_sft_data(tmp_path):
    import pandas as pd

    from flywheel.core.dataset import write_dataset
    from flywheel.training.data import load_rows

    rows = generate(5, seed=1)
    df = pd.DataFrame(
        {
            "id": [r["id"] for r in rows],
            "text": [r["text"] for r in rows],
            "source": "gen",
            "meta": [json.dumps({"label": r["label"], "answer": r["answer"]}) for r in rows],
        }
    )
    ds = write_dataset(df, tmp_path, "curated")
    got = load_rows(str(ds.path), "sft")
    assert [(r["text"], r["answer"]) for r in got] == [(r["text"], r["answer"]) for r in rows]
    with pytest.raises(DataError, match="missing column"):  # plain documents are not SFT data
        load_rows(str(write_dataset(df.assign(meta="{}"), tmp_path, "docs").path), "sft")
