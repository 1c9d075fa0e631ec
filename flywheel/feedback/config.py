"""Retraining from feedback (a workload's ``retrain:``): how many feedback events start a retrain."""

from __future__ import annotations

from typing import Literal

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
    on_busy: Literal["queue", "drop"] = Field(
        "queue",
        description="A trigger while this workload's retrain runs: queue (run after it) or drop (cancel the new "
        "run); across workloads, one training run holds the flywheel-training slot (flywheel deploy sets it to 1).",
    )
    max_runs_per_day: int | None = Field(
        None, ge=0, description="Retrains a day (24 h) for this workload; the next is refused with the reason."
    )
    max_minutes_per_day: float | None = Field(
        None,
        gt=0,
        description="Minutes of retraining a day (24 h, summed run time) for this workload; once spent, the next "
        "retrain is refused with the reason.",
    )
    resume_crashed: int = Field(
        1,
        ge=0,
        le=10,
        description="A retrain that crashed (its worker died; flywheel deploy's zombie watch marks it) is rerun with "
        "its trigger and watermark, training from its last checkpoint, up to this many crashes in a row (0: it stays "
        "Crashed).",
    )

    def refusal(self, workload: str, used: dict) -> str | None:
        """Why the next retrain of ``workload`` is refused, given the last 24 h's ``runs`` and ``minutes``; None
        when the day's budget has room."""
        if self.max_runs_per_day is not None and used["runs"] >= self.max_runs_per_day:
            return (
                f"daily budget: {used['runs']} of {self.max_runs_per_day} retrains of {workload} in the last 24 h; "
                "this one is not started"
            )
        if self.max_minutes_per_day is not None and used["minutes"] >= self.max_minutes_per_day:
            return (
                f"daily budget: {round(used['minutes'], 1):g} of {self.max_minutes_per_day:g} minutes of retraining "
                f"{workload} in the last 24 h; this one is not started"
            )
        return None


class DriftConfig(ConfigModel):
    """Drift watch (a workload's ``drift:``): a scheduled flow compares the recent window of live traffic with the
    window before it and emits ``flywheel.drift.detected`` when a signal moved by more than its bound and more
    than chance (one-sided two-proportion z-test); the retrain deployment is triggered by that event too."""

    enabled: bool = Field(True, description="Run the drift check for this workload (flywheel deploy schedules it).")
    cron: str = Field("0 * * * *", description="When the drift-check deployment runs (hourly).")
    window_hours: float = Field(24, gt=0, le=24 * 90, description="The recent window.")
    baseline_hours: float = Field(168, gt=0, le=24 * 365, description="The window before it, compared against.")
    min_rated: int = Field(
        20, ge=1, description="Rated answers each window needs before the positive rate and live accuracy count."
    )
    min_requests: int = Field(50, ge=1, description="Requests each window needs before the block rate counts.")
    max_positive_drop: float = Field(0.10, ge=0, le=1, description="Drift: the positive-feedback rate fell more.")
    max_accuracy_drop: float = Field(
        0.10, ge=0, le=1, description="Drift: live accuracy (rated answers not corrected) fell more."
    )
    max_block_rise: float = Field(0.05, ge=0, le=1, description="Drift: the guard-block rate rose more.")
    significance: float = Field(0.05, gt=0, lt=1, description="The change must also be significant at this level.")
