"""Tasks: benchmark a model (base, champion or candidate) on the held-out split and general text."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from flywheel.core.config import WorkloadConfig
from flywheel.evaluation.metrics import evaluate_model
from flywheel.training.data import labelled_rows
from tasks.common import logger


@task(name="evaluate-model", retries=1, tags=["evaluation"])
def evaluate(label: str, base_path: str, adapter_dir: str | None, test_dataset_path: str, general_text_path: str,
             workload: WorkloadConfig) -> dict:
    log = logger()
    rows = labelled_rows(test_dataset_path)
    text = Path(general_text_path).read_text()
    res = evaluate_model(base_path, adapter_dir, rows, text, workload.labels, workload.system_prompt, workload.eval)
    log.info("%s: accuracy %.3f on %s examples, perplexity %.2f (%.0fs)", label, res.accuracy, res.n_examples,
             res.perplexity, res.seconds)
    return res.metrics()


def eval_key(test_digest: str, general_text_path: str, workload: WorkloadConfig) -> str:
    """What the metrics were measured on: a champion's stored metrics are reused only for the same key."""
    import hashlib

    text_digest = hashlib.sha256(Path(general_text_path).read_bytes()).hexdigest()[:12]
    return f"{test_digest[:12]}-{text_digest}-{workload.eval.max_examples}-{workload.eval.perplexity_max_tokens}"

