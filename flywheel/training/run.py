"""Run one recipe from a TrainConfig YAML, without Prefect (what ``torchrun`` and the Prefect task launch).

    python -m flywheel.training.run --config configs/training/sft-lora.yaml [--resume] [--json]
    torchrun --nproc_per_node 2 -m flywheel.training.run --config ...

:func:`launch` is the one call the Prefect task makes: in this process, or ``nproc`` processes under
torchrun. Writes ``<output_dir>/result.json`` (rank 0). Exit codes: 0 done, 2 bad config or data, 1 failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from flywheel.core.config import load_config
from flywheel.core.errors import BAD_INPUT, DataError, exit_code
from flywheel.core.home import Home
from flywheel.training.config import TrainConfig


def output_dir(cfg: TrainConfig, home: Home) -> Path:
    return Path(cfg.output_dir).expanduser() if cfg.output_dir else home.runs / cfg.name


def run_recipe(cfg: TrainConfig, home: Home, resume: bool = False, on_step=None, log=print):
    """Load the rows, run the configured recipe (or the NeMo backend), write result.json; returns TrainResult."""
    from flywheel.training.data import load_rows

    rcfg = cfg.recipe_config()
    if rcfg.backend == "nemo":
        from flywheel.training.nemo import check, train_nemo

        check(cfg)  # fails fast (ConfigError) where NeMo is not installed or the method is not NeMo's
        return train_nemo(load_rows(cfg.dataset, cfg.recipe, home), cfg, output_dir(cfg, home), home.models)
    rows = load_rows(cfg.dataset, cfg.recipe, home)
    out = output_dir(cfg, home)
    if cfg.recipe == "dpo":
        from flywheel.training.dpo import train_dpo

        result = train_dpo(rows, rcfg, cfg.system_prompt, out, home.models, on_step=on_step, resume=resume, log=log)
    else:
        from flywheel.training.sft import train_sft

        result = train_sft(rows, rcfg, cfg.system_prompt, out, home.models, on_step=on_step, resume=resume, log=log)
    if os.environ.get("RANK", "0") == "0":
        (out / "result.json").write_text(json.dumps(result.as_dict(), indent=2))
    return result


def resumable(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a checkpoint to continue from (a retried task resumes instead of starting over)."""
    from flywheel.training.recipe import Checkpoints

    return Checkpoints(Path(out_dir) / "checkpoints", 1).latest() is not None


def launch(cfg: TrainConfig, home: Home, resume: bool = False, nproc: int = 1, on_step=None, log=print):
    """Run the recipe here (``nproc`` 1), or under torchrun as ``nproc`` processes of :func:`main` (one per GPU,
    gloo processes on CPU) whose rank 0 writes ``result.json``; returns the TrainResult either way."""
    from flywheel.training.recipe import TrainResult

    if nproc <= 1:
        return run_recipe(cfg, home, resume, on_step, log=log)
    out = output_dir(cfg, home)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train-config.json").write_text(cfg.model_dump_json(indent=2))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "flywheel.training.run",
        "--config",
        str(out / "train-config.json"),
    ] + (["--resume"] if resume else [])
    log("launching " + " ".join(cmd))
    done = subprocess.run(cmd, env={**os.environ, "FLYWHEEL_HOME": str(home.root)})
    if done.returncode == 2:
        raise DataError(f"torchrun: the recipe refused its config or data (exit 2); see the output above ({out})")
    if done.returncode:
        raise RuntimeError(f"torchrun exited with {done.returncode}")
    return TrainResult(**json.loads((out / "result.json").read_text()))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flywheel.training.run", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--resume", action="store_true", help="Continue from the last checkpoint in the output folder.")
    p.add_argument("--json", action="store_true", help="Print the result as JSON.")
    a = p.parse_args(argv)
    try:
        cfg = load_config(a.config, TrainConfig)
        every = max(1, cfg.recipe_config().max_steps // 10)

        def progress(step, loss, tps):
            if not a.json and (step % every == 0 or step == cfg.recipe_config().max_steps):
                print(f"step {step}/{cfg.recipe_config().max_steps} loss {loss:.4f} ({tps:.0f} tokens/s)", flush=True)

        res = run_recipe(cfg, Home.resolve(), a.resume, progress, log=lambda m: print(m, file=sys.stderr, flush=True))
    except BAD_INPUT as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(exit_code(e))
    if os.environ.get("RANK", "0") == "0":
        d = res.as_dict()
        print(
            json.dumps(d)
            if a.json
            else f"{d['recipe']} {d['method']}: {d['steps']} steps, "
            f"loss {d['losses'][0]:.4f} -> {d['final_loss']:.4f}, "
            f"{d['tokens_per_second']:.0f} tokens/s, MFU {d['mfu']:.2%} -> {d['adapter_dir']}"
        )


if __name__ == "__main__":
    main()
