"""Canary and shadow rollouts: a version the gate passed meets live traffic before it takes all of it.

``flywheel deploy-model V`` (``deploy:`` of the workload, :class:`~flywheel.serving.config.RolloutConfig`):

1. the new version answers the workload's most recent live prompts (``canary_prompts``); at least
   ``canary_min_format`` of the answers must start with one of the workload's labels, or nothing moves;
2. ``direct``: it becomes the champion. ``canary``: registry alias ``canary`` and the registered model's
   ``rollout`` tag; the gateway answers ``share`` of live requests with it. ``shadow``: the gateway also sends
   ``share`` of requests to it in the background and logs its answers (``guard_flags: ["shadow"]``), never
   returning them;
3. the gateway keeps score per version from the feedback store (durable, so a restart loses no evidence):
   canary answers are judged by their own ratings; a shadow answer is judged by the feedback on the live answer
   it shadowed (right when its label is the correction's, or the approved answer's). Once ``min_rated`` of the
   new version's answers are judged, :func:`decide` promotes it, or rolls it back when its accuracy is more than
   ``max_accuracy_drop`` below the champion's on the same window, when guardrails block more than
   ``max_guard_block_rate`` of its answers, or when its p95 latency exceeds ``max_latency_ratio`` times the
   champion's; a rollback emits ``flywheel.model.rolled_back`` (and a promotion ``flywheel.model.promoted``)
   through the store's outbox.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from flywheel.serving.config import RolloutConfig

ROLLOUT_TAG = "rollout"
CANARY = "canary"
SHADOW_FLAG = "shadow"


@dataclass
class Rollout:
    workload: str
    version: str
    mode: str  # canary | shadow
    share: float
    champion: str  # the champion it is compared with
    started: str
    status: str = "running"  # running | promoted | rolled_back
    reasons: list[str] = field(default_factory=list)


def label_of(text: str | None, labels: list[str]) -> str | None:
    head = (text or "").strip().split(":", 1)[0].strip().upper()
    return head if head in {x.upper() for x in labels} else None


def canary_check(answers: list[str], labels: list[str], cfg: RolloutConfig) -> tuple[bool, float]:
    """Whether enough canary answers keep the answer contract (start with a label); the share that did."""
    if not answers:
        return True, 1.0
    rate = sum(label_of(a, labels) is not None for a in answers) / len(answers)
    return rate >= cfg.canary_min_format, rate


def start(reg, workload: str, version: str, mode: str, share: float) -> Rollout:
    champ = reg.champion(workload)
    r = Rollout(workload, str(version), mode, share, champ.version if champ else "", _now())
    reg.client.set_registered_model_alias(workload, CANARY, str(version))
    reg.client.set_registered_model_tag(workload, ROLLOUT_TAG, json.dumps(asdict(r)))
    return r


class RegistryRollouts:
    """What the gateway asks about rollouts, backed by the MLflow registry."""

    def __init__(self, reg):
        self.reg = reg

    def current(self, workload: str) -> Rollout | None:
        return current(self.reg, workload)

    def finish(self, r: Rollout, verdict: str, reasons: list[str]) -> Rollout:
        return finish(self.reg, r, verdict, reasons)


def current(reg, workload: str) -> Rollout | None:
    """The running rollout of the workload, if any."""
    tags = reg.client.get_registered_model(workload).tags or {}
    if ROLLOUT_TAG not in tags:
        return None
    r = Rollout(**json.loads(tags[ROLLOUT_TAG]))
    return r if r.status == "running" else None


def finish(reg, r: Rollout, verdict: str, reasons: list[str]) -> Rollout:
    """``promote``: the version becomes the champion (how: canary); ``rollback``: it leaves traffic. The alias
    ``canary`` is removed either way and the ``rollout`` tag records the outcome."""
    from flywheel.evaluation.promotion import promote

    if verdict == "promote":
        promote(reg, r.workload, r.version, f"{r.mode}", "; ".join(reasons))
    r.status, r.reasons = ("promoted" if verdict == "promote" else "rolled_back"), reasons
    try:
        reg.client.delete_registered_model_alias(r.workload, CANARY)
    except Exception:  # noqa: BLE001 - already gone (another gateway replica decided first)
        pass
    reg.client.set_registered_model_tag(r.workload, ROLLOUT_TAG, json.dumps(asdict(r)))
    reg.set_tag(r.workload, r.version, "rollout", json.dumps({"status": r.status, "reasons": reasons, "at": _now()}))
    return r


def live_stats(rows: list[dict], version: str, labels: list[str], since: str) -> dict:
    """Score of ``version`` on the interaction rows logged since ``since`` (ISO time): its own rated answers,
    and its shadow answers judged by the feedback on the live answer they shadowed."""
    by_id = {r["id"]: r for r in rows}
    judged = correct = requests = blocked = 0
    latencies = []
    start = _naive(since)
    for r in rows:
        if str(r.get("model_version")) != str(version) or _naive(r["ts"]) < start:
            continue
        shadow = SHADOW_FLAG in (r.get("guard_flags") or [])
        requests += 1
        blocked += any(f.startswith("blocked") for f in r.get("guard_flags") or [])
        latencies.append(r["latency_ms"])
        if shadow:
            live = by_id.get(r["id"].removesuffix("-shadow"))
            if not live or (live["rating"] is None and not live["correction"]):
                continue
            truth = live["correction"] or (live["response"] if live["rating"] == 1 else None)
            if truth is None:  # a bad live answer without a correction says nothing about the shadow's
                continue
            judged += 1
            want = label_of(truth, labels)
            correct += want is not None and label_of(r["response"], labels) == want
        elif r["rating"] is not None or r["correction"]:
            judged += 1
            correct += r["rating"] == 1 and not r["correction"]
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None
    return {
        "requests": requests,
        "judged": judged,
        "correct": correct,
        "accuracy": correct / judged if judged else None,
        "guard_block_rate": blocked / requests if requests else 0.0,
        "p95_latency_ms": p95,
    }


def decide(champion: dict, candidate: dict, cfg: RolloutConfig) -> tuple[str, list[str]]:
    """``continue`` until the candidate has ``min_rated`` judged answers; then ``rollback`` (with the rules it
    broke) or ``promote``."""
    if candidate["judged"] < cfg.min_rated:
        return "continue", [f"{candidate['judged']}/{cfg.min_rated} judged answers"]
    broken = []
    if champion["accuracy"] is not None and candidate["accuracy"] < champion["accuracy"] - cfg.max_accuracy_drop:
        broken.append(
            f"live accuracy {candidate['accuracy']:.3f} < champion {champion['accuracy']:.3f} - "
            f"{cfg.max_accuracy_drop} ({candidate['judged']} vs {champion['judged']} judged)"
        )
    if candidate["guard_block_rate"] > cfg.max_guard_block_rate:
        broken.append(f"guard blocks {candidate['guard_block_rate']:.3f} > {cfg.max_guard_block_rate}")
    cl, ch = candidate["p95_latency_ms"], champion["p95_latency_ms"]
    if cl and ch and cl > cfg.max_latency_ratio * ch:
        broken.append(f"p95 latency {cl:.0f} ms > {cfg.max_latency_ratio} x champion's {ch:.0f} ms")
    if broken:
        return "rollback", broken
    acc = "n/a" if candidate["accuracy"] is None else f"{candidate['accuracy']:.3f}"
    return "promote", [f"live accuracy {acc} on {candidate['judged']} judged answers; every rule held"]


def _naive(ts: str) -> datetime:
    """An ISO time as naive UTC (SQLite gives naive times back; they were written in UTC)."""
    t = datetime.fromisoformat(ts)
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
