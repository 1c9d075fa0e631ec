"""Retraining from feedback (a workload's ``retrain:``): how many feedback events start a retrain."""

from __future__ import annotations

from pydantic import Field

from flywheel.core.config import ConfigModel


class RetrainConfig(ConfigModel):
    feedback_threshold: int = Field(
        20,
        ge=1,
        le=1_000_000,
        description="New feedback events that trigger a retrain (the Prefect automation's threshold).",
    )
    within_seconds: int = Field(
        3600,
        ge=0,
        description="Prefect's window: the threshold must be reached within it, and after firing the trigger waits "
        "for the window to end. 0: no window, every feedback_threshold-th event fires (measured: 12 events, "
        "threshold 3 -> 4 runs with 0, 2 with a 5 s window).",
    )
    include_feedback: bool = Field(True, description="Add rated and corrected interactions to the SFT data.")
