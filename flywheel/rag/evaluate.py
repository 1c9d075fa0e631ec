"""The knowledge base measured: ranking metrics on judged questions, and the answer's faithfulness.

A question carries its evidence — one string or a list; a chunk is relevant when it contains one of them
(whitespace and case normalised). Judgments come from the hand-checked sets in ``examples/policies.py`` and
from :func:`generated_questions` / ``flywheel.synth.qa`` (questions drawn from the documents themselves, the
validation set on which weights are chosen). recall@k, MRR and nDCG@10 with binary relevance, computed here
and cross-checked against trec_eval (``pytrec_eval``) in ``tests/unit/test_kb.py``.

Answer scorers, without an LLM (ragas' versions need a model that returns valid JSON — DESIGN.md):
*faithfulness*, the share of the answer's sentences supported by the retrieved chunks (the fact-check rail's
scorer), and *context precision*, the mean precision at each relevant chunk's rank (ragas' definition, with
the judged relevance instead of an LLM verdict).

    res = evaluate(kb, [{"question": "...", "evidence": "within 120 days"}], modes=("vector", "hybrid"))
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def evidences(q: dict) -> list[str]:
    ev = q["evidence"]
    return [ev] if isinstance(ev, str) else list(ev)


def judged(chunks_text: dict[str, str], evidence: str | list[str]) -> set[str]:
    """The chunks relevant to a question: those containing one of its evidence strings."""
    evs = [_norm(e) for e in ([evidence] if isinstance(evidence, str) else evidence)]
    return {cid for cid, t in chunks_text.items() if any(e in _norm(t) for e in evs)}


def ranking_metrics(ranked: list[str], relevant: set[str], k: int = 5) -> dict[str, float]:
    """recall@k, reciprocal rank, nDCG@10 (binary relevance) and context precision@k of one ranking."""
    rr = next((1.0 / i for i, d in enumerate(ranked, start=1) if d in relevant), 0.0)
    dcg = sum(1.0 / np.log2(i + 1) for i, d in enumerate(ranked[:10], start=1) if d in relevant)
    ideal = sum(1.0 / np.log2(i + 1) for i in range(1, min(len(relevant), 10) + 1))
    return {
        f"recall@{k}": len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0,
        "mrr": rr,
        "ndcg@10": dcg / ideal if ideal else 0.0,
        "context_precision": context_precision(ranked[:k], relevant),
    }


def context_precision(ranked: list[str], relevant: set[str]) -> float:
    """ragas' context precision with judged relevance: mean over the relevant positions i of precision@i."""
    hits, total = 0, 0.0
    for i, d in enumerate(ranked, start=1):
        if d in relevant:
            hits += 1
            total += hits / i
    return total / hits if hits else 0.0


def faithfulness(answer: str, contexts: list[str], min_support: float = 0.6) -> float:
    """Share of the answer's sentences whose content words the contexts support (1.0 for an empty answer)."""
    from flywheel.guard.consistency import lexical_support, sentences

    sents = sentences(answer)
    if not sents:
        return 1.0
    return sum(lexical_support(s, contexts) >= min_support for s in sents) / len(sents)


def trec_run(kb, questions: list[dict], mode: str, k: int = 10) -> tuple[dict, dict]:
    """(qrels, run) in trec_eval's dict form ({qid: {doc: relevance}}, {qid: {doc: score}}) for pytrec_eval."""
    texts = {nid: n.get_content() for nid, n in kb.nodes.items()}
    qrels, run = {}, {}
    for i, q in enumerate(questions):
        rel = judged(texts, q["evidence"])
        if rel:
            qrels[f"q{i}"] = dict.fromkeys(rel, 1)
            hits = kb.search(q["question"], mode, k=k)
            # trec_eval orders by score: give strictly decreasing scores in our rank order
            run[f"q{i}"] = {h.id: float(k - r) for r, h in enumerate(hits)}
    return qrels, run


def evaluate(
    kb, questions: list[dict], modes=("vector", "bm25", "hybrid"), k: int = 5, search=None, per_question: bool = False
) -> dict:
    """Mean metrics per mode over ``questions`` (``question``, ``evidence``); questions whose evidence no chunk
    contains are counted and left out. ``search(question, mode, k) -> [Hit]`` replaces ``kb.search`` (the
    query pipeline: routing and reranking); ``per_question``: each question's metrics too (for paired tests)."""
    search = search or kb.search
    texts = {nid: n.get_content() for nid, n in kb.nodes.items()}
    usable = [(q, judged(texts, q["evidence"])) for q in questions]
    unjudged = sum(1 for _, rel in usable if not rel)
    usable = [(q, rel) for q, rel in usable if rel]
    out = {"questions": len(usable), "unjudged": unjudged}
    for mode in modes:
        rows, ms = [], []
        for q, rel in usable:
            t0 = time.perf_counter()
            ranked = [h.id for h in search(q["question"], mode, k=10)]
            ms.append((time.perf_counter() - t0) * 1000)
            rows.append(ranking_metrics(ranked, rel, k))
        out[mode] = {m: round(float(np.mean([r[m] for r in rows])), 4) for m in rows[0]} if rows else {}
        out[mode]["latency_ms_p50"] = round(float(np.percentile(ms, 50)), 1) if ms else None
        if per_question:
            out[mode]["per_question"] = rows
    return out


def generated_questions(df: pd.DataFrame) -> list[dict]:
    """Extractive questions from the documents themselves (no model): one per table row ("What is the <columns>
    for <first cell>?", evidence: the row) and one per headed section ("What does <document> say about
    <heading>?", evidence: the section's first sentence)."""
    from flywheel.rag.text import doc_title, headed_passages, markdown_table

    out = []
    for r in df.itertuples(index=False):
        if r.kind == "table":
            header, rows = markdown_table(r.text)
            for line, cells in rows:
                cols = ", ".join(header[1:]).lower()
                out.append({"question": f"What is the {cols} for {cells[0]}?", "evidence": line, "kind": "table"})
        else:
            title = doc_title(r.text)
            for _, topic, first in headed_passages(r.text, title):
                question = f"What does the {title} say about {topic.lower()}?"
                out.append({"question": question, "evidence": first, "kind": "section"})
    return out


def paired_difference(a: list[float], b: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over the same questions and its 95 % paired-bootstrap interval."""
    d = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))
