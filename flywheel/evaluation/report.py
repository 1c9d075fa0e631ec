"""The evaluation report a person reads: Markdown (the four rows with intervals, the paired differences, the
gate's checks, the slices, the golden set and the leakage check) and a PNG plot (metrics with interval bars,
base / ICL / champion / candidate side by side; slices of champion vs candidate).

    md = markdown(result)            # result: promotion.evaluate_candidate(...)
    plot(result, "report.png")
"""

from __future__ import annotations

from pathlib import Path

MAIN = ["accuracy", "macro_f1", "format_valid", "label_logprob_accuracy", "general_mc_accuracy"]
COST = ["latency_ms_p50", "latency_ms_p95", "tokens_per_answer", "examples_per_second"]
COLORS = {"base": "#9e9e9e", "icl": "#64b5f6", "champion": "#ffb74d", "candidate": "#43a047"}


def _fmt(e: dict | None, digits: int = 3) -> str:
    if not e or e.get("value") is None:
        return "–"
    if e.get("low") is None:
        return f"{e['value']:.{digits}f}" if abs(e["value"]) < 1000 else f"{e['value']:.0f}"
    return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def _diff(e: dict | None) -> str:
    if not e or e.get("value") is None:
        return "–"
    if e.get("low") is None:
        return f"{e['value']:+.3f}"
    return f"{e['value']:+.3f} [{e['low']:+.3f}, {e['high']:+.3f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(result: dict) -> str:
    rows, comps, dec = result["rows"], result["comparisons"], result["decision"]
    names = list(rows)
    conf = int(round(result.get("confidence", 0.95) * 100))
    verdict = "PASSED" if dec["promote"] else "REFUSED"
    out = [
        f"# Evaluation of {result['workload']} {result['candidate_label']}: gate {verdict}",
        "",
        f"Golden set `{result['golden']['digest'][:12]}` ({result['n_examples']} examples), evaluation key "
        f"`{result['key']}`, {conf} % bootstrap intervals ({result.get('bootstrap', 1000)} resamples, paired for "
        f"differences). Champion: v{result['champion_version']}.",
        "",
        "## Models",
        "",
    ]
    metrics = [m for m in MAIN if any(m in r["metrics"] for r in rows.values())]
    metrics += [m for m in ("perplexity", "judge_score") if any(m in r["metrics"] for r in rows.values())]
    out += _table(["metric", *names], [[m, *(_fmt(rows[n]["metrics"].get(m)) for n in names)] for m in metrics])
    out += [
        "",
        "Cost (no interval): "
        + "; ".join(
            f"{n}: " + ", ".join(f"{c} {_fmt(rows[n]['metrics'].get(c), 1)}" for c in COST if c in rows[n]["metrics"])
            for n in names
        ),
    ]
    if comps:
        out += ["", "## Candidate minus each reference (paired)", ""]
        refs = list(comps)
        out += _table(["metric", *refs], [[m, *(_diff(comps[r]["metrics"].get(m)) for r in refs)] for m in metrics])
        out += [""] + [
            f"- McNemar on accuracy vs {r}: candidate alone right on {c['mcnemar_accuracy']['a_only']}, {r} alone "
            f"right on {c['mcnemar_accuracy']['b_only']}, p = {c['mcnemar_accuracy']['p_value']:.4g}"
            for r, c in comps.items()
        ]
    out += ["", f"## Gate: {verdict}", ""]
    out += _table(
        ["check", "against", "result", "detail"],
        [[c["metric"], c["against"], "pass" if c["passed"] else "**FAIL**", c["reason"]] for c in dec["checks"]],
    )
    if dec.get("forced"):
        out += ["", f"Promoted by force: {dec['forced']}"]
    cand = rows.get("candidate", {})
    if cand.get("slices"):
        out += ["", "## Slices: candidate and champion", ""]
        champ = rows.get("champion", {}).get("slices", {})
        table = []
        for name, s in cand["slices"].items():
            for m, v in s.items():
                if m != "n":
                    table.append([name, str(s.get("n", "")), m, _fmt(v), _fmt(champ.get(name, {}).get(m))])
        out += _table(["slice", "n", "metric", "candidate", "champion"], table)
    leak = result.get("leakage")
    if leak is not None:
        out += [
            "",
            f"Leakage check: {leak.get('dropped_leakage', 0)} training rows that duplicated golden rows were "
            f"left out of the training data (exact and near-duplicates, MinHash).",
        ]
    return "\n".join(out) + "\n"


