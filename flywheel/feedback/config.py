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
    within_seconds: int = Field(3600, ge=10, description="Window in which the threshold must be reached.")
    include_feedback: bool = Field(True, description="Add rated and corrected interactions to the SFT data.")
