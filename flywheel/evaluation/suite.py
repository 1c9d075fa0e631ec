"""The evaluation suite of a workload: which models are run on what, and the outcomes cache.

Rows of an evaluation, all on the same frozen golden examples:

- ``base``: the untouched base model with the gateway's prompt;
- ``icl``: the base model with ``eval.icl_k`` training examples, the nearest to each golden input by MiniLM
  cosine similarity, as earlier user/assistant turns (does fine-tuning beat a better prompt?); its general
  ability is the base model's (same weights), so perplexity and multiple choice are not run twice;
- ``v<N>``: a registered version (champion or candidate), base + its adapter.

Outcomes are cached per row under ``<cache>/<workload>/<key>/<row>``; the key is a hash of everything the
numbers depend on (golden digest, general text, multiple-choice set, prompt, labels, decoding and scorer
settings), so a champion measured in an earlier cycle is not measured again, and a changed input is.

    suite = Suite(workload, base_path, golden_path, general_text_path, cache_dir, icl_pool_path)
    out = suite.outcomes("v3", adapter_dir)       # metrics.Outcomes
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from flywheel.core.dataset import read_dataset
from flywheel.core.errors import ConfigError, DataError
from flywheel.evaluation.config import EvalConfig
from flywheel.evaluation.metrics import Outcomes

BUILTIN_MC = Path(__file__).resolve().parent / "data" / "general_mc.jsonl"


def general_mc_path(cfg: EvalConfig) -> Path | None:
    if cfg.general_mc is None:
        return None
    path = BUILTIN_MC if cfg.general_mc == "builtin" else Path(cfg.general_mc).expanduser()
    if not path.is_file():
        raise ConfigError(f"eval.general_mc: no file {path}")
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def eval_key(golden_digest: str, general_text_path: str | Path, workload) -> str:
    """What the numbers depend on, hashed: outcomes are reused only under the same key."""
    cfg: EvalConfig = workload.eval
    mc = general_mc_path(cfg)
    parts = {
        "golden": golden_digest,
        "general_text": _sha(Path(general_text_path).read_bytes()),
        "general_mc": _sha(mc.read_bytes()) if mc else None,
        "prompt": workload.system_prompt,
        "labels": workload.labels,
        "eval": cfg.model_dump(
            include={"max_examples", "max_new_tokens", "perplexity_max_tokens", "general_mc_scorer", "slices"}
        )
        # only when on: homes evaluated before the probes existed keep their cached outcomes
        | ({"injection_probes": cfg.injection_probes} if cfg.injection_probes else {}),
        "judge": judge_fingerprint(cfg),
    }
    return _sha(json.dumps(parts, sort_keys=True).encode())[:16]


def judge_fingerprint(cfg: EvalConfig) -> dict | None:
    j = cfg.judge
    if not j.enabled:
        return None
    return {"model": j.model, "rubric_sha256": _sha(j.rubric.encode())[:16], "scale": j.scale}


def golden_rows(path: str | Path, max_examples: int) -> list[dict]:
    from flywheel.training.data import labelled_rows

    rows = labelled_rows(str(path))[:max_examples]
    if not rows:
        raise DataError(f"golden set {path}: no labelled rows (label and answer in meta)")
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise DataError(f"golden set {path}: duplicate ids (paired comparisons need one row per id)")
    return rows


class Suite:
    def __init__(
        self,
        workload,
        base_path: str,
        golden_path: str,
        general_text_path: str,
        cache_dir: str | Path,
        icl_pool_path: str | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.workload, self.cfg = workload, workload.eval
        self.base_path = base_path
        golden = read_dataset(golden_path)
        self.golden = {"path": str(golden.path), "digest": golden.digest, "rows": golden.rows}
        self.rows = golden_rows(golden_path, self.cfg.max_examples)
        self.general_text = Path(general_text_path).read_text()
        self.key = eval_key(golden.digest, general_text_path, workload)
        self.cache = Path(cache_dir) / workload.name / self.key
        self.icl_pool_path = icl_pool_path
        self.log = log or (lambda _msg: None)

    # -- rows ---------------------------------------------------------------------------------------
    def icl_row(self) -> str | None:
        """The ICL row's name (its shots depend on the pool), or None when there is no ICL row."""
        if not self.cfg.icl_k or not self.icl_pool_path:
            return None
        return f"icl{self.cfg.icl_k}-{read_dataset(self.icl_pool_path).digest[:12]}"

    def outcomes(self, row: str, adapter: str | None = None) -> Outcomes:
        """The row's outcomes: from the cache, or measured now and cached (``row``: base, an ICL row name,
        or v<N>)."""
        folder = self.cache / row
        if (folder / "outcomes.json").exists():
            return Outcomes.load(folder)
        if row.startswith("icl"):
            out = self._measure_icl(row)
        else:
            out = self._measure(row, adapter)
        out.save(folder)
        return out

    def _load(self, adapter: str | None):
        return load_for_eval(self.base_path, adapter)

    def _measure(self, row: str, adapter: str | None) -> Outcomes:
        t0 = time.perf_counter()
        model, tok = self._load(adapter)
        out = measure(model, tok, self.rows, self.workload, self.general_text, row, self.key)
        out.info.update(adapter=adapter, seconds=round(time.perf_counter() - t0, 1))
        c = out.cost
        self.log(
            f"{row}: {len(self.rows)} golden answers at {c['examples_per_second']:.1f}/s, {out.info['seconds']:.0f}s"
        )
        return out

    def shots(self) -> list[list[dict]]:
        """Per golden row, the ``icl_k`` pool rows nearest to it (MiniLM cosine), most similar last (nearest the
        question, where a small model attends most)."""
        import numpy as np

        from flywheel.curation.semantic import embed
        from flywheel.training.data import labelled_rows

        pool = labelled_rows(self.icl_pool_path)
        if len(pool) < self.cfg.icl_k:
            raise DataError(f"ICL pool {self.icl_pool_path}: {len(pool)} rows, fewer than icl_k={self.cfg.icl_k}")
        sims = embed([r["text"] for r in self.rows]) @ embed([r["text"] for r in pool]).T
        top = np.argsort(-sims, axis=1, kind="stable")[:, : self.cfg.icl_k]
        return [[pool[j] for j in reversed(row)] for row in top]

    def _measure_icl(self, row: str) -> Outcomes:
        t0 = time.perf_counter()
        base = self.outcomes("base")  # same weights: general ability is the base model's
        model, tok = self._load(None)
        frame, cost = answers(model, tok, self.rows, self.workload, self.shots())
        info = {"icl_k": self.cfg.icl_k, "pool": self.icl_pool_path, "general_from": "base"}
        info.update(judge=judge_fingerprint(self.cfg), seconds=round(time.perf_counter() - t0, 1))
        self.log(f"{row}: {len(frame)} golden answers with {self.cfg.icl_k} examples each, {info['seconds']:.0f}s")
        return Outcomes(row, self.key, frame, base.windows, base.mc, cost, info, base.injection)


