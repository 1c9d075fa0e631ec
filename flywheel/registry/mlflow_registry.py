"""MLflow tracking and registry for the flywheel.

One registered model per workload. Aliases: ``champion`` (what the gateway serves) and
``challenger`` (the last candidate). Version 1 is the untouched base model, so there is always a
champion to compare against and to roll back to. Every version is tagged with its training-data
digests, config hash, code revision, base model and evaluation metrics.

    reg = Registry(tracking_uri, artifact_root)
    v = reg.register_candidate("fraud", run_id, adapter_dir, tags)
    reg.promote("fraud", v.version)      # moves champion, remembers the previous one
    reg.rollback("fraud")                # champion back to the previous version
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flywheel.core.errors import NotFound

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass
class ModelRef:
    name: str
    version: str
    source: str
    run_id: str | None
    tags: dict

    @property
    def is_base(self) -> bool:
        return self.tags.get("kind") == "base"

    @property
    def evaluation(self) -> dict:
        """The last recorded evaluation (``promotion.record_evaluation``): key, golden digest, verdict, metrics."""
        return json.loads(self.tags.get("evaluation", "{}"))

    @property
    def metrics(self) -> dict:
        return self.evaluation.get("metrics") or json.loads(self.tags.get("metrics", "{}"))

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "run_id": self.run_id,
            "kind": self.tags.get("kind"),
            "metrics": self.metrics,
            "gate": self.evaluation.get("gate"),
        }


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if rev.returncode == 0:
            return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from flywheel import __version__

    return f"v{__version__}"


class Registry:
    def __init__(self, tracking_uri: str, artifact_root: str | None = None):
        import mlflow
        from mlflow import MlflowClient

        self.mlflow = mlflow
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # -- experiments and runs -----------------------------------------------------------------------
    def experiment_id(self, workload: str) -> str:
        name = f"flywheel-{workload}"
        exp = self.client.get_experiment_by_name(name)
        if exp:
            return exp.experiment_id
        return self.client.create_experiment(
            name, artifact_location=f"{self.artifact_root}/{name}" if self.artifact_root else None
        )

    def start_run(self, workload: str, run_name: str, tags: dict | None = None):
        return self.mlflow.start_run(experiment_id=self.experiment_id(workload), run_name=run_name, tags=tags or {})

    def log_dataset(self, path: str, name: str, digest: str, context: str) -> None:
        from mlflow.data.dataset_source_registry import get_dataset_source_from_json
        from mlflow.data.meta_dataset import MetaDataset

        # A local Dataset folder: the "local" artifact source (resolving the bare path is ambiguous).
        source = get_dataset_source_from_json(json.dumps({"uri": Path(path).resolve().as_uri()}), "local")
        ds = MetaDataset(source, name=name, digest=digest[:36])
        self.mlflow.log_input(ds, context=context)

    def log_curation(self, cfg, src, kept, stats: dict, name: str) -> str:
        """One nested run per curation (experiment ``flywheel-curation``): the recipe as params, every count as
        a metric, the source and curated Datasets as inputs; returns the run id."""
        with self.mlflow.start_run(
            experiment_id=self.experiment_id("curation"), run_name=f"curate-{name}", nested=True
        ) as run:
            params = {
                k: (json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)
                for k, v in cfg.model_dump().items()
            }
            self.mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
            self.mlflow.log_metrics({k: float(v) for k, v in stats["summary"].items()})
            for step, counts in stats["steps"].items():
                self.mlflow.log_metrics(
                    {f"{step}.{k}": float(v) for k, v in counts.items() if isinstance(v, (int, float))}
                )
            self.log_dataset(str(src.path), src.name, src.digest, "source")
            self.log_dataset(str(kept.path), kept.name, kept.digest, "curated")
            self.mlflow.log_dict(stats, "curation_counts.json")
            return run.info.run_id

    def open_cycle_run(
        self, workload: str, trigger: str | None, params: dict, datasets: dict, flow_run: str | None = None
    ) -> str:
        """The run of one flywheel cycle (experiment ``flywheel-<workload>``), left open for training and
        evaluation to log into: params, the cycle's datasets as inputs by digest, their counts as metrics.
        ``flow_run``: the Prefect flow run it belongs to (tag ``flywheel.flow_run``; a crashed retrain's rerun
        finds its run, and its checkpoints, by it)."""
        tags = {"flywheel.workload": workload, "flywheel.trigger": trigger or "manual"}
        if flow_run:
            tags["flywheel.flow_run"] = flow_run
        if "training" in datasets:
            tags["flywheel.training_digest"] = datasets["training"]["digest"]
        with self.start_run(workload, run_name=f"cycle-{'retrain' if trigger else 'run'}", tags=tags) as run:
            self.mlflow.log_params(params)
            for context, ds in datasets.items():
                self.log_dataset(ds["path"], ds["name"], ds["digest"], context=context)
                self.mlflow.log_metrics(
                    {f"{context}.{k}": v for k, v in ds.get("counts", {}).items() if isinstance(v, (int, float))}
                )
            return run.info.run_id

    def cycle_run_of(self, workload: str, flow_run: str) -> tuple[str, dict] | None:
        """(run id, tags) of the cycle run that Prefect flow run ``flow_run`` opened, or None."""
        runs = self.client.search_runs(
            [self.experiment_id(workload)], filter_string=f"tags.`flywheel.flow_run` = '{flow_run}'", max_results=1
        )
        return (runs[0].info.run_id, runs[0].data.tags) if runs else None

    def log_training(
        self, result, params: dict, datasets: list[tuple[str, str, str]], tps_by_step: list[tuple[int, float]]
    ) -> None:
        """Into the active run, one training (a ``TrainResult``): params, per-step loss and tokens/s, throughput
        and MFU, the data counts, the training Datasets as inputs, and the adapter as artifacts."""
        self.mlflow.log_params(params)
        self.mlflow.set_tags(
            {
                "flywheel.base_model": result.base_model,
                "flywheel.base_model_path": result.base_model_path,
                "flywheel.method": result.method,
                "flywheel.recipe": result.recipe,
            }
        )
        for path, name, digest in datasets:
            self.log_dataset(path, name, digest, context="training")
        for step, loss in enumerate(result.losses, 1):
            self.mlflow.log_metric("train_loss", loss, step=step)
        for step, tps in tps_by_step:
            self.mlflow.log_metric("tokens_per_second", tps, step=step)
        self.mlflow.log_metrics(
            {
                "train_tokens_per_second": result.tokens_per_second,
                "train_seconds": result.seconds,
                "train_steps": result.steps,
                "train_tokens": result.tokens,
                "trainable_params": result.trainable_params,
                "total_params": result.total_params,
                "mfu": result.mfu,
                "flops_per_token": result.flops_per_token,
                **{f"data.{k}": v for k, v in result.data_counts.items() if isinstance(v, (int, float))},
            }
        )
        self.mlflow.log_artifacts(result.adapter_dir, artifact_path="adapter")

    # -- registry ------------------------------------------------------------------------------------
    def _ensure_model(self, workload: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(workload)
        except MlflowException:
            self.client.create_registered_model(workload, description=f"Flywheel workload '{workload}'")

    def _ref(self, mv) -> ModelRef:
        return ModelRef(mv.name, str(mv.version), mv.source, mv.run_id, dict(mv.tags or {}))

    def get_alias(self, workload: str, alias: str) -> ModelRef | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._ref(self.client.get_model_version_by_alias(workload, alias))
        except MlflowException:
            return None

    def champion(self, workload: str) -> ModelRef | None:
        return self.get_alias(workload, CHAMPION)

    def version(self, workload: str, version: str | int) -> ModelRef:
        return self._ref(self.client.get_model_version(workload, str(version)))

    def versions(self, workload: str) -> list[ModelRef]:
        found = self.client.search_model_versions(f"name='{workload}'")
        return sorted((self._ref(v) for v in found), key=lambda r: int(r.version))

    def register_base(self, workload: str, base_model: str, metrics: dict) -> ModelRef:
        """Version 1: the base model itself, champion until a candidate beats it.

        The weights are not copied into MLflow (the base is resolved by name from each machine's
        model cache, like a hub id); the version's source is a small run artifact naming it, because
        an MLflow server only accepts sources inside a run's artifacts."""
        self._ensure_model(workload)
        for ref in self.versions(workload):
            if ref.is_base and ref.tags.get("base_model") == base_model:
                return ref
        with self.start_run(workload, run_name="base-model", tags={"flywheel.kind": "base"}) as run:
            self.mlflow.log_dict({"base_model": base_model}, "base/base_model.json")
            self.mlflow.log_metrics({f"base_{k}": v for k, v in metrics.items()})
        mv = self.client.create_model_version(
            workload,
            source=f"{run.info.artifact_uri}/base",
            run_id=run.info.run_id,
            tags={"kind": "base", "base_model": base_model, "metrics": json.dumps(metrics)},
            description=f"Base model {base_model}, no adapter",
        )
        if self.champion(workload) is None:
            self.client.set_registered_model_alias(workload, CHAMPION, mv.version)
            self.set_tag(workload, mv.version, "served_from", _now())
        return self.version(workload, mv.version)

    def register_candidate(self, workload: str, run_id: str, artifact_path: str, tags: dict) -> ModelRef:
        self._ensure_model(workload)
        run = self.client.get_run(run_id)
        source = f"{run.info.artifact_uri}/{artifact_path}"
        mv = self.client.create_model_version(
            workload, source=source, run_id=run_id, tags={"kind": "adapter", **{k: str(v) for k, v in tags.items()}}
        )
        self.client.set_registered_model_alias(workload, CHALLENGER, mv.version)
        return self._ref(mv)

    def set_tag(self, workload: str, version: str, key: str, value: str) -> None:
        self.client.set_model_version_tag(workload, version, key, value)

    def delete_version(self, workload: str, version: str) -> None:
        """Remove a version (a transaction's rollback of a half-evaluated candidate)."""
        self.client.delete_model_version(workload, str(version))

    def golden_set(self, workload: str) -> dict | None:
        """The frozen golden set of a workload (``{"digest", "path", "rows"}``), None before the first."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(workload).tags or {}
        except MlflowException:
            return None
        return json.loads(tags["golden_set"]) if "golden_set" in tags else None

    def freeze_golden_set(self, workload: str, dataset: dict) -> None:
        self._ensure_model(workload)
        keep = {k: dataset[k] for k in ("digest", "path", "rows", "name") if k in dataset}
        self.client.set_registered_model_tag(workload, "golden_set", json.dumps(keep))

    def log_evaluation(self, run_id: str, result: dict, report_md: str, figure_path: str | None, table) -> None:
        """Into a run: every row's metric values (``<row>_<metric>``, with ``_low``/``_high``), the decision and
        the whole result as JSON, the Markdown report, the plot, and the per-example table (MLflow's UI compares
        it across runs)."""
        metrics = {}
        for row, card in result["rows"].items():
            for name, e in card["metrics"].items():
                for part in ("value", "low", "high"):
                    if e.get(part) is not None:
                        metrics[f"{row}_{name}" + ("" if part == "value" else f"_{part}")] = e[part]
        with self.mlflow.start_run(run_id=run_id):
            self.mlflow.log_metrics(metrics)
            self.mlflow.log_metric("gate_passed", 1.0 if result["decision"]["promote"] else 0.0)
            self.mlflow.log_dict(result["decision"], "evaluation/gate.json")
            self.mlflow.log_dict({k: v for k, v in result.items() if k != "outcomes"}, "evaluation/result.json")
            self.mlflow.log_text(report_md, "evaluation/report.md")
            if figure_path:
                self.mlflow.log_artifact(figure_path, "evaluation")
            if table is not None:
                self.mlflow.log_table(table, "evaluation/examples.json")

    def promote(self, workload: str, version: str) -> ModelRef:
        previous = self.champion(workload)
        self.client.set_registered_model_alias(workload, CHAMPION, version)
        if previous and previous.version != str(version):
            # The history of champions, newest last: what rollback walks back through.
            history = self._history(workload) + [previous.version]
            self.client.set_registered_model_tag(workload, "champion_history", json.dumps(history[-50:]))
        return self.version(workload, version)

    def restore_champion(self, workload: str, version: str) -> None:
        """Undo a promotion (a transaction's rollback): ``champion`` back on ``version``, history as before."""
        self.client.set_registered_model_alias(workload, CHAMPION, str(version))
        history = self._history(workload)
        if history and history[-1] == str(version):
            self.client.set_registered_model_tag(workload, "champion_history", json.dumps(history[:-1]))

    def _history(self, workload: str) -> list[str]:
        rm = self.client.get_registered_model(workload)
        return json.loads((rm.tags or {}).get("champion_history", "[]"))

    def rollback(self, workload: str, to: str | None = None) -> tuple[ModelRef, ModelRef]:
        """Move champion back (to ``to`` or to the previous champion). Returns (from, to)."""
        current = self.champion(workload)
        if current is None:
            raise NotFound(f"workload {workload!r} has no champion to roll back")
        history = self._history(workload)
        if to is None:
            if not history:
                raise NotFound(f"workload {workload!r}: champion v{current.version} has no previous champion")
            to = history.pop()
        else:
            from mlflow.exceptions import MlflowException

            try:
                self.version(workload, to)
            except MlflowException:
                raise NotFound(f"workload {workload!r} has no version {to}") from None
            history = [v for v in history if v != str(to)]
        self.client.set_registered_model_alias(workload, CHAMPION, str(to))
        self.client.set_registered_model_tag(workload, "champion_history", json.dumps(history))
        now = _now()
        self.set_tag(workload, current.version, "served_until", now)
        self.set_tag(workload, str(to), "served_from", now)
        self.set_tag(workload, str(to), "served_until", "")
        self.set_tag(workload, str(to), "promotion", json.dumps({"at": now, "how": "rollback", "note": ""}))
        return current, self.version(workload, to)

    def local_path(self, ref: ModelRef, cache_dir: str | Path) -> Path:
        """A local folder with the version's adapter (downloaded once from the artifact store)."""
        if ref.is_base:
            raise ValueError(f"{ref.name} v{ref.version} is the base model: resolve it by its base_model tag")
        target = Path(cache_dir) / ref.name / f"v{ref.version}"
        if target.is_dir():  # published whole by the os.replace below; any method's files (peft's or ours)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        local = self.mlflow.artifacts.download_artifacts(
            artifact_uri=ref.source, dst_path=str(target.parent / f".v{ref.version}.tmp")
        )
        os.replace(local, target)
        return target
