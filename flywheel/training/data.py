"""SFT rows from a document Dataset: examples whose ``meta`` carries a label and an answer."""

from __future__ import annotations

import json

from flywheel.core.dataset import read_dataset

SFT_COLUMNS = ["id", "text", "answer", "label", "source"]


def labelled_rows(dataset_path: str) -> list[dict]:
    """Rows with a label and an answer in ``meta`` (what the workload generator and users provide);
    rows without them (plain documents) are not training examples and are skipped."""
    df = read_dataset(dataset_path).to_pandas()
    out = []
    for r in df.to_dict("records"):
        meta = json.loads(r.get("meta") or "{}")
        if meta.get("label") and meta.get("answer"):
            out.append({"id": r["id"], "text": r["text"], "answer": meta["answer"], "label": meta["label"],
                        "source": r["source"]})
    return out
