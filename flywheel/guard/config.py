"""Settings of the gateway's rails (``guard:`` and ``guard_per_workload:`` in ``configs/gateway/*.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flywheel.core.config import ConfigModel

REFUSAL = "I'm sorry, but I can't help with that request."


class InjectionConfig(ConfigModel):
    """Prompt-injection / jailbreak detection on every user message (``flywheel.guard.injection``)."""

    enabled: bool = Field(True, description="Check the user's messages before the cache and the engine.")
    rules: bool = Field(True, description="The cheap rules first (named regular expressions).")
    classifier: str | None = Field(
        "builtin",
        description="builtin (MiniLM + a linear head trained on examples/guard_examples.py), a folder written by "
        "flywheel.guard.injection.train_head, or null for rules only.",
    )
    threshold: float | None = Field(
        None, ge=0, le=1, description="Least attack probability that blocks; null: the one chosen on validation."
    )


class TopicConfig(ConfigModel):
    """Keep the model on its workload's topics: a request must be similar to one of the allowed exemplars."""

    enabled: bool = False
    exemplars: list[str] = Field(
        default_factory=list, description="Requests that are on topic (a few per kind of request)."
    )
    threshold: float = Field(
        0.35, ge=-1, le=1, description="Least MiniLM cosine to the nearest exemplar (bench/guard_eval.py)."
    )
    refusal: str = Field(
        "I'm sorry, but I can only help with questions about card transactions and fraud.",
        description="The answer off topic.",
    )

    @model_validator(mode="after")
    def _needs_exemplars(self):
        if self.enabled and not self.exemplars:
            raise ValueError("exemplars: topic control needs at least one on-topic exemplar")
        return self


class ModerationConfig(ConfigModel):
    """Output moderation of the engine's answer (``flywheel.guard.moderation``)."""

    enabled: bool = True
    lists: list[str] = Field(
        default_factory=lambda: ["builtin"],
        description="Term lists: builtin (flywheel/guard/data/blocked_terms.txt) and/or paths of files, one "
        "term or phrase per line.",
    )
    action: Literal["block", "mask"] = Field(
        "block", description="block: answer the refusal instead; mask: replace each term with ***."
    )


class FactCheckConfig(ConfigModel):
    """The fact-consistency rail: answer sentences checked against the retrieved knowledge (issue 16 fills it)."""

    mode: Literal["off", "flag", "refuse"] = Field(
        "off", description="flag: log unsupported sentences in guard_flags; refuse: answer the refusal instead."
    )
    min_support: float = Field(0.5, ge=0, le=1, description="Least support score of a sentence.")


class GuardConfig(ConfigModel):
    """Every rail of one workload."""

    injection: InjectionConfig = Field(default_factory=InjectionConfig)
    topic: TopicConfig = Field(default_factory=TopicConfig)
    moderation: ModerationConfig = Field(default_factory=ModerationConfig)
    fact_check: FactCheckConfig = Field(default_factory=FactCheckConfig)
    refusal: str = Field(REFUSAL, description="The answer to a blocked request (finish_reason content_filter).")
    on_block: Literal["answer", "error"] = Field(
        "answer",
        description="answer: HTTP 200 with the refusal and finish_reason content_filter (what OpenAI's own "
        "filter answers); error: HTTP 400 with code content_filter (Azure OpenAI's prompt filter).",
    )
