"""Tasks: register and gate a candidate, promote it, close the cycle's run, roll back; emit the model events."""

from __future__ import annotations

from prefect import task

from flywheel.core.workload import WorkloadConfig
from flywheel.evaluation.promotion import register_and_gate
from tasks.common import logger, registry
from tasks.events import emit


@task(name="gate-and-register", tags=["registry"])
def gate_and_register(
    workload: WorkloadConfig, run_id: str, candidate: dict, champion_ref: dict, datasets: dict, key: str
) -> dict:
    """Register the candidate as a new version (alias challenger); promote it if the gate passes."""
    log = logger()
    out = register_and_gate(registry(), workload, run_id, candidate, champion_ref, datasets, key)
    if out["promoted"]:
        emit(
            "flywheel.model.promoted",
            workload.name,
            {"version": out["version"], "previous": champion_ref["version"], "metrics": candidate},
        )
        log.info("gate passed: %s v%s is the new champion", workload.name, out["version"])
    else:
        log.warning(
            "gate refused v%s: %s; champion stays v%s",
            out["version"],
            "; ".join(out["decision"]["reasons"]),
            champion_ref["version"],
        )
    return out


@task(name="end-training-run", tags=["tracking"])
def end_run(run_id: str, status: str = "FINISHED") -> None:
    registry().client.set_terminated(run_id, status)


@task(name="rollback-model", tags=["registry"])
def rollback(workload: str, to: str | None = None) -> dict:
    """Move the champion back (``flywheel rollback`` runs it on its own: one alias move needs no flow)."""
    old, new = registry().rollback(workload, to)
    emit("flywheel.model.rolled_back", workload, {"from": old.version, "to": new.version})
    return {"workload": workload, "from": old.version, "to": new.version}
