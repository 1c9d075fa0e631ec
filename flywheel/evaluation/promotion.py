"""Candidate against champion, base and base + ICL, as the loop's evaluate flow runs it.

1. :func:`register_candidate`: a new version (alias ``challenger``) created with all its lineage tags in one
   call (training data digests, golden digest, config hash, code revision, parent version, trigger event);
2. :func:`evaluate_candidate`: the four rows on the frozen golden set (``suite.Suite``, outcomes cached), a
   scorecard with intervals per row, paired comparisons of the candidate with each reference, the gate's
   decision (``gate.decide``);
3. :func:`record_evaluation`: the verdict and metrics as one ``evaluation`` tag (one write: never half a verdict);
4. :func:`promote`: alias ``champion`` moves; ``served_from`` / ``served_until`` tags date who served when.

With no champion yet, the base model is registered as version 1 and becomes it, so there is always a champion
to compare with and to roll back to. The Prefect flow runs 1-4 inside a transaction whose rollback deletes the
half-evaluated version and puts ``champion`` back (``tasks/registry.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from flywheel.evaluation.gate import decide
from flywheel.evaluation.metrics import compare, flat, scorecard
from flywheel.evaluation.suite import Suite
from flywheel.registry.mlflow_registry import ModelRef, Registry, code_revision, config_hash


def lineage_tags(
    workload, datasets: dict, golden_digest: str, parent: str | None, trigger: str | None, feedback: dict | None = None
) -> dict:
    """What a version is made of: ``data.<role>`` digests (training, curated, evaluation, knowledge), the
    golden set, the workload config's hash, the code revision, the version it was trained after, the event
    that started the cycle, and the feedback window it read (``feedback`` JSON: watermark, after, new rows,
    replayed rows, start)."""
    return {
        "feedback": json.dumps(feedback or {}),
        "base_model": workload.sft.base_model,
        "golden_digest": golden_digest,
        "config_hash": config_hash(workload.model_dump(mode="json")),
        "code_revision": code_revision(),
        "parent_version": parent or "",
        "trigger_event": trigger or "manual",
        **{f"data.{k}": v for k, v in datasets.items()},
    }


def choose_golden_set(reg: Registry, workload, test: dict) -> tuple[dict, str | None]:
    """The golden set to judge on, and a note when the test input differs from it. The first test Dataset a
    workload is judged on is frozen (registered-model tag ``golden_set``); with ``eval.golden: latest`` the
    current test input replaces it."""
    from flywheel.core.dataset import read_dataset
    from flywheel.core.errors import DataError

    frozen = reg.golden_set(workload.name)
    if frozen is None or workload.eval.golden == "latest" or frozen["digest"] == test["digest"]:
        if frozen is None or frozen["digest"] != test["digest"]:
            reg.freeze_golden_set(workload.name, test)
        return {k: test[k] for k in ("name", "digest", "rows", "path")}, None
    if not Path(frozen["path"], "manifest.json").exists():
        raise DataError(
            f"golden set {frozen['digest'][:12]} of {workload.name} is gone ({frozen['path']}); set eval.golden: "
            "latest to freeze the current test input instead"
        )
    note = (
        f"test input changed ({test['digest'][:12]}) but {workload.name} keeps its frozen golden set "
        f"{frozen['digest'][:12]}; set eval.golden: latest to re-freeze"
    )
    return {**frozen, "rows": read_dataset(frozen["path"]).rows}, note


def register_candidate(reg: Registry, workload, run_id: str, tags: dict) -> ModelRef:
    """The candidate as a new version; the base model is registered first (version 1) if nothing is yet."""
    ensure_champion(reg, workload)
    return reg.register_candidate(workload.name, run_id, "adapter", tags)


def ensure_champion(reg: Registry, workload) -> ModelRef:
    """The champion; with none yet, the base model registered as version 1 becomes it."""
    ref = reg.champion(workload.name)
    if ref is None:
        reg.register_base(workload.name, workload.sft.base_model, {})
        ref = reg.champion(workload.name)
    return ref


def evaluate_candidate(
    reg: Registry,
    suite: Suite,
    workload,
    candidate: ModelRef | None,
    candidate_adapter: str | None,
    models_dir: str | Path,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Base, base + ICL, champion and candidate on the golden set; the candidate compared with each (paired);
    the gate's decision. ``candidate`` None with an adapter: an unregistered adapter (``flywheel evaluate``)."""
    log = log or (lambda _m: None)
    champion = ensure_champion(reg, workload)
    cache = Path(models_dir) / "registry"
    outcomes = {"base": suite.outcomes("base")}
    if icl := suite.icl_row():
        outcomes["icl"] = suite.outcomes(icl)
    if champion.is_base:
        outcomes["champion"] = outcomes["base"]
    else:
        outcomes["champion"] = suite.outcomes(_row(champion), str(reg.local_path(champion, cache)))
    if candidate is not None and candidate.is_base:
        outcomes["candidate"] = outcomes["base"]
    elif candidate is not None:
        adapter = candidate_adapter or str(reg.local_path(candidate, cache))
        outcomes["candidate"] = suite.outcomes(_row(candidate), adapter)
    else:
        outcomes["candidate"] = suite.outcomes(f"adapter-{_digest_of(candidate_adapter)}", candidate_adapter)
    ev, labels = workload.eval, workload.labels
    cards = {n: scorecard(o, labels, ev.slices, ev.bootstrap, ev.seed, ev.confidence) for n, o in outcomes.items()}
    comps = {
        r: compare(outcomes["candidate"], outcomes[r], labels, ev.slices, ev.bootstrap, ev.seed, ev.confidence)
        for r in ("champion", "base", "icl")
        if r in outcomes
    }
    decision = decide(cards["candidate"], {r: (cards[r], comps[r]) for r in comps}, workload.gate)
    label = f"v{candidate.version}" if candidate is not None else "adapter"
    a = cards["candidate"]["metrics"].get("accuracy", {})
    log(
        f"{label}: accuracy {a.get('value', float('nan')):.3f} [{a.get('low') or 0:.3f}, {a.get('high') or 0:.3f}] "
        f"vs champion v{champion.version}; gate {'passed' if decision.promote else 'refused'}"
        + ("" if decision.promote else ": " + "; ".join(decision.reasons[:3]))
    )
    return {
        "workload": workload.name,
        "candidate_label": label,
        "candidate_version": candidate.version if candidate is not None else None,
        "champion_version": champion.version,
        "key": suite.key,
        "golden": suite.golden,
        "n_examples": len(suite.rows),
        "confidence": ev.confidence,
        "bootstrap": ev.bootstrap,
        "rows": cards,
        "comparisons": comps,
        "decision": decision.as_dict(),
        "outcomes": {n: str(suite.cache / o.model) for n, o in outcomes.items()},
    }


