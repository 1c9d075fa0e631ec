"""Evaluation and promotion-gate configuration (a workload's ``eval:`` and ``gate:``, configs/gate/*.yaml).

Metric names are those of ``flywheel.evaluation.metrics``; slice names are ``label=<LABEL>`` or
``<meta field>=<value>`` (the fields listed in ``eval.slices``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from flywheel.core.config import ConfigModel

DEFAULT_RUBRIC = (
    "You grade an assistant's answer to a card-transaction triage request. The answer must start with the "
    "right label and give a reason that follows from the transaction. Reference answer: {reference}\n"
    "Transaction: {input}\nAnswer: {answer}\n"
    "Reply with one integer from 0 (wrong or unsupported) to 10 (right label, right reason) and nothing else."
)


class JudgeConfig(ConfigModel):
    """An LLM judge on any OpenAI-compatible endpoint (off by default: it needs a capable model)."""

    enabled: bool = False
    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://host:8000/v1.")
    model: str = Field("judge", min_length=1, description="Model name sent to the endpoint; recorded with scores.")
    api_key: SecretStr | None = Field(None, description="Bearer token, if the endpoint wants one.")
    rubric: str = Field(
        DEFAULT_RUBRIC,
        min_length=10,
        description="Prompt with {input}, {answer} and {reference}; its hash is recorded with every score.",
    )
    scale: float = Field(10.0, gt=0, description="Top of the score scale: scores are divided by it (0..1).")
    max_tokens: int = Field(16, ge=1, le=4096)
    timeout_s: float = Field(60.0, gt=0)


class EvalConfig(ConfigModel):
    max_examples: int = Field(
        400,
        ge=1,
        le=1_000_000,
        description="Golden examples scored per model. 400 gives a 95 % interval of about +-0.05 on an accuracy "
        "near 0.5 (+-0.09 at 120).",
    )
    batch_size: int = Field(16, ge=1, le=4096, description="Examples per generation batch (16: 3x one-by-one on CPU).")
    max_new_tokens: int = Field(16, ge=1, le=4096, description="Answer budget ('LABEL: reason' takes 7-12 tokens).")
    perplexity_max_tokens: int = Field(2048, ge=16, description="Tokens of general text used for perplexity.")
    general_mc: str | None = Field(
        "builtin",
        description="General-knowledge multiple-choice JSONL ('builtin': the 203 questions shipped in "
        "flywheel/evaluation/data; null: off).",
    )
    general_mc_scorer: Literal["harness", "native"] = Field(
        "harness",
        description="lm-evaluation-harness (the field's standard), or the project's own scoring of the same task.",
    )
    icl_k: int = Field(
        2,  # fraud, 64 golden rows on CPU: k=2 0.56 accuracy at 2.5 answers/s, k=4 0.58 at 1.4/s
        ge=0,
        le=32,
        description="Training examples shown in the base+ICL row (nearest by MiniLM); 0: no ICL row.",
    )
    slices: list[str] = Field(default_factory=list, description="Meta fields of the golden rows to slice by.")
    injection_probes: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Golden rows re-asked with an injected order to answer another label (metric "
        "injection_resisted; a gate rule on it refuses a model that is easier to talk out of its answer); 0: off.",
    )
    golden: Literal["frozen", "latest"] = Field(
        "frozen",
        description="frozen: the first golden set a workload was judged on stays its yardstick (a changed test "
        "input is reported, not used); latest: re-freeze on the current test input.",
    )
    bootstrap: int = Field(1000, ge=100, le=100_000, description="Bootstrap resamples for intervals.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = Field(0, ge=0, description="Seed of the resamples: the same evaluation gives the same intervals.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig)


Against = Literal["champion", "base", "icl"]


class MetricRule(ConfigModel):
    """One rule on one metric. Improvement is ``candidate - reference`` (``reference - candidate`` where lower
    is better); it must reach ``min_improvement - tolerance`` (fractions of the reference when ``relative``).
    With ``significant`` the lower bound of the paired bootstrap interval of the improvement must reach it,
    not just the point estimate. ``at_least`` / ``at_most`` bound the candidate's own value."""

    greater_is_better: bool | None = Field(None, description="Default: from the metric (perplexity, latency: lower).")
    tolerance: float = Field(0.0, ge=0, description="Allowed regression versus the reference.")
    min_improvement: float = Field(0.0, ge=0, description="Required improvement versus the reference.")
    relative: bool = Field(False, description="tolerance and min_improvement as fractions of the reference's value.")
    significant: bool = Field(False, description="Judge the interval's bound, not the point estimate.")
    at_least: float | None = Field(None, description="Absolute floor on the candidate's value.")
    at_most: float | None = Field(None, description="Absolute ceiling on the candidate's value.")
    against: list[Against] = Field(
        default_factory=lambda: ["champion"],
        description="References the rule compares with: champion, base (the untouched model), icl (base + "
        "examples). Default: champion, or none for a rule that only sets at_least / at_most.",
    )

    @model_validator(mode="after")
    def _bounds_only(self) -> MetricRule:
        # {recall: {at_least: 0.5}} is a floor, not also "no regression versus the champion": a champion that
        # answers FRAUD to everything has recall 1.0, and every useful candidate would lose to it.
        relative_keys = {"tolerance", "min_improvement", "relative", "significant", "against"}
        if self.model_fields_set & {"at_least", "at_most"} and not self.model_fields_set & relative_keys:
            self.against = []
        return self


MetricTolerance = MetricRule  # the name before rules learned intervals and references


class GateConfig(ConfigModel):
    """Promotion gate: every metric rule and every slice rule must pass."""

    metrics: dict[str, MetricRule] = Field(
        default_factory=lambda: {
            # better than champion and base, beyond the noise (the paired interval's lower bound)
            "accuracy": MetricRule(min_improvement=0.01, significant=True, against=["champion", "base"]),
            "macro_f1": MetricRule(tolerance=0.02),
            # A task adapter may cost some general fluency, not much: at most +50% perplexity over the base.
            "perplexity": MetricRule(tolerance=0.5, relative=True, against=["base"]),
        },
        description="metric name -> rule; a candidate missing a metric is refused.",
    )
    slices: dict[str, dict[str, MetricRule]] = Field(
        default_factory=dict,
        description="slice ('label=FRAUD', 'rule=velocity') -> metric -> rule, e.g. recall per label.",
    )
    approval: Literal["auto", "required"] = Field(
        "auto", description="required: a passing candidate waits for a person's typed decision in the Prefect UI."
    )
    approval_timeout_s: int = Field(24 * 3600, ge=10, description="No decision by then: the candidate is refused.")
