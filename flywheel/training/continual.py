"""The loop's continual-training policy (a workload's ``continual:``): which rows one cycle trains on, from what.

A retrain reads the feedback up to the **watermark** fixed when its trigger fired, and no further. Feedback in
``(consumed, watermark]`` is the cycle's *new* slice — each feedback row is new in exactly one cycle
(``FeedbackStore.mark_consumed`` moves ``consumed`` when the cycle ends); older feedback can come back only as
replay, counted as such.

- ``start: champion`` (warm start, when the champion is an adapter of the same method): train the champion's
  adapter further on the new slice — corrections ``correction_weight`` times, approvals ``approved_weight``
  times — plus ``replay_ratio`` earlier rows (curated rows and older feedback, drawn with a fixed seed) per new
  row, against forgetting what the champion knew.
  While the champion is still the base model, ``continue_refused`` continues the newest refused candidate
  instead (its training is not thrown away).
- ``start: base`` (and every first cycle): train from the base model on everything so far — the curated rows
  and all feedback up to the watermark, weighted the same way.

    rows, counts = cycle_rows(curated, new_feedback, old_feedback, cfg.continual, warm=True)
"""

from __future__ import annotations

import random

from flywheel.training.config import ContinualConfig


def _copies(row: dict, policy: ContinualConfig) -> int:
    return policy.correction_weight if row.get("kind") == "correction" else policy.approved_weight


def weighted(rows: list[dict], policy: ContinualConfig) -> list[dict]:
    """Each feedback row repeated by its weight; copies get ids ``<id>#2``, ``#3``... (a Dataset keeps ids unique)."""
    out = []
    for r in rows:
        out += [r if k == 0 else {**r, "id": f"{r['id']}#{k + 1}"} for k in range(_copies(r, policy))]
    return out


def cycle_rows(
    curated: list[dict], new: list[dict], old: list[dict], policy: ContinualConfig, warm: bool
) -> tuple[list[dict], dict]:
    """The cycle's training rows and their counts (``new_feedback``, ``new_rows`` after weighting,
    ``replay_rows``, ``curated_rows``, ``old_feedback``)."""
    new_rows = weighted(new, policy)
    counts = {
        "start": "champion" if warm else "base",
        "new_feedback": len(new),
        "corrections": sum(r.get("kind") == "correction" for r in new),
        "new_rows": len(new_rows),
    }
    if not warm:
        rows = curated + weighted(old, policy) + new_rows
        return rows, {**counts, "curated_rows": len(curated), "old_feedback": len(old), "replay_rows": 0}
    pool = sorted(curated + weighted(old, policy), key=lambda r: r["id"])  # a fixed order: the draw is seeded
    k = min(len(pool), round(policy.replay_ratio * len(new_rows)))
    replay = random.Random(policy.seed).sample(pool, k)
    return new_rows + replay, {**counts, "curated_rows": 0, "old_feedback": 0, "replay_rows": k}


def feedback_slices(store, workload: str, watermark: int | None) -> dict:
    """The feedback a cycle may read, split at the consumed mark: ``new`` in ``(after, upto]``, ``old`` up to
    ``after``. ``upto`` is the watermark (None: everything so far, for a manual run); ``after`` is where earlier
    cycles stopped, so a rerun on the same watermark gets no new rows."""
    upto = store.watermark(workload) if watermark is None else int(watermark)
    after = min(store.consumed(workload), upto)
    new = store.training_rows(workload, upto=upto, after=after)
    old = store.training_rows(workload, upto=after) if after else []
    return {"new": new, "old": old, "upto": upto, "after": after}


def cycle_data(store, workload, curated_path: str, include_feedback: bool, watermark: int | None, start: str = "base"):
    """One cycle's training rows and counts: the curated rows (a first cycle), or the continual policy's mix of
    curated rows and the feedback up to ``watermark`` (a retrain). ``start`` is ``start_point``'s (``base``, or
    the adapter continued: ``champion v3``). Counts say where every row came from and which feedback window was
    read (``watermark``, ``after``)."""
    from flywheel.training.data import labelled_rows

    curated = labelled_rows(curated_path)
    if not include_feedback:
        counts = {"start": start, "from_curated": len(curated), "from_feedback": 0}
        return curated, {**counts, "new_feedback": 0, "replay_rows": 0, "watermark": None, "after": None}
    sl = feedback_slices(store, workload.name, watermark)
    rows, counts = cycle_rows(curated, sl["new"], sl["old"], workload.continual, warm=start != "base")
    from_feedback = sum(r["id"].startswith("fb-") for r in rows)
    counts.update(
        start=start,
        from_curated=len(rows) - from_feedback,
        from_feedback=from_feedback,
        watermark=sl["upto"],
        after=sl["after"],
    )
    return rows, counts