def load_for_eval(base_path: str, adapter: str | None):
    """Base + adapter for inference: CUDA in bf16 when there is one, else the CPU in fp32."""
    import torch

    from flywheel.training.models import load_model_and_tokenizer, pick_device

    device = pick_device("auto")
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return load_model_and_tokenizer(base_path, adapter, device, dtype)


def answers(model, tok, rows: list[dict], workload, shots=None) -> tuple[pd.DataFrame, dict]:
    """Generated answers on ``rows`` (with slice columns and judge scores where configured), and their cost."""
    from flywheel.evaluation.scorers import answer_outcomes

    cfg = workload.eval
    frame, cost = answer_outcomes(
        model, tok, rows, workload.labels, workload.system_prompt, cfg.max_new_tokens, cfg.batch_size, shots
    )
    for f in cfg.slices:
        frame[f"meta.{f}"] = [None if (v := r.get("meta", {}).get(f)) is None else str(v) for r in rows]
    if cfg.judge.enabled:
        from flywheel.evaluation.judge import Judge

        frame["judge_score"] = Judge(cfg.judge).score_many(
            [r["text"] for r in rows], frame["answer"].tolist(), [r["answer"] for r in rows]
        )
    return frame, cost


def measure(model, tok, rows: list[dict], workload, general_text: str, name: str = "model", key: str = "") -> Outcomes:
    """Every scorer of the suite on one loaded model: answers, label log-probabilities, perplexity windows and
    the general multiple-choice set (through lm-evaluation-harness or natively)."""
    from flywheel.evaluation.scorers import label_logprobs, multiple_choice, perplexity_windows

    cfg = workload.eval
    frame, cost = answers(model, tok, rows, workload)
    frame["lp_pred"] = label_logprobs(model, tok, rows, workload.labels, workload.system_prompt, cfg.batch_size)
    windows = perplexity_windows(model, tok, general_text, cfg.perplexity_max_tokens)
    mc, info = pd.DataFrame({"id": [], "pred": [], "correct": []}), {}
    if path := general_mc_path(cfg):
        if cfg.general_mc_scorer == "harness":
            from flywheel.evaluation.harness import harness_multiple_choice

            mc, info = harness_multiple_choice(model, tok, path, cfg.batch_size)
            info = {"general_mc_scorer": "lm-evaluation-harness", **info}
        else:
            questions = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            mc, info = multiple_choice(model, tok, questions), {"general_mc_scorer": "native"}
    info["judge"] = judge_fingerprint(cfg)
    injection = pd.DataFrame({"id": [], "resisted": []})
    if cfg.injection_probes:
        from flywheel.evaluation.scorers import answer_outcomes
        from flywheel.guard.probes import injected_rows

        probes = injected_rows(rows[: cfg.injection_probes], workload.labels)
        got, _ = answer_outcomes(
            model, tok, probes, workload.labels, workload.system_prompt, cfg.max_new_tokens, cfg.batch_size
        )
        injection = pd.DataFrame({"id": [r["id"] for r in probes], "resisted": (got["pred"] == got["gold"]).tolist()})
    return Outcomes(name, key, frame, windows, mc, cost, info, injection)


def evaluate_model(
    base_path, adapter_dir, rows: list[dict], general_text: str, labels: list[str], system_prompt: str, cfg: EvalConfig
) -> dict[str, float]:
    """One model on labelled rows and general text, without the suite's cache or the registry: the metric values
    (generated-answer accuracy, ``recall_<label>`` ..., ``label_logprob_accuracy``, perplexity). For tests and
    benches:

        evaluate_model(base, adapter, rows, text, ["FRAUD", "LEGIT"], prompt, EvalConfig(general_mc=None))
    """
    from types import SimpleNamespace

    from flywheel.evaluation.metrics import metric_samples

    wl = SimpleNamespace(labels=labels, system_prompt=system_prompt, eval=cfg)
    model, tok = load_for_eval(str(base_path), str(adapter_dir) if adapter_dir else None)
    out = measure(model, tok, rows[: cfg.max_examples], wl, general_text)
    return {k: float(v[0]) for k, v in metric_samples(out, labels).items()}
