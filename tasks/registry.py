"""Tasks: register a candidate, record its evaluation, promote it, close the cycle's run, roll back; emit the
model events.

``register_candidate`` and ``promote_candidate`` undo themselves when the transaction they run in fails
(``on_rollback``): the half-evaluated version is deleted and ``champion`` goes back where it was, so a crash
between register and promote leaves the registry as it was before the cycle.
"""

from __future__ import annotations

from prefect import task
from prefect.transactions import get_transaction

from flywheel.core.dataset import read_dataset
from flywheel.core.workload import WorkloadConfig
from flywheel.evaluation.promotion import ensure_champion, lineage_tags, promote, record_evaluation
from flywheel.evaluation.promotion import register_candidate as register
from tasks.common import logger, registry
from tasks.events import emit


@task(name="register-candidate", tags=["registry"])
def register_candidate(
    workload: WorkloadConfig,
    run_id: str,
    datasets: dict,
    golden_path: str,
    trigger: str | None = None,
    feedback: dict | None = None,
) -> str:
    """A new version (alias challenger) with its lineage tags; returns its number."""
    reg = registry()
    champion = ensure_champion(reg, workload)  # the base model is version 1 of a new workload
    golden = read_dataset(golden_path).digest
    tags = lineage_tags(workload, datasets, golden, champion.version, trigger, feedback)
    ref = register(reg, workload, run_id, tags)
    get_transaction().set("registered", {"workload": workload.name, "version": ref.version})
    logger().info("registered %s v%s (challenger)", workload.name, ref.version)
    return ref.version


@register_candidate.on_rollback
def _unregister(txn) -> None:
    reg = txn.get("registered")
    registry().delete_version(reg["workload"], reg["version"])
    logger().warning("rolled back: %s v%s deleted", reg["workload"], reg["version"])


@task(name="promote-candidate", tags=["registry"])
def promote_candidate(workload: WorkloadConfig, version: str, result: dict, how: str, note: str = "") -> dict:
    """Record the evaluation on the version (one tag) and move ``champion`` to it when ``how`` says so
    (gate | approval | force); "refused" (by the gate) and "rejected" (by a person) record only. Returns what
    is served now."""
    reg, log = registry(), logger()
    verdict = {"refused": "refused", "rejected": "rejected", "force": "forced"}.get(how, "passed")
    record_evaluation(reg, workload.name, version, result, verdict, note)
    if how in ("refused", "rejected"):
        why = note or "; ".join(result["decision"]["reasons"])
        log.warning("v%s %s: %s; champion stays v%s", version, how, why, result["champion_version"])
        return {"promoted": False, "champion_version": result["champion_version"], "how": how,
                "candidate_version": version, "reasons": result["decision"]["reasons"]}  # fmt: skip
    previous = reg.champion(workload.name).version
    try:
        promote(reg, workload.name, version, how, note)
    except BaseException:  # a task's own failure does not run its rollback hook: undo here
        reg.restore_champion(workload.name, previous)
        raise
    get_transaction().set("promoted", {"workload": workload.name, "version": version, "previous": previous})
    log.info("%s v%s is the new champion (%s)", workload.name, version, how)
    return {"promoted": True, "champion_version": version, "previous": previous, "how": how}


@promote_candidate.on_rollback
def _unpromote(txn) -> None:
    done = txn.get("promoted", None)
    if done and done["previous"] != done["version"]:
        registry().restore_champion(done["workload"], done["previous"])
        logger().warning("rolled back: %s champion is v%s again", done["workload"], done["previous"])


@task(name="announce-promotion", tags=["registry"])
def announce(workload: WorkloadConfig, served: dict) -> None:
    """``flywheel.model.promoted`` (or ``.refused``) for whoever listens: the notification automation; the gateway
    reloads on its own."""
    if served["promoted"]:
        payload = {"version": served["champion_version"], "previous": served["previous"], "how": served["how"]}
        emit("flywheel.model.promoted", workload.name, payload)
    else:  # the gate (or a person) said no: the champion stays
        payload = {k: served.get(k) for k in ("candidate_version", "champion_version", "how", "reasons")}
        emit("flywheel.model.refused", workload.name, payload)


@task(name="end-training-run", tags=["tracking"])
def end_run(run_id: str, status: str = "FINISHED") -> None:
    registry().client.set_terminated(run_id, status)


@task(name="rollback-model", tags=["registry"])
def rollback(workload: str, to: str | None = None) -> dict:
    """Move the champion back (``flywheel rollback`` runs it on its own: one alias move needs no flow)."""
    old, new = registry().rollback(workload, to)
    emit("flywheel.model.rolled_back", workload, {"from": old.version, "to": new.version})
    return {"workload": workload, "from": old.version, "to": new.version}
