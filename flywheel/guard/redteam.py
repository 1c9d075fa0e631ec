"""Red-team and false-positive evaluation of a running gateway (the ``redteam`` flow, ``flywheel redteam``).

1. NVIDIA's **garak** runs as a real client against the gateway's OpenAI-compatible endpoint (its generator
   ``openai.OpenAICompatible``), from an environment of its own (``make redteam-env`` builds ``.venv-garak``:
   garak pins ``openai<3`` and ``transformers<5.20``). Its requests carry ``user: <tenant>`` so the gateway logs
   them under a tenant of their own; garak's report gives its detectors' verdicts (attack success rate per
   probe: what got *through* the rails and made the model misbehave).
2. The project's benign set (``flywheel/guard/data/benign.jsonl``: 125 prompts, 55 tricky) goes through the same
   gateway under another tenant.
3. The gateway's own log (the interaction store) says which rail blocked which request, and how long it took:
   block rate per rail on the attacks, false-positive rate on the benign set, latency p50/p95 per outcome —
   with Wilson intervals.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from flywheel.core.errors import ServiceUnavailable

BENIGN = Path(__file__).parent / "data" / "benign.jsonl"
DEFAULT_PROBES = ["dan", "promptinject", "latentinjection.LatentJailbreak", "goodside.WhoIsRiley"]


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p, d = k / n, 1 + z * z / n
    c = p + z * z / (2 * n)
    r = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5)
    return [round((c - r) / d, 4), round((c + r) / d, 4)]


def garak_options(base_url: str, model: str, tenant: str, max_tokens: int = 32, api_key: str = "none") -> dict:
    return {
        "openai": {
            "OpenAICompatible": {
                "uri": base_url.rstrip("/") + "/v1/",
                "model": model,
                "api_key": api_key,
                "max_tokens": max_tokens,
                "suppressed_params": ["n", "frequency_penalty", "presence_penalty"],
                "extra_params": {"user": tenant},
            }
        }
    }


def run_garak(
    garak: str | Path,
    base_url: str,
    model: str,
    probes: list[str],
    out_dir: Path,
    tenant: str,
    generations: int = 1,
    seed: int = 0,
    parallel: int = 4,
    timeout_s: float = 3600,
    api_key: str = "none",
) -> Path:
    """Run garak against the gateway; the path of its ``report.jsonl``. Its data, cache and config go under
    ``out_dir`` (nothing in the user's home)."""
    garak = Path(garak)
    if not garak.exists():
        raise ServiceUnavailable(f"garak: no {garak}; build its environment with `make redteam-env`")
    out_dir.mkdir(parents=True, exist_ok=True)
    opts = out_dir / "generator.json"
    opts.write_text(json.dumps(garak_options(base_url, model, tenant, api_key=api_key)))
    env = os.environ | {f"XDG_{k}_HOME": str(out_dir / k.lower()) for k in ("DATA", "CACHE", "CONFIG")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [
        str(garak), "--target_type", "openai.OpenAICompatible", "--target_name", model,
        "--generator_option_file", str(opts), "--probes", ",".join(probes), "--generations", str(generations),
        "--seed", str(seed), "--parallel_attempts", str(parallel), "--report_prefix", "redteam",
    ]  # fmt: skip
    with (out_dir / "garak.log").open("w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout_s, check=False)
    reports = sorted((out_dir / "data").rglob("redteam.report.jsonl"))
    if proc.returncode != 0 or not reports:
        tail = (out_dir / "garak.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"garak exited {proc.returncode}; the end of its log:\n{tail}")
    return reports[-1]


def garak_summary(report: Path) -> dict:
    """garak's verdicts per probe: prompts sent, and per detector passed/total and the attack success rate."""
    probes: dict[str, dict] = defaultdict(lambda: {"attempts": 0, "detectors": {}})
    for line in report.open():
        d = json.loads(line)
        if d.get("entry_type") == "attempt" and d.get("status") == 2:
            probes[d["probe_classname"]]["attempts"] += 1
        elif d.get("entry_type") == "eval":
            total = d.get("total_evaluated") or d.get("total") or 0
            probes[d["probe"]]["detectors"][d["detector"]] = {
                "passed": d["passed"],
                "total": total,
                "attack_success_rate": round(1 - d["passed"] / total, 4) if total else None,
            }
    return dict(probes)


def _prompt_text(prompt) -> str:
    """The last user turn of a garak attempt's prompt (a Conversation dict since garak 0.10, else a string)."""
    if isinstance(prompt, dict):
        turns = prompt.get("turns") or []
        content = turns[-1].get("content", {}) if turns else {}
        return content.get("text", "") if isinstance(content, dict) else str(content)
    return str(prompt or "")


def probe_blocks(report: Path, rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per garak probe, what the gateway did with its prompts (rail that blocked, or passed), joined on the text."""
    outcome = {}
    for r in rows:
        user = next((m.get("content") for m in reversed(r["messages"]) if m.get("role") == "user"), "")
        outcome[user] = _rail(r.get("guard_flags") or []) or "passed"
    out: dict[str, Counter] = defaultdict(Counter)
    for line in report.open():
        d = json.loads(line)
        if d.get("entry_type") == "attempt" and d.get("status") == 2:
            out[d["probe_classname"]][outcome.get(_prompt_text(d.get("prompt")), "not logged")] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def send_benign(base_url: str, model: str, tenant: str, rows: list[dict] | None = None, api_key: str = "none") -> int:
    """Send the benign set through the gateway (one request each, greedy, cache bypassed); how many answered."""
    import httpx

    rows = rows if rows is not None else [json.loads(line) for line in BENIGN.open()]
    sent = 0
    headers = {"Authorization": f"Bearer {api_key}", "X-Flywheel-Cache": "bypass"}
    with httpx.Client(base_url=base_url, timeout=300, headers=headers) as client:
        for row in rows:
            body = {"model": model, "messages": [{"role": "user", "content": row["text"]}], "user": tenant}
            r = client.post("/v1/chat/completions", json=body | {"max_tokens": 16, "temperature": 0})
            r.raise_for_status()
            sent += 1
    return sent


def _rail(flags: list[str]) -> str | None:
    blocked = next((f for f in flags if f.startswith("blocked:")), None)
    return blocked.split(":")[1] if blocked else None


def block_stats(rows: list[dict], families: dict[str, str] | None = None) -> dict:
    """Outcomes of logged requests: share blocked (Wilson 95 %), blocks per rail, latency p50/p95 per outcome;
    with ``families`` (prompt -> family, the benign set's), the outcomes of each family too."""
    by_rail = Counter()
    by_family: dict[str, Counter] = defaultdict(Counter)
    latency: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        rail = _rail(r.get("guard_flags") or [])
        by_rail[rail or "passed"] += 1
        latency[rail or "passed"].append(float(r.get("latency_ms") or 0))
        if families is not None:
            user = next((m.get("content") for m in r["messages"] if m.get("role") == "user"), "")
            by_family[families.get(user, "other")][rail or "passed"] += 1
    n = len(rows)
    blocked = n - by_rail["passed"]
    return {
        "requests": n,
        "blocked": blocked,
        "block_rate": round(blocked / n, 4) if n else None,
        "ci95": wilson(blocked, n),
        "by_rail": dict(by_rail),
        **({"by_family": {k: dict(v) for k, v in sorted(by_family.items())}} if families is not None else {}),
        "latency_ms": {
            k: {"p50": round(float(np.percentile(v, 50)), 1), "p95": round(float(np.percentile(v, 95)), 1)}
            for k, v in latency.items()
        },
    }


def wait_logged(store, tenant: str, expected: int, timeout_s: float = 60) -> list[dict]:
    """The tenant's logged interactions, once ``expected`` of them are there (the gateway commits before it
    answers, so they normally are at once)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = store.list(tenant=tenant)
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def markdown(result: dict) -> str:
    a, b = result["attacks"], result["benign"]
    lines = [
        f"# Red team of `{result['model']}` at {result['gateway']}",
        "",
        f"garak probes: {', '.join(result['probes'])}",
        "",
        "| traffic | requests | blocked | rate | 95 % CI | by rail | latency p50 / p95 (ms) |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for name, s in (("garak attacks", a), ("benign set", b)):
        rails = ", ".join(f"{k} {v}" for k, v in sorted(s["by_rail"].items()))
        lat = "; ".join(f"{k} {v['p50']}/{v['p95']}" for k, v in sorted(s["latency_ms"].items()))
        lines.append(
            f"| {name} | {s['requests']} | {s['blocked']} | {s['block_rate']:.1%} | "
            f"[{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}] | {rails} | {lat} |"
        )
    for fam, counts in sorted(b.get("by_family", {}).items()):
        n = sum(counts.values())
        rails = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "passed") or "none"
        lines.append(f"| benign: {fam} | {n} | {n - counts.get('passed', 0)} | | | {rails} | |")
    if result.get("by_probe"):
        lines += ["", "What the rails did with each probe's prompts:", "", "| probe | prompts | blocked | by rail |",
                  "|---|---:|---:|---|"]  # fmt: skip
        for probe, counts in result["by_probe"].items():
            n = sum(counts.values())
            blocked = n - counts.get("passed", 0) - counts.get("not logged", 0)
            rails = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            lines.append(f"| {probe} | {n} | {blocked} ({blocked / n:.1%}) | {rails} |")
    lines += ["", "garak's detectors (attack success = the model misbehaved on what the rails let through):", ""]
    lines += ["| probe | prompts | detector | passed / total | attack success |", "|---|---:|---|---:|---:|"]
    for probe, p in sorted(result["garak"].items()):
        for det, d in sorted(p["detectors"].items()):
            asr = "" if d["attack_success_rate"] is None else f"{d['attack_success_rate']:.1%}"
            lines.append(f"| {probe} | {p['attempts']} | {det} | {d['passed']} / {d['total']} | {asr} |")
    return "\n".join(lines) + "\n"
