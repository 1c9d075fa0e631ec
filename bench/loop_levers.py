"""Benchmark: which training levers lift the fraud workload within a cycle's CPU budget, and what they cost in
general ability — the measurements the loop's defaults (`continual:` and `sft:` in configs/workloads/fraud.yaml)
were chosen from.

Everything is scored on a **validation split** (300 transactions from another seed), never on the golden set.
Each lever trains SmolLM2-135M-Instruct with the project's own `train_sft` on the demo's 600 training rows and
prints: steps, minutes, accuracy of the generated answers with its 95 % interval, recall per label, format
validity, general-text perplexity and general multiple-choice accuracy (lm-evaluation-harness) against the base.

Cycle-2 levers start from a cycle-1 adapter, collect "feedback" from it on 80 live transactions (a simulated
analyst corrects the wrong answers and approves the right ones), and train again with a continual policy.

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.loop_levers --levers steps75,label5 --out /tmp/levers
    OMP_NUM_THREADS=2 .venv/bin/python -m bench.loop_levers --list
    # the chosen loop (cycle 1, then cycle 2) on other training rows, the same rule
    OMP_NUM_THREADS=2 .venv/bin/python -m bench.loop_levers --data-seed 11 \
        --levers epoch1-replay0.25,c2r-warm-replayall-corr3 --out /tmp/levers-seed11
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

from examples.documents import GENERAL_TEXT  # noqa: E402
from examples.fraud import generate  # noqa: E402
from flywheel.core.home import Home  # noqa: E402
from flywheel.core.workload import load_workload  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# name -> (cycle-1 sft overrides, cycle-2 policy or None). Cycle-2 levers name the cycle-1 lever they start from.
LEVERS: dict[str, dict] = {
    "steps40": {"sft": {"max_steps": 40}},  # the old demo
    "epoch1": {"sft": {"epochs": 1.0}},  # 75 steps: one pass over 600 rows at batch 8
    "epoch1-label5": {"sft": {"epochs": 1.0, "label_weight": 5.0}},
    "epoch1-labelonly": {"sft": {"epochs": 1.0, "reason_weight": 0.0}},
    "epoch1-lr2e-3": {"sft": {"epochs": 1.0, "learning_rate": 2e-3}},
    "epoch1-attn-r8": {
        "sft": {
            "epochs": 1.0,
            "lora_r": 8,
            "lora_alpha": 16,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        }
    },  # fmt: skip
    # the reason first, the label last ("cross-border $1,200, so FRAUD"): scored on the answer's last word
    "epoch1-rationale-first": {"sft": {"epochs": 1.0}, "rationale_first": True},
    "epoch1-packed": {"sft": {"epochs": 1.0, "packing": True}},
    "epoch1-replay0.25": {"sft": {"epochs": 1.0, "general_replay": 0.25}},
    "epoch1-replay0.5": {"sft": {"epochs": 1.0, "general_replay": 0.5}},
    "epoch1-replay0.25-bs4": {"sft": {"epochs": 1.0, "general_replay": 0.25, "batch_size": 4}},
    "epoch1.5-label5": {"sft": {"epochs": 1.5, "label_weight": 5.0}},
    "epoch2-label5": {"sft": {"epochs": 2.0, "label_weight": 5.0}},
    # cycle 2 after epoch1: warm start vs base, replay ratio, correction weight, DPO
    "c2-warm-replay1-corr3": {
        "from": "epoch1",
        "cycle2": {"start": "champion", "replay_ratio": 1.0, "correction_weight": 3, "epochs": 1.0},
    },
    "c2-warm-replayall-corr3": {  # a second epoch over everything, continuing the champion, plus the feedback
        "from": "epoch1",
        "cycle2": {"start": "champion", "replay_ratio": 100.0, "correction_weight": 3, "epochs": 1.0},
    },
    "epoch2": {"sft": {"epochs": 2.0}},
    # cycle 2 after epoch1-replay0.25 (general-text replay kept on in cycle 2)
    "c2r-warm-replayall-corr3": {
        "from": "epoch1-replay0.25",
        "cycle2": {"start": "champion", "replay_ratio": 100.0, "correction_weight": 3, "epochs": 1.0},
    },
    "c2r-warm-replay2-corr3": {
        "from": "epoch1-replay0.25",
        "cycle2": {"start": "champion", "replay_ratio": 2.0, "correction_weight": 3, "epochs": 1.0},
    },
    "c2-warm-replay0-corr3": {
        "from": "epoch1",
        "cycle2": {"start": "champion", "replay_ratio": 0.0, "correction_weight": 3, "epochs": 1.0},
    },
    "c2-warm-replay1-corr1": {
        "from": "epoch1",
        "cycle2": {"start": "champion", "replay_ratio": 1.0, "correction_weight": 1, "epochs": 1.0},
    },
    "c2-warm-replay1-corr3-dpo": {
        "from": "epoch1",
        "cycle2": {"start": "champion", "replay_ratio": 1.0, "correction_weight": 3, "epochs": 1.0, "dpo_steps": 20},
    },
    "c2-base-cumulative": {
        "from": "epoch1",
        "cycle2": {"start": "base", "replay_ratio": None, "correction_weight": 3, "epochs": 1.0},
    },
}


def rationale_first(rows: list[dict]) -> list[dict]:
    """The same rows with the answer turned around: reason first, then ", so LABEL"."""
    out = []
    for r in rows:
        label, _, reason = r["answer"].partition(":")
        out.append({**r, "answer": f"{reason.strip()}, so {label.strip()}"})
    return out


def last_word_labels(frame, labels):
    """Re-read generated answers label-last: the prediction is the answer's last word, if it is a label."""
    words = frame["answer"].str.strip().str.rstrip(".").str.split().str[-1].fillna("").str.upper()
    frame["pred"] = words.where(words.isin(labels), "")
    frame["valid"] = frame["pred"] != ""
    return frame