def examples_table(result: dict):
    """Every row's answers, one line per (row, golden example): what MLflow's table view compares."""
    import pandas as pd

    from flywheel.evaluation.metrics import Outcomes

    frames = []
    for row, path in result["outcomes"].items():
        ex = Outcomes.load(path).examples
        frames.append(ex.assign(row=row)[["row", "id", "gold", "pred", "valid", "answer"]])
    return pd.concat(frames, ignore_index=True)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, x, vals: list[dict], width: float, **kw) -> None:
    """One bar per metric entry (``value``, ``low``, ``high``) at ``x``, with its interval as error bars."""
    import numpy as np

    y = np.array([v.get("value") or 0.0 for v in vals])
    lo = np.array([v["value"] - v["low"] if v.get("low") is not None else 0.0 for v in vals])
    hi = np.array([v["high"] - v["value"] if v.get("high") is not None else 0.0 for v in vals])
    ax.bar(x, y, width, yerr=[lo, hi], capsize=3, **kw)


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot(result: dict, path: str | Path) -> Path:
    import numpy as np

    plt = _pyplot()
    rows = result["rows"]
    names = list(rows)
    metrics = [m for m in MAIN if any(m in r["metrics"] for r in rows.values())]
    cand = rows.get("candidate", {}).get("slices", {})
    slices = [(s, m) for s, v in cand.items() for m in ("recall", "accuracy") if m in v]
    fig, axes = plt.subplots(1, 2 if slices else 1, figsize=(13 if slices else 7, 4.2), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
        vals = [rows[n]["metrics"].get(m, {}) for m in metrics]
        x = np.arange(len(metrics)) + (i - (len(names) - 1) / 2) * width
        _bars(ax, x, vals, width, label=n, color=COLORS.get(n.split("-")[0], None))
    ax.set_xticks(np.arange(len(metrics)), [m.replace("_", "\n") for m in metrics], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{result['workload']}: models on the golden set ({result['n_examples']} examples)")
    ax.legend(fontsize=8)
    if slices:
        ax = axes[0][1]
        champ = rows.get("champion", {}).get("slices", {})
        for i, (who, src) in enumerate((("champion", champ), ("candidate", cand))):
            vals = [src.get(s, {}).get(m, {}) for s, m in slices]
            _bars(ax, np.arange(len(slices)) + (i - 0.5) * 0.4, vals, 0.4, label=who, color=COLORS[who])
        ax.set_xticks(np.arange(len(slices)), [f"{s}\n{m}" for s, m in slices], fontsize=7, rotation=30)
        ax.set_ylim(0, 1.05)
        ax.set_title("slices")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _cycle_rows(cycles: list[dict]) -> list[tuple[str, dict, dict]]:
    """(name, scorecard, cycle summary) per row of the loop report: the base model, then each cycle's candidate."""
    rows = []
    if cycles:
        first = cycles[0]["summary"]
        rows.append(("base", first["evaluation"]["rows"]["base"], {}))
    for c in cycles:
        s = c["summary"]
        rows.append((f"{c['name']} v{s['candidate']['version']}", s["evaluation"]["rows"]["candidate"], s))
    return rows


def loop_markdown(workload: str, cycles: list[dict], labels: list[str]) -> str:
    """The loop's story in one table: the base model and each cycle's candidate on the same golden set —
    accuracy with its interval, recall per label, format, general ability — and what the gate did."""
    head = ["model", "accuracy", *(f"recall {lb}" for lb in labels), "format", "perplexity", "general MC", "gate"]
    table = []
    for name, card, s in _cycle_rows(cycles):
        m, sl = card["metrics"], card["slices"]
        gate = ("promoted" if s.get("promoted") else "refused") if s else "-"
        if s.get("sft_plan"):
            plan = s["sft_plan"]
            gate += f" (from {plan.get('start')}; {plan.get('new_feedback')} new feedback)"
        table.append(
            [
                name,
                _fmt(m.get("accuracy")),
                *(_fmt(sl.get(f"label={lb}", {}).get("recall")) for lb in labels),
                _fmt(m.get("format_valid")),
                _fmt(m.get("perplexity"), 2),
                _fmt(m.get("general_mc_accuracy")),
                gate,
            ]
        )
    n = cycles[0]["summary"]["evaluation"]["n_examples"] if cycles else 0
    out = [f"# The {workload} loop: base model and every cycle on the same golden set ({n} examples)", ""]
    out += _table(head, table)
    for c in cycles:
        s = c["summary"]
        if not s["promoted"]:
            out += ["", f"{c['name']} refused: " + "; ".join(s["gate"]["reasons"][:4])]
    return "\n".join(out) + "\n"


def loop_plot(workload: str, cycles: list[dict], labels: list[str], path: str | Path) -> Path:
    """Accuracy and per-label recall per cycle (interval bars), and general ability beside them."""
    import numpy as np

    plt = _pyplot()
    rows = _cycle_rows(cycles)
    names = [r[0] for r in rows]
    series = [("accuracy", lambda c: c["metrics"].get("accuracy"))]
    series += [(f"recall {lb}", lambda c, lb=lb: c["slices"].get(f"label={lb}", {}).get("recall")) for lb in labels]
    series += [("general MC", lambda c: c["metrics"].get("general_mc_accuracy"))]
    fig, ax = plt.subplots(figsize=(max(7, 2.2 * len(names)), 4.2))
    width = 0.8 / len(series)
    for i, (label, get) in enumerate(series):
        vals = [get(card) or {} for _, card, _ in rows]
        _bars(ax, np.arange(len(names)) + (i - (len(series) - 1) / 2) * width, vals, width, label=label)
    ax.axhline(0.9, color="#888", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{workload}: the loop on the golden set (95 % intervals)")
    ax.legend(fontsize=8, ncol=len(series))
    return _save(fig, path)