def _row(ref: ModelRef) -> str:
    """A version's row in the outcomes cache: its number and its run (a number alone could name two models if a
    registry were ever rebuilt)."""
    return f"v{ref.version}-{(ref.run_id or 'norun')[:8]}"


def _digest_of(folder: str | None) -> str:
    import hashlib

    h = hashlib.sha256()
    for f in sorted(Path(folder or ".").rglob("*")):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:12]


def record_evaluation(reg: Registry, workload: str, version: str, result: dict, verdict: str, note: str = "") -> None:
    """The version's evaluation in one tag (one write): key, golden digest, champion compared with, verdict,
    reasons, metric values. The base model's version gets its own row once (verdict ``baseline``), so the
    lineage of a served base model also names the golden set it was judged on."""
    payload = {
        "key": result["key"],
        "golden_digest": result["golden"]["digest"],
        "compared_to": result["champion_version"],
        "gate": verdict,
        "reasons": [r[:300] for r in result["decision"]["reasons"][:8]],
        "note": note[:500],
        "metrics": flat(result["rows"]["candidate"]),
    }
    reg.set_tag(workload, version, "evaluation", json.dumps(payload))
    base = next((v for v in reg.versions(workload) if v.is_base), None)
    if base is not None and not base.evaluation and "base" in result["rows"]:
        baseline = {k: payload[k] for k in ("key", "golden_digest")}
        baseline.update(gate="baseline", metrics=flat(result["rows"]["base"]))
        reg.set_tag(workload, base.version, "evaluation", json.dumps(baseline))


def promote(reg: Registry, workload: str, version: str, how: str, note: str = "") -> str | None:
    """Move ``champion`` to ``version``; ``how`` is gate | approval | force (recorded). Returns the previous
    champion's version."""
    previous = reg.champion(workload)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    reg.promote(workload, version)
    reg.set_tag(workload, version, "promotion", json.dumps({"at": now, "how": how, "note": note[:500]}))
    reg.set_tag(workload, version, "served_from", now)
    reg.set_tag(workload, version, "served_until", "")  # serving again, if it had served before
    if previous is not None and previous.version != str(version):
        reg.set_tag(workload, previous.version, "served_until", now)
        return previous.version
    return None
