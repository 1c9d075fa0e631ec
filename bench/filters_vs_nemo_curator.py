"""Heuristic filters side by side with NeMo Curator's own, in one run: agreement and docs/s per core.

    python -m bench.filters_vs_nemo_curator --curator-python /path/to/venv/bin/python [--docs 3000]

NeMo Curator lives in its own virtual environment (it pins Ray and friends; it filters on CPU):

    python3 -m venv /tmp/ncvenv && /tmp/ncvenv/bin/pip install torch==2.13.0 nemo-curator==1.4.0

Both sides get the same documents (examples/web_like.py) and the recipe
configs/curation/nemo-heuristics-en.yaml. Agreement: for every filter and document, the same
keep/drop decision (documents Curator cannot score — it raises — are counted separately). Curator
is run twice, with PYTHONHASHSEED 0 and 1: its RepeatingTopNGramsFilter picks among equally
frequent n-grams in set order, so it does not always agree with itself; that ceiling is printed.
Throughput: the whole recipe per document, stopping at the first refusing filter, one core each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from examples.web_like import web_like_corpus
from flywheel.core.config import load_config
from flywheel.curation.config import CurationConfig
from flywheel.curation.heuristics import Doc, FilterSet, build

ROOT = Path(__file__).resolve().parents[1]

CURATOR_SIDE = r"""
import json, sys, time, importlib
docs, specs = json.load(open(sys.argv[1]))
mods = []
for name in (
    "nemo_curator.stages.text.filters.heuristic.string",
    "nemo_curator.stages.text.filters.heuristic.repetition",
    "nemo_curator.stages.text.filters.heuristic",
    "nemo_curator.stages.text.filters",
    "nemo_curator.filters",
):
    try:
        mods.append(importlib.import_module(name))
    except ImportError:
        continue
def make(spec):
    spec = dict(spec)
    name = spec.pop("filter")
    cls = next(getattr(m, name) for m in mods if hasattr(m, name))
    return cls(**spec)
filters = [make(s) for s in specs]
decisions = []
for f in filters:
    row = []
    for d in docs:
        try:
            row.append(bool(f.keep_document(f.score_document(d))))
        except Exception as e:
            row.append(None)
    decisions.append(row)
t = time.perf_counter()
for d in docs:
    for f in filters:
        try:
            if not f.keep_document(f.score_document(d)):
                break
        except Exception:
            break
dt = time.perf_counter() - t
print(json.dumps({"module": ", ".join(m.__name__ for m in mods), "decisions": decisions, "seconds": dt}))
"""


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--curator-python", required=True, help="python of a venv with nemo-curator installed")
    p.add_argument("--docs", type=int, default=3000)
    p.add_argument("--recipe", default=str(ROOT / "configs/curation/nemo-heuristics-en.yaml"))
    a = p.parse_args(argv)
    specs = load_config(a.recipe, CurationConfig).heuristics
    docs = web_like_corpus(a.docs, seed=0)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([docs, specs], f)
    script = Path(f.name).with_suffix(".py")
    script.write_text(CURATOR_SIDE)

    def curator(hash_seed: str) -> dict:
        out = subprocess.run(
            [a.curator_python, str(script), f.name],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"},
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    theirs, theirs_again = curator("0"), curator("1")

    fs = FilterSet(specs)
    t = time.perf_counter()
    for d in docs:
        fs.reason(d)
    ours_s = time.perf_counter() - t
    filters = [build(s) for s in specs]
    per_filter, self_agreement, total, agree, unscorable = {}, {}, 0, 0, 0
    for f, spec, their_row in zip(filters, specs, theirs["decisions"]):
        same = n = 0
        for d, their in zip(docs, their_row):
            if their is None:
                unscorable += 1
                continue
            mine = f.keep(f.score(Doc(d)))
            n += 1
            same += mine == their
        key = f.name
        per_filter[key] = round(same / n, 4) if n else None
        own = sum(x == y for x, y in zip(their_row, theirs_again["decisions"][specs.index(spec)])) / len(docs)
        if own < 1:  # Curator breaks ties by set order, i.e. by PYTHONHASHSEED
            self_agreement[key] = round(own, 4)
        total += n
        agree += same
    print(json.dumps({"curator_module": theirs["module"], "docs": len(docs), "filters": len(specs)}))
    print(json.dumps({"agreement_per_filter": per_filter}))
    print(json.dumps({"curator_vs_itself_other_hash_seed": self_agreement}))
    print(
        json.dumps(
            {"agreement_all": round(agree / total, 5), "decisions": total, "curator_unscorable_decisions": unscorable}
        )
    )
    print(
        json.dumps(
            {
                "docs_per_s_core": {
                    "flywheel": round(len(docs) / ours_s),
                    "nemo_curator": round(len(docs) / theirs["seconds"]),
                },
                "ratio": round(theirs["seconds"] / ours_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
