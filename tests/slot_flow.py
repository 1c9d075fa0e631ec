"""A stand-in for a retrain in the concurrency test: a flow that takes the training slot, as the train flows do,
records when it held it, and holds it a few seconds (the real retrain trains for minutes)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import flow
from prefect.concurrency.sync import concurrency

from tasks.common import TRAINING_SLOT


@flow(name="retrain-standin")
def hold_training_slot(log: str, seconds: float = 4.0) -> None:
    with concurrency(TRAINING_SLOT, occupy=1, strict=False):
        start = time.time()
        time.sleep(seconds)
        with Path(log).open("a") as f:
            f.write(json.dumps({"start": start, "end": time.time()}) + "\n")
