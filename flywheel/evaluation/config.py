"""Evaluation and promotion-gate configuration (a workload's ``eval:`` and ``gate:``, configs/gate/*.yaml)."""

from __future__ import annotations

from pydantic import Field

from flywheel.core.config import ConfigModel


class EvalConfig(ConfigModel):
    max_examples: int = Field(120, ge=1, le=1_000_000, description="Held-out examples scored per model.")
    batch_size: int = Field(16, ge=1, le=4096)
    perplexity_max_tokens: int = Field(2048, ge=16, description="Tokens of general text used for perplexity.")


class MetricTolerance(ConfigModel):
    greater_is_better: bool = True
    tolerance: float = Field(
        0.0,
        ge=0,
        description="Allowed regression versus the champion (metric units, or a fraction of the champion's value when "
        "relative).",
    )
    min_improvement: float = Field(
        0.0, ge=0, description="Required improvement versus the champion (same units as tolerance)."
    )
    relative: bool = Field(
        False, description="Read tolerance and min_improvement as fractions of the champion's value."
    )


class GateConfig(ConfigModel):
    """Promotion gate: every metric must pass its own rule versus the champion."""

    metrics: dict[str, MetricTolerance] = Field(
        default_factory=lambda: {
            "accuracy": MetricTolerance(greater_is_better=True, min_improvement=0.01),
            # A task adapter may cost some general fluency, not much: at most +50% perplexity.
            "perplexity": MetricTolerance(greater_is_better=False, tolerance=0.5, relative=True),
        },
        description="metric name -> rule; a candidate missing a metric is refused.",
    )
