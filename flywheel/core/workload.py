"""A workload: one task the flywheel improves (e.g. fraud triage), composed of every stage's config.

    from flywheel.core.workload import load_workload
    cfg = load_workload("configs/workloads/fraud.yaml")
    cfg.curation, cfg.sft, cfg.gate, ...

:data:`SCHEMAS` says which model validates which folder of ``configs/`` (the test that validates every
YAML reads it).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from flywheel.core.config import ConfigModel, load_config
from flywheel.core.errors import ConfigError
from flywheel.curation.config import CurationConfig
from flywheel.evaluation.config import EvalConfig, GateConfig
from flywheel.feedback.config import DriftConfig, RetrainConfig
from flywheel.ingest.config import IngestConfig
from flywheel.rag.config import KbConfig
from flywheel.serving.config import GatewaySettings, RolloutConfig
from flywheel.synth.config import SynthConfig
from flywheel.training.config import ContinualConfig, SftConfig, TrainConfig


class DataConfig(ConfigModel):
    n_train: int = Field(600, ge=10, le=10_000_000, description="Generated labelled transactions for training.")
    n_test: int = Field(400, ge=10, le=10_000_000, description="Generated held-out transactions.")
    n_traffic: int = Field(40, ge=1, le=1_000_000, description="Simulated gateway requests per demo round.")
    traffic_rounds: int = Field(
        2, ge=0, le=100, description="Demo rounds of traffic after cycle 1; each should fire one retrain."
    )
    noise: float = Field(0.03, ge=0, le=0.5, description="Share of labels flipped, as real labels are noisy.")
    seed: int = Field(7, ge=0)


def _absolute(root: Path, path: str) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else Path(root) / p)


class InputsConfig(ConfigModel):
    """Where a workload's data lives; relative paths are resolved against the project home."""

    train: list[str] = Field(
        default_factory=list, description="Labelled JSONL files or folders (text + label + answer)."
    )
    test: list[str] = Field(default_factory=list, description="Held-out labelled JSONL, never trained on.")
    documents: list[str] = Field(default_factory=list, description="Documents (PDF, txt) for the knowledge base.")
    general_text: str | None = Field(None, description="Held-out general English text for perplexity.")

    def resolved(
        self, root: str | Path, workload: str, require: tuple[str, ...] = ("train", "test", "general_text")
    ) -> InputsConfig:
        """The same inputs with every path absolute (relative ones against the home ``root``); a ConfigError
        names the ``require``d ones that are not set (a flywheel cycle needs train, test and general_text)."""
        missing = [f"inputs.{k}" for k in require if not getattr(self, k)]
        if missing:
            raise ConfigError(f"workload {workload}: {', '.join(missing)} must be set")
        return InputsConfig(
            train=[_absolute(root, p) for p in self.train],
            test=[_absolute(root, p) for p in self.test],
            documents=[_absolute(root, p) for p in self.documents],
            general_text=_absolute(root, self.general_text) if self.general_text else None,
        )


class SchedulesConfig(ConfigModel):
    """The workload's scheduled deployments (``flywheel deploy`` creates them; null: none)."""

    refresh_cron: str | None = Field(
        "0 2 * * *", description="Nightly ingest + curate of the workload's inputs (and its KB): refresh-data."
    )
    evaluate_cron: str | None = Field(
        "0 3 * * 1", description="Weekly evaluation of the champion on the frozen golden set: evaluate-champion."
    )


class WorkloadConfig(ConfigModel):
    """One workload: a task the flywheel improves (e.g. fraud triage)."""

    name: str = Field(..., pattern=r"^[a-z][a-z0-9-]{0,40}$", description="Registered model and Prefect resource name.")
    description: str = ""
    system_prompt: str = Field(..., min_length=1)
    labels: list[str] = Field(..., min_length=2, description="Allowed first words of an answer.")
    data: DataConfig = Field(default_factory=DataConfig)
    inputs: InputsConfig = Field(default_factory=InputsConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    sft: SftConfig = Field(default_factory=SftConfig)
    continual: ContinualConfig = Field(default_factory=ContinualConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    schedules: SchedulesConfig = Field(default_factory=SchedulesConfig)
    deploy: RolloutConfig = Field(default_factory=RolloutConfig)
    kb: KbConfig | None = Field(
        None,
        description="Build the workload's knowledge base from its curated documents in every cycle, incrementally "
        "(<home>/kb/<name>; the gateway's rag.kb points at it); absent: no knowledge base.",
    )


def load_workload(path: str | Path) -> WorkloadConfig:
    return load_config(path, WorkloadConfig)


def load_named(workload: str, config_path: str | Path | None, config_dir: str | Path) -> WorkloadConfig:
    """The workload ``workload`` from ``config_path`` (default ``config_dir/<workload>.yaml``); a file that holds
    another workload is a ConfigError (a deployment's two parameters must agree)."""
    cfg = load_workload(config_path or Path(config_dir) / f"{workload}.yaml")
    if cfg.name != workload:
        raise ConfigError(f"config {config_path} is workload {cfg.name!r}, not {workload!r}")
    return cfg


# Which model validates which folder of configs/ (used by the test that validates every YAML).
SCHEMAS: dict[str, type[ConfigModel]] = {
    "workloads": WorkloadConfig,
    "curation": CurationConfig,
    "ingest": IngestConfig,
    "training": TrainConfig,
    "gateway": GatewaySettings,
    "gate": GateConfig,
    "kb": KbConfig,
    "synth": SynthConfig,
}
