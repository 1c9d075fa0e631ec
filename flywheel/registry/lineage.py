"""The lineage of a served model, in one call: source files -> ingest and curation Datasets (digest, rows) ->
SFT Dataset -> training run -> version -> gate decision -> when it was served.

Everything is read back from what the stages recorded: the version's tags (``data.<role>`` digests, golden
digest, config hash, code revision, parent version, trigger event, ``evaluation``, ``promotion``,
``served_from``/``served_until``), its MLflow run (parameters and metrics of the training), and the Dataset
manifests under the home's ``datasets/`` (each names its parents by digest; an ingest Dataset names its files).

    flywheel lineage [VERSION] [--workload fraud] [--json]
"""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.core.errors import NotFound
from flywheel.registry.mlflow_registry import Registry


def dataset_index(datasets_root: str | Path) -> dict[str, dict]:
    """digest -> {name, digest, rows, path, parents, sources} for every Dataset under ``datasets_root``."""
    out = {}
    for m in Path(datasets_root).glob("*/*/manifest.json"):
        try:
            man = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        out[man["digest"]] = {
            "name": man["name"],
            "digest": man["digest"],
            "rows": man.get("rows"),
            "path": str(m.parent),
            "parents": man.get("parents", []),
            "sources": (man.get("config") or {}).get("paths", []),
            "created_at": man.get("created_at"),
        }
    return out


def _tree(digest: str, index: dict, seen: set) -> dict:
    node = dict(index.get(digest) or {"digest": digest, "missing": "no Dataset with this digest in the home"})
    if digest in seen:  # a Dataset can be the parent of two others (the golden set): expand it once
        return {k: node.get(k) for k in ("name", "digest", "rows")} | {"see_above": True}
    seen.add(digest)
    node["parents"] = [_tree(p, index, seen) for p in node.get("parents", [])]
    return node


def lineage(reg: Registry, datasets_root: str | Path, workload: str, version: str | None = None) -> dict:
    ref = reg.version(workload, version) if version else reg.champion(workload)
    if ref is None:
        raise NotFound(f"workload {workload!r} has no champion yet")
    tags = ref.tags
    index, seen = dataset_index(datasets_root), set()
    order = {"training": 0, "evaluation": 1, "knowledge": 2}  # the SFT data's chain first, in full
    roles = sorted((k.removeprefix("data."), v) for k, v in tags.items() if k.startswith("data."))
    data = {r: _tree(d, index, seen) for r, d in sorted(roles, key=lambda rd: (order.get(rd[0], 9), rd[0]))}
    training = None
    if ref.run_id and not ref.is_base:
        run = reg.client.get_run(ref.run_id)
        params, metrics = run.data.params, run.data.metrics
        training = {
            "run_id": ref.run_id,
            "started": run.info.start_time,
            "ended": run.info.end_time,
            "status": run.info.status,
            "method": run.data.tags.get("flywheel.method"),
            # the steps run (epochs and a time budget decide them); older runs logged only the cap
            "steps": int(metrics["train_steps"]) if "train_steps" in metrics else params.get("sft.max_steps"),
            "learning_rate": params.get("sft.learning_rate"),
            "tokens_per_second": metrics.get("train_tokens_per_second"),
            "seconds": metrics.get("train_seconds"),
        }
    aliases = [a for a in ("champion", "challenger") if (r := reg.get_alias(workload, a)) and r.version == ref.version]
    return {
        "workload": workload,
        "version": ref.version,
        "kind": tags.get("kind"),
        "aliases": aliases,
        "base_model": tags.get("base_model"),
        "parent_version": tags.get("parent_version") or None,
        "trigger_event": tags.get("trigger_event"),
        "feedback": json.loads(tags["feedback"]) if tags.get("feedback") else None,
        "config_hash": tags.get("config_hash"),
        "code_revision": tags.get("code_revision"),
        "golden_digest": tags.get("golden_digest") or (ref.evaluation or {}).get("golden_digest"),
        "datasets": data,
        "training": training,
        "evaluation": ref.evaluation or None,
        "promotion": json.loads(tags["promotion"]) if "promotion" in tags else None,
        "served_from": tags.get("served_from"),
        "served_until": tags.get("served_until"),
    }