def evaluate(model_path, adapter, rows, wl, general_text, label_last: bool = False) -> dict:
    """Generated-answer metrics with intervals on ``rows``, perplexity and general multiple choice."""
    from flywheel.evaluation.harness import harness_multiple_choice
    from flywheel.evaluation.metrics import Outcomes, scorecard
    from flywheel.evaluation.scorers import perplexity_windows
    from flywheel.evaluation.suite import BUILTIN_MC, answers, load_for_eval

    model, tok = load_for_eval(str(model_path), str(adapter) if adapter else None)
    if label_last:  # a longer answer budget: the label comes after the reason
        wl = wl.model_copy(update={"eval": wl.eval.model_copy(update={"max_new_tokens": 24})})
    frame, cost = answers(model, tok, rows, wl)
    if label_last:
        frame = last_word_labels(frame, wl.labels)
    windows = perplexity_windows(model, tok, general_text, wl.eval.perplexity_max_tokens)
    mc, _ = harness_multiple_choice(model, tok, BUILTIN_MC, 32)
    card = scorecard(Outcomes("m", "k", frame, windows, mc, cost), wl.labels, [], 1000, 0, 0.95)
    m = card["metrics"]
    return {
        "accuracy": m["accuracy"],
        "recall_fraud": m["recall_fraud"]["value"],
        "recall_legit": m["recall_legit"]["value"],
        "format_valid": m["format_valid"]["value"],
        "perplexity": m["perplexity"]["value"],
        "general_mc": m["general_mc_accuracy"]["value"],
        "answers": frame,
    }


def feedback_from(model_path, adapter, wl, n: int, seed: int) -> list[dict]:
    """What the gateway's feedback gives a retrain: the live answers of the cycle-1 model, corrected where
    wrong (correction = the true answer), approved where right."""
    from flywheel.evaluation.suite import answers, load_for_eval

    live = [{**r, "meta": {}} for r in generate(n, seed=seed, noise=0.0, prefix="live")]
    model, tok = load_for_eval(str(model_path), str(adapter))
    frame, _ = answers(model, tok, live, wl)
    out = []
    for r, (_, a) in zip(live, frame.iterrows()):
        right = a["pred"] == r["rule_label"]
        out.append(
            {
                "id": f"fb-{r['id']}",
                "text": r["text"],
                "answer": a["answer"] if right else r["answer"],
                "label": r["rule_label"],
                "kind": "approved" if right else "correction",
                "rejected": a["answer"],
            }
        )
    return out


