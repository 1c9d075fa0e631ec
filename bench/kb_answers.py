"""Answers from the knowledge base, measured: the real SmolLM2-135M-Instruct (the gateway's local engine) answers
the hand-checked policy questions closed-book and with the routed pipeline's numbered sources; per setting, the
share of answers that state the evidence's key facts (its numbers and amounts, or its content words), the
faithfulness to the sources (share of answer sentences the sources support — the fact-check rail's scorer),
and the fact-check rail's verdicts at its default threshold. Wilson 95 % intervals (small sets).

    OMP_NUM_THREADS=2 python -m bench.kb_answers [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

_NUM = re.compile(r"\$?\d[\d,.]*%?")


def key_facts(evidence: str) -> set[str]:
    """The evidence's numbers and amounts (what a wrong answer gets wrong); its content words if it has none."""
    from flywheel.guard.consistency import _words

    nums = {n.strip(".,") for n in _NUM.findall(evidence)}
    return nums or _words(evidence)


def states(answer: str, facts: set[str]) -> bool:
    low = answer.lower()
    return all(f.lower() in low for f in facts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-tokens", type=int, default=64)
    a = ap.parse_args()

    from examples.policies import QUESTIONS, RELATIONAL, write_policies
    from flywheel.core.home import Home
    from flywheel.guard.consistency import unsupported
    from flywheel.guard.redteam import wilson
    from flywheel.ingest.config import ChunkingConfig, IngestConfig
    from flywheel.ingest.run import ingest_dataset
    from flywheel.rag import pipeline
    from flywheel.rag.config import KbConfig
    from flywheel.rag.evaluate import faithfulness
    from flywheel.rag.kb import KnowledgeBase, build_kb
    from flywheel.serving.engine import GenRequest, LocalEngine
    from flywheel.training.models import resolve_base_model

    tmp = Path(tempfile.mkdtemp(prefix="kb-answers-"))
    write_policies(tmp / "pdfs")
    raw = IngestConfig(chunking=ChunkingConfig(enabled=False))
    df = ingest_dataset([str(tmp / "pdfs")], "policies", raw, tmp / "ds", tmp / "cache").dataset.to_pandas()
    build_kb(df, tmp / "kb", KbConfig())
    kb = KnowledgeBase.load(tmp / "kb")
    base = resolve_base_model("smollm2-135m-instruct", Home.resolve().models)
    eng = LocalEngine(base, None, "base", device="cpu")
    qs = [(q, e if isinstance(e, list) else [e]) for q, e, *_ in (*QUESTIONS, *RELATIONAL)]
    rows = {"closed-book": [], "with sources": []}
    t0 = time.perf_counter()
    for question, evs in qs:
        r = pipeline.retrieve(kb, question, kb.cfg.answer_chunks)
        srcs = pipeline.sources(r, kb.cfg.answer_chunks)
        contexts = [s["text"] for s in srcs]
        for setting, messages in (
            ("closed-book", [{"role": "user", "content": question}]),
            ("with sources", pipeline.messages_with_sources([{"role": "user", "content": question}], srcs)),
        ):
            text = eng.generate(GenRequest(messages=messages, max_tokens=a.max_tokens)).text
            facts = set().union(*(key_facts(e) for e in evs[:1]))
            rows[setting].append({
                "correct": states(text, facts),
                "faithful": faithfulness(text, contexts),
                "flagged": bool(unsupported(text, contexts, 0.5)),
                "text": text,
            })  # fmt: skip
    eng.close()
    n = len(qs)
    print(f"{n} hand-checked questions (34 fact + 12 relational), SmolLM2-135M-Instruct, greedy, "
          f"max_tokens {a.max_tokens}, {time.perf_counter() - t0:.0f} s")  # fmt: skip
    print(f"{'setting':13} {'states the key facts':>26} {'faithfulness':>13} {'fact check flags':>24}")
    for setting, rs in rows.items():
        c = sum(r["correct"] for r in rs)
        f = sum(r["flagged"] for r in rs)
        lo, hi = wilson(c, n)
        flo, fhi = wilson(f, n)
        faith = sum(r["faithful"] for r in rs) / n
        print(f"{setting:13} {c:3}/{n} {c / n:.3f} [{lo:.3f}, {hi:.3f}] {faith:13.3f} "
              f"{f:3}/{n} {f / n:.3f} [{flo:.3f}, {fhi:.3f}]")  # fmt: skip
    for setting, rs in rows.items():
        print(f"example ({setting}): {qs[0][0]!r} -> {rs[0]['text']!r}")
    print(f"date {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
