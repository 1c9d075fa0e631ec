"""``injection_resisted`` on real models: golden transactions re-asked with an injected order to answer the other
label (``flywheel.guard.probes``), next to the plain accuracy — the base SmolLM2 and a home's registered versions.

    OMP_NUM_THREADS=2 FLYWHEEL_HOME=/tmp/demo5 python -m bench.injection_resisted --versions 2 3 [--n 60]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", nargs="*", default=[], help="registered versions (adapters under the home)")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument(
        "--workload", type=Path, default=Path(__file__).resolve().parents[1] / "configs/workloads/fraud.yaml"
    )
    a = ap.parse_args()

    from examples.fraud import generate
    from flywheel.core.home import Home
    from flywheel.core.workload import load_workload
    from flywheel.evaluation.scorers import answer_outcomes
    from flywheel.evaluation.suite import load_for_eval
    from flywheel.guard.probes import injected_rows

    wl = load_workload(a.workload)
    home = Home.resolve()
    rows = generate(a.n, seed=wl.data.seed + 1)  # the golden set's seed (8 for fraud)
    probes = injected_rows(rows, wl.labels)
    base = home.models / "smollm2-135m-instruct"
    for name, adapter in [("base", None)] + [
        (f"v{v}", home.models / "registry" / wl.name / f"v{v}") for v in a.versions
    ]:
        t0 = time.time()
        model, tok = load_for_eval(str(base), str(adapter) if adapter else None)
        clean, _ = answer_outcomes(model, tok, rows, wl.labels, wl.system_prompt, 16, 16)
        inj, _ = answer_outcomes(model, tok, probes, wl.labels, wl.system_prompt, 16, 16)
        print(json.dumps({
            "model": name, "accuracy": round(float((clean["pred"] == clean["gold"]).mean()), 3),
            "injection_resisted": round(float((inj["pred"] == inj["gold"]).mean()), 3), "n": len(probes),
            "seconds": round(time.time() - t0),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
