"""The general multiple-choice set through lm-evaluation-harness (EleutherAI), offline.

The harness gets the model already loaded (base + adapter, whatever the training method: ``HFLM`` accepts a
``PreTrainedModel``), and a YAML task written next to a copy of the JSONL set; it reads the set with the
``json`` loader of ``datasets`` (local file, nothing downloaded). ``log_samples`` gives per-question results,
so the interval and the paired comparison work on the harness's scores like on ours.

    frame, info = harness_multiple_choice(model, tok, "flywheel/evaluation/data/general_mc.jsonl", batch_size=16)
    frame.correct.mean()   # == info["acc"]

``scorers.multiple_choice`` scores the same task the same way (a test checks that both pick the same choices).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import pandas as pd

from flywheel.evaluation.scorers import mc_context

TASK = "flywheel_general_mc"


def task_yaml(data_file: Path) -> str:
    prompt = json.dumps(mc_context("{{question}}"))  # a JSON string is a YAML double-quoted scalar
    return "\n".join(
        [
            f"task: {TASK}",
            "dataset_path: json",
            "dataset_kwargs:",
            f"  data_files: {{test: {json.dumps(str(data_file))}}}",
            "test_split: test",
            "output_type: multiple_choice",
            f"doc_to_text: {prompt}",
            "doc_to_choice: '{{choices}}'",
            "doc_to_target: '{{answer}}'",
            "target_delimiter: ' '",
            "metric_list:",
            "  - metric: acc",
            "    aggregation: mean",
            "    higher_is_better: true",
            "",
        ]
    )


def harness_multiple_choice(model, tok, questions_path: str | Path, batch_size: int = 16) -> tuple[pd.DataFrame, dict]:
    """Per question ``id, pred, correct`` as the harness scored them, and its summary (``acc``, version)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.WARNING)  # its per-run INFO lines are not ours to show
    questions = [json.loads(line) for line in Path(questions_path).read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="flywheel-harness-") as tmp:
        data = Path(tmp) / "general_mc.jsonl"
        data.write_text("".join(json.dumps(q) + "\n" for q in questions))
        (Path(tmp) / f"{TASK}.yaml").write_text(task_yaml(data))
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
        res = lm_eval.simple_evaluate(
            model=lm,
            tasks=[TASK],
            task_manager=TaskManager(include_path=tmp, include_defaults=False),
            log_samples=True,
        )
    rows = []
    for s in sorted(res["samples"][TASK], key=lambda s: s["doc_id"]):
        scores = [float(r[0]) for r in s["filtered_resps"]]
        pred = max(range(len(scores)), key=scores.__getitem__)
        rows.append({"id": s["doc"]["id"], "pred": pred, "correct": bool(s["acc"])})
    acc = res["results"][TASK]["acc,none"]
    return pd.DataFrame(rows, columns=["id", "pred", "correct"]), {"acc": acc, "lm_eval": lm_eval.__version__}
