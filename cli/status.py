"""`flywheel status`: where a workload stands — champion and challenger with their metrics, feedback waiting
since the last retrain's watermark and the trigger's progress, the last and next run of each of its deployments,
and the daily retrain budget. The Prefect part says so when the server cannot be reached; the rest still shows.
"""

from __future__ import annotations

from datetime import UTC, datetime


def _card(ref) -> dict | None:
    if ref is None:
        return None
    metrics = {}
    for k, v in (ref.metrics or {}).items():
        metrics[k] = {x: v.get(x) for x in ("value", "low", "high")} if isinstance(v, dict) else {"value": v}
    return {"version": ref.version, "kind": ref.tags.get("kind", "candidate"), "gate": ref.evaluation.get("gate"),
            "metrics": metrics}  # fmt: skip


def _deployments(workload: str) -> list[dict]:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, DeploymentFilterTags
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    out = []
    with get_client(sync_client=True) as client:
        deps = client.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[workload])))
        flows = {}
        for d in deps:
            flows.setdefault(d.flow_id, client.read_flow(d.flow_id).name)
            only = DeploymentFilter(id=DeploymentFilterId(any_=[d.id]))
            runs = client.read_flow_runs(deployment_filter=only, sort=FlowRunSort.START_TIME_DESC, limit=20)
            ran = [r for r in runs if r.start_time is not None]
            upcoming = sorted(
                (r for r in runs if r.state_type == StateType.SCHEDULED and r.expected_start_time),
                key=lambda r: r.expected_start_time,
            )
            last = ran[0] if ran else None
            out.append({
                "deployment": f"{flows[d.flow_id]}/{d.name}",
                "paused": bool(d.paused),
                "last_run": None if last is None else {"name": last.name, "state": last.state_name,
                                                       "start": last.start_time.isoformat()},
                "next_run": upcoming[0].expected_start_time.isoformat() if upcoming else None,
            })  # fmt: skip
    return sorted(out, key=lambda x: x["deployment"])


def collect(home, cfg) -> dict:
    from flywheel.feedback.store import FeedbackStore
    from tasks.common import registry

    reg = registry(home)
    name = cfg.name
    store = FeedbackStore(home.database_url())
    watermark, consumed = store.watermark(name), store.consumed(name)
    out = {
        "workload": name,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "champion": _card(reg.champion(name)),
        "challenger": _card(reg.get_alias(name, "challenger")),
        "feedback": {**store.counts(name), "watermark": watermark, "consumed_up_to": consumed},
        "trigger": {"new_feedback": watermark - consumed, "threshold": cfg.retrain.feedback_threshold},
        "budget": {
            "max_runs_per_day": cfg.retrain.max_runs_per_day,
            "max_minutes_per_day": cfg.retrain.max_minutes_per_day,
        },
    }
    try:
        from tasks.budget import retrain_usage

        out["deployments"] = _deployments(name)
        used = retrain_usage.fn(name)
        out["budget"] |= {"retrains_last_24h": used["runs"], "minutes_last_24h": round(used["minutes"], 1)}
    except Exception as e:  # noqa: BLE001 - a Prefect outage must not hide the rest
        out["deployments"] = {"error": f"Prefect unreachable: {type(e).__name__}: {e}"[:300]}
    return out


def render(s: dict) -> str:
    def metric(card, key="accuracy"):
        m = (card or {}).get("metrics", {}).get(key)
        if not m or m.get("value") is None:
            return "—"
        ci = f" [{m['low']:.3f}, {m['high']:.3f}]" if m.get("low") is not None else ""
        return f"{m['value']:.3f}{ci}"

    lines = [f"{s['workload']} at {s['at']}"]
    for role in ("champion", "challenger"):
        c = s[role]
        lines.append(f"  {role:10}  " + ("none" if c is None else
                     f"v{c['version']} ({c['kind']}, gate {c['gate'] or '—'}): accuracy {metric(c)}"))  # fmt: skip
    f, t = s["feedback"], s["trigger"]
    lines.append(f"  feedback    {f['feedback']} on {f['interactions']} interactions ({f['positive']} positive, "
                 f"{f['negative']} negative, {f['corrections']} corrections)")  # fmt: skip
    lines.append(f"  trigger     {t['new_feedback']} of {t['threshold']} new feedback since the last retrain "
                 f"(watermark {f['watermark']}, consumed up to {f['consumed_up_to']})")  # fmt: skip
    b = s["budget"]
    used = b.get("retrains_last_24h", "?")
    cap = f" of {b['max_runs_per_day']} a day" if b["max_runs_per_day"] is not None else " (no limit)"
    mins = f"{b['minutes_last_24h']:g}" if "minutes_last_24h" in b else "?"
    mcap = f" of {b['max_minutes_per_day']:g} a day" if b.get("max_minutes_per_day") is not None else ""
    lines.append(f"  budget      {used} retrains{cap}, {mins} minutes{mcap} in the last 24 h")
    deps = s["deployments"]
    if isinstance(deps, dict):
        lines.append(f"  deployments {deps['error']}")
    elif not deps:
        lines.append("  deployments none (flywheel deploy)")
    for d in deps if isinstance(deps, list) else []:
        last = d["last_run"]
        lines.append(f"  {d['deployment']}{' (paused)' if d['paused'] else ''}: last "
                     + (f"{last['name']} {last['state']} {last['start'][:19]}" if last else "never")
                     + (f", next {d['next_run'][:19]}" if d["next_run"] else ""))  # fmt: skip
    return "\n".join(lines)