def render(info: dict) -> str:
    """The chain as indented text (what ``flywheel lineage`` prints without ``--json``)."""
    lines = [f"{info['workload']} v{info['version']} ({info['kind']}; {', '.join(info['aliases']) or 'no alias'})"]

    def ds(node: dict, depth: int) -> None:
        pad = "    " * depth
        if node.get("missing"):
            lines.append(f"{pad}{node['digest'][:12]} ({node['missing']})")
            return
        more = " (above)" if node.get("see_above") else ""
        lines.append(f"{pad}{node.get('name')} {node['digest'][:12]} rows={node.get('rows')}{more}")
        for src in node.get("sources", []):
            lines.append(f"{pad}    <- {src}")
        for p in node.get("parents", []):
            ds(p, depth + 1)

    for role, node in info["datasets"].items():
        lines.append(f"  data.{role}:")
        ds(node, 2)
    if t := info["training"]:
        lines.append(f"  training: run {t['run_id']} {t['method']} {t['steps']} steps, {t['status']}")
    lines.append(f"  parent version: {info['parent_version'] or '-'}; trigger: {info['trigger_event']}")
    if fb := info.get("feedback"):
        lines.append(
            f"  feedback: ({fb.get('after')}, {fb.get('watermark')}], {fb.get('new_feedback')} new, "
            f"{fb.get('replay_rows')} replayed rows; started from the {fb.get('start')}"
        )
    lines.append(
        f"  config {info['config_hash']} code {info['code_revision']} golden {str(info['golden_digest'])[:12]}"
    )
    if ev := info["evaluation"]:
        lines.append(
            f"  gate: {ev.get('gate')} vs v{ev.get('compared_to')}"
            + "".join(f"\n    - {r}" for r in ev.get("reasons", []))
        )
    if p := info["promotion"]:
        lines.append(f"  promoted {p['at']} by {p['how']}{(': ' + p['note']) if p.get('note') else ''}")
    until = info["served_until"] or ("now" if "champion" in info["aliases"] else "-")
    lines.append(f"  served from {info['served_from'] or '-'} until {until}")
    return "\n".join(lines)


def built_from(reg: Registry, datasets_root: str | Path, interaction_ids: list[str], workloads: list[str]) -> dict:
    """What was built from these interactions: the Datasets holding their feedback rows (``fb-<id>``, the SFT
    data of a cycle) and every Dataset made from those, and the model versions trained on any of them."""
    import pandas as pd

    wanted = {f"fb-{i}" for i in interaction_ids}
    index = dataset_index(datasets_root)
    direct = set()
    for digest, d in index.items():
        for part in sorted(Path(d["path"]).glob("part-*.parquet")):
            try:
                found = pd.read_parquet(part, columns=["id"])["id"]
            except (KeyError, ValueError, OSError):
                break  # a Dataset without an id column holds no feedback row
            if wanted & set(found.astype(str)):
                direct.add(digest)
                break
    tainted, grew = set(direct), True
    while grew:  # children of a tainted Dataset are tainted too
        grew = False
        for digest, d in index.items():
            if digest not in tainted and tainted & set(d["parents"]):
                tainted.add(digest)
                grew = True
    versions = []
    for w in workloads:
        for v in reg.versions(w):
            used = {val for key, val in v.tags.items() if key.startswith("data.")}
            if used & tainted:
                versions.append({"workload": w, "version": v.version, "datasets": sorted(used & tainted)})
    return {
        "datasets": [{k: index[d][k] for k in ("name", "digest", "path")} | {"holds_rows": d in direct}
                     for d in sorted(tainted)],
        "versions": versions,
    }  # fmt: skip