def cycle2_rows(train: list[dict], feedback: list[dict], policy: dict, seed: int) -> list[dict]:
    import random

    rng = random.Random(seed)
    new = []
    for f in feedback:
        new += [f] * (policy["correction_weight"] if f["kind"] == "correction" else 1)
    if policy["start"] == "base" or policy["replay_ratio"] is None:
        return train + new  # cumulative: everything again, from the base
    k = min(len(train), round(policy["replay_ratio"] * len(new)))
    return new + rng.sample(train, k)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levers", default="steps40,epoch1,epoch1-label5")
    p.add_argument("--out", type=Path, default=Path("/tmp/flywheel-levers"))
    p.add_argument("--val", type=int, default=300)
    p.add_argument("--data-seed", type=int, default=None, help="training rows from this seed (default: the workload's)")
    p.add_argument("--list", action="store_true")
    a = p.parse_args()
    if a.list:
        print("\n".join(f"{k}: {json.dumps(v)}" for k, v in LEVERS.items()))
        return
    import torch

    from flywheel.training.models import resolve_base_model
    from flywheel.training.sft import train_sft

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    wl = load_workload(ROOT / "configs/workloads/fraud.yaml")
    models = Home.resolve().models
    base = resolve_base_model(wl.sft.base_model, models)
    seed = wl.data.seed if a.data_seed is None else a.data_seed
    if seed == 1000:
        raise SystemExit("--data-seed 1000 is the validation split's seed")
    train = generate(wl.data.n_train, seed, wl.data.noise, "train")
    val = [{**r, "meta": {}} for r in generate(a.val, seed=1000, noise=0.0, prefix="val")]  # never the golden seed
    a.out.mkdir(parents=True, exist_ok=True)
    results = a.out / "results.jsonl"
    print(f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}; data seed {seed}", flush=True)
    base_eval = a.out / "base.json"
    if not base_eval.exists():
        b = evaluate(base, None, val, wl, GENERAL_TEXT)
        base_eval.write_text(json.dumps({k: v for k, v in b.items() if k != "answers"}))
    b = json.loads(base_eval.read_text())
    print(f"base: accuracy {b['accuracy']['value']:.3f}, perplexity {b['perplexity']:.2f}, mc {b['general_mc']:.3f}")
    for name in a.levers.split(","):
        lever = LEVERS[name]
        out_dir = a.out / name
        t0 = time.perf_counter()
        if "cycle2" in lever:
            parent = a.out / lever["from"] / "adapter"
            if not parent.exists():
                raise SystemExit(f"{name}: run lever {lever['from']} first")
            policy = lever["cycle2"]
            fb = feedback_from(base, parent, wl, 80, seed=1234)
            rows = cycle2_rows(train, fb, policy, seed=0)
            sft = {**LEVERS[lever["from"]]["sft"], "epochs": policy["epochs"]}
            if policy["start"] == "champion":
                sft["init_adapter"] = str(parent)
            extra = {"feedback": len(fb), "corrections": sum(f["kind"] == "correction" for f in fb)}
        else:
            rows, sft, extra = train, lever["sft"], {}
            if lever.get("rationale_first"):
                rows = rationale_first(rows)
        # epochs decide the steps here: the workload's max_steps cap does not apply to the levers
        cfg = wl.sft.model_copy(update={"device": "cpu", "checkpoint_every": 0, "max_steps": 1000, **sft})
        t_train = time.perf_counter()
        res = train_sft(rows, cfg, wl.system_prompt, out_dir, models, log=lambda *_: None)
        if "cycle2" in lever and lever["cycle2"].get("dpo_steps"):  # DPO on the corrections, from the SFT adapter
            from flywheel.training.config import DpoConfig
            from flywheel.training.dpo import train_dpo

            pairs = [
                {"prompt": f["text"], "chosen": f["answer"], "rejected": f["rejected"]}
                for f in fb
                if f["kind"] == "correction"
            ]
            dpo = DpoConfig(**{**cfg.model_dump(), "epochs": None, "label_weight": 1.0, "reason_weight": 1.0})
            steps = lever["cycle2"]["dpo_steps"]
            dpo = dpo.model_copy(update={"init_adapter": res.adapter_dir, "max_steps": steps, "learning_rate": 5e-4})
            res = train_dpo(pairs, dpo, wl.system_prompt, out_dir / "dpo", models, log=lambda *_: None)
            extra["dpo_pairs"] = len(pairs)
        train_min = (time.perf_counter() - t_train) / 60
        ev = evaluate(base, res.adapter_dir, val, wl, GENERAL_TEXT, label_last=bool(lever.get("rationale_first")))
        acc = ev["accuracy"]
        line = {
            "lever": name,
            "data_seed": seed,
            "rows": len(rows),
            "steps": res.steps,
            "train_minutes": round(train_min, 2),
            "total_minutes": round((time.perf_counter() - t0) / 60, 2),
            "accuracy": acc,
            "recall_fraud": ev["recall_fraud"],
            "recall_legit": ev["recall_legit"],
            "format_valid": ev["format_valid"],
            "perplexity": ev["perplexity"],
            "perplexity_vs_base": ev["perplexity"] / b["perplexity"] - 1,
            "general_mc": ev["general_mc"],
            "general_mc_vs_base": ev["general_mc"] - b["general_mc"],
            **extra,
        }
        with results.open("a") as f:
            f.write(json.dumps(line) + "\n")
        print(
            f"{name}: {res.steps} steps {train_min:.1f} min; accuracy {acc['value']:.3f} [{acc['low']:.3f}, "
            f"{acc['high']:.3f}] recall F {ev['recall_fraud']:.2f} L {ev['recall_legit']:.2f}, format "
            f"{ev['format_valid']:.2f}; perplexity {line['perplexity_vs_base']:+.1%}, mc "
            f"{line['general_mc_vs_base']:+.3f} {extra or ''}",
            flush=True,
        )


if __name__ == "__main__":
    main()
