"""Flow ``flywheel`` (module ``flows.cycle``): one full cycle of the loop. The body is the plan:

ingest -> golden set -> curate -> knowledge base (incremental) -> SFT data (+ feedback, minus golden leaks) ->
train (subflow) -> register, evaluate with base, base + ICL and champion, gate, promote (subflow, one transaction)

flywheel run --workload configs/workloads/fraud.yaml [--json]
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.evaluate import evaluate
from flows.train import train
from flywheel.core.workload import WorkloadConfig
from tasks.common import home, publish_counts, write_summary
from tasks.curate import curate_dataset
from tasks.evaluate import golden_set
from tasks.ingest import ingest_documents
from tasks.kb import build as build_kb
from tasks.train import build_sft_dataset, crashed_training, mark_feedback_consumed, training_start


@flow(name="flywheel", log_prints=True, persist_result=True)
def cycle(
    workload: WorkloadConfig,
    include_feedback: bool = False,
    trigger: str | None = None,
    watermark: int | None = None,
    resume_of: str | None = None,
) -> dict:
    """``resume_of``: the id of a crashed retrain flow run this one reruns (its training continues from its last
    checkpoint when the SFT Dataset is the same)."""
    log = get_run_logger()
    name = workload.name
    inp = workload.inputs.resolved(home().root, name)  # absolute paths; ConfigError unless train, test, general_text

    # 1. ingest: labelled examples, the held-out split, the documents for the knowledge base
    raw_train = ingest_documents(inp.train, f"{name}-train-raw", workload.ingest)
    test = ingest_documents(inp.test, f"{name}-test", workload.ingest)
    golden = golden_set(workload, test)  # frozen: the yardstick every version of this workload is judged on
    raw_docs = ingest_documents(inp.documents, f"{name}-documents-raw", workload.ingest) if inp.documents else None
    # 2. curate
    train_set = curate_dataset(raw_train["path"], f"{name}-train", workload.curation)
    docs = curate_dataset(raw_docs["path"], f"{name}-documents", workload.curation) if raw_docs else None
    # the knowledge base follows the curated documents: only new or changed ones are embedded and extracted
    kb = build_kb(docs["path"], str(home().kb / name), workload.kb) if docs and workload.kb else None
    # 3. where training starts (the champion's adapter, or the base model), and the SFT data: curated rows, or
    #    the continual policy's mix with the feedback up to the watermark; minus anything leaking into golden
    start = training_start(workload)
    sft = build_sft_dataset(train_set["path"], workload, include_feedback, golden["path"], watermark, start["start"])
    lineage = {"curated": train_set, "evaluation": golden, **({"knowledge": docs} if docs else {})}
    # 4. train a candidate adapter (a crashed retrain's rerun continues from its checkpoint)
    resume_run_id = crashed_training(workload, resume_of, sft) if resume_of else None
    trained = train(workload, sft, lineage, trigger, start["init_adapter"], resume_run_id)
    # 5. register it, evaluate it with base, base + ICL and champion on the golden set, gate, promote
    digests = {"training": sft["digest"], **{k: v["digest"] for k, v in lineage.items()}}
    result = evaluate(
        workload,
        trained["run_id"],
        trained["adapter_dir"],
        trained["base_model_path"],
        golden["path"],
        inp.general_text,
        digests,
        icl_pool_path=train_set["path"],
        trigger=trigger,
        leakage={"dropped_leakage": sft["dropped_leakage"]},
        feedback={k: sft[k] for k in ("watermark", "after", "new_feedback", "replay_rows", "start")},
    )
    mark_feedback_consumed(workload, sft, trained["run_id"])  # the next retrain's new feedback starts after it

    summary = {
        "workload": name,
        "trigger": trigger,
        "mlflow_run_id": trained["run_id"],
        "data": {
            "ingest_train": raw_train["counts"],
            "ingest_documents": raw_docs["counts"] if raw_docs else None,
            "curate_train": train_set["counts"],
            "curate_documents": docs["counts"] if docs else None,
            "kb": kb,
            "quarantined": [q for d in (raw_train, test, raw_docs) if d for q in d["quarantine"]],
            "sft_rows": sft["rows"],
            "sft_from_feedback": sft["from_feedback"],
            "sft_plan": {k: sft[k] for k in ("start", "new_feedback", "replay_rows", "watermark", "after")},
            "test_rows": test["rows"],
            "golden": {k: golden[k] for k in ("digest", "rows")},
            "sft_dropped_leakage": sft["dropped_leakage"],
            "digests": digests,
        },
        "training": {
            "first_loss": trained["losses"][0] if trained.get("losses") else None,
            **{
                k: trained[k]
                for k in (
                    "steps",
                    "examples",
                    "train_loss",
                    "final_loss",
                    "seconds",
                    "tokens_per_second",
                    "trainable_params",
                    "total_params",
                    "device",
                )
            },
        },
        "champion": result["champion"],
        "candidate": result["candidate"],
        "gate": result["decision"],
        "promoted": result["promoted"],
        "served_version": result["champion_version"],
        "evaluation": result["evaluation"],
        "report": result["report"],
    }
    write_summary(trained["run_id"], summary)  # <home>/runs/<run id>/summary.json
    publish_counts(
        f"{name}-cycle",
        "Flywheel cycle",
        {
            "sft_rows": sft["rows"],
            "candidate_accuracy": result["candidate"]["metrics"]["accuracy"],
            "champion_accuracy": result["champion"]["metrics"]["accuracy"],
            "promoted": result["promoted"],
            "served_version": result["champion_version"],
        },
    )
    log.info(
        "cycle done: candidate v%s %s; champion is v%s",
        result["version"],
        "promoted" if result["promoted"] else "refused",
        result["champion_version"],
    )
    return summary