def _fits(path, sft) -> bool:
    """Whether the adapter folder can be continued by this ``sft`` config (same method family, rank, modules)."""
    import json

    from flywheel.training.methods import PEFT_LIBRARY, adapter_kind

    kind = adapter_kind(path)
    fits = (kind == "peft") == (sft.method in PEFT_LIBRARY) and kind in ("peft", "flywheel")
    if fits and kind == "peft":
        cfg = json.loads((path / "adapter_config.json").read_text())
        fits = cfg.get("r", sft.lora_r) == sft.lora_r and set(cfg.get("target_modules") or []) == set(
            sft.target_modules
        )
    return fits


def start_point(reg, workload, models_dir) -> dict:
    """Where a cycle's training starts: ``init_adapter`` (an adapter folder this ``sft`` config can continue) or
    None (the base model), with ``parent_version`` (the champion), ``start`` (``champion vN``, ``candidate vN``
    or ``base``: what the lineage shows) and ``why``.

    ``start: champion`` continues the champion's adapter. While the champion is still the base model there is
    none; ``continue_refused`` then continues the newest evaluated candidate that the gate refused (a first
    cycle refused by a recall floor is still an epoch of training: continued, it reaches 0.840 on validation
    where a restart from the base reaches 0.780 — bench/RESULTS.md)."""
    from pathlib import Path

    champ = reg.champion(workload.name)
    parent = champ.version if champ else None
    base = {"init_adapter": None, "parent_version": parent, "start": "base"}
    policy, sft = workload.continual, workload.sft
    if policy.start != "champion":
        return {**base, "why": "continual.start: base"}
    if champ is not None and not champ.is_base:
        path = reg.local_path(champ, Path(models_dir) / "registry")
        if not _fits(path, sft):
            why = f"champion v{champ.version}'s adapter does not fit sft.{sft.method} (rank or modules differ)"
            return {**base, "why": why}
        start = f"champion v{champ.version}"
        return {"init_adapter": str(path), "parent_version": parent, "start": start, "why": f"continues {start}"}
    if policy.continue_refused and champ is not None:
        refused = [
            r
            for r in reg.versions(workload.name)
            if not r.is_base and int(r.version) > int(champ.version) and r.evaluation.get("gate") == "refused"
        ]
        for ref in reversed(refused):  # the newest first
            path = reg.local_path(ref, Path(models_dir) / "registry")
            if _fits(path, sft):
                start = f"candidate v{ref.version}"
                why = f"the champion is the base model; continues the refused {start}"
                return {"init_adapter": str(path), "parent_version": parent, "start": start, "why": why}
    return {**base, "why": "the champion is the base model"}


def continual_sft(workload, init_adapter: str | None):
    """The ``SftConfig`` of a cycle: the workload's, continuing ``init_adapter`` for the continual policy's
    epochs and time budget when there is one."""
    if not init_adapter:
        return workload.sft
    c = workload.continual
    return workload.sft.model_copy(
        update={"init_adapter": init_adapter, "epochs": c.epochs, "max_minutes": c.max_minutes}
    )


def dpo_after_sft(store, workload, sft_adapter: str, plan: dict, out_dir, models_dir, log=print):
    """``continual.dpo_steps`` > 0: DPO on the new feedback's preference pairs (the correction chosen over the
    answer it corrected), starting from — and with its reference at — the SFT adapter. Returns the DPO
    ``TrainResult`` and the number of pairs, or (None, 0) when off or when the window holds no pair."""
    from pathlib import Path

    from flywheel.training.config import DpoConfig
    from flywheel.training.dpo import train_dpo

    c = workload.continual
    if not c.dpo_steps or plan.get("watermark") is None:
        return None, 0
    pairs = store.preference_pairs(workload.name, upto=plan["watermark"], after=plan.get("after") or 0)
    if not pairs:
        return None, 0
    keep = {k: v for k, v in workload.sft.model_dump().items() if k in DpoConfig.model_fields}
    cfg = DpoConfig(**keep).model_copy(
        update={
            "init_adapter": sft_adapter,
            "max_steps": c.dpo_steps,
            "beta": c.dpo_beta,
            "learning_rate": c.dpo_learning_rate,
            "epochs": None,
            "max_minutes": None,
        }
    )
    log(f"DPO on {len(pairs)} feedback pairs for {c.dpo_steps} steps, from the SFT adapter")
    return train_dpo(pairs, cfg, workload.system_prompt, Path(out_dir) / "dpo", models_dir, log=log), len(pairs)
