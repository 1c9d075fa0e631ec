"""Question -> answer (+ a short rationale) pairs from curated documents: for the knowledge base's evaluation
(question -> relevant-chunk judgments: each pair keeps the evidence span of its passage) and as SFT rows
(``text`` -> ``answer``) for a workload whose model should know the documents.

Generators: *extractive* (the offline default, deterministic) — one question per table cell ("According to the
Fees and Limits Schedule, what is the ATM withdrawal for Premium?" -> "$2,500") and per headed passage ("What
does the Chargeback and Dispute Policy say about the filing window?" -> its first sentence); *teacher* — a model
behind any OpenAI-compatible endpoint writes ``question | answer | rationale`` lines per passage.

Filters, each counted as ``dropped_<reason>`` (datatrove-style; removed pairs are returned with their reason):
empty, too_long, unsupported (the answer's content words are not in its passage: a teacher's invention),
duplicate (the same normalised question), leak (a question too close — MiniLM cosine — to a held-out evaluation
question, so the synthetic data cannot teach the test).

    pairs, removed, counts = synthesize(df, SynthConfig(), holdout=["How long do I have to dispute a charge?"])
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd

from flywheel.synth.config import SynthConfig


def _pair(question, answer, rationale, evidence, source, kind, origin) -> dict:
    return {"question": " ".join(question.split()), "answer": " ".join(answer.split()),
            "rationale": " ".join(rationale.split()), "evidence": evidence, "source": source, "kind": kind,
            "origin": origin}  # fmt: skip


def extractive_pairs(df: pd.DataFrame) -> list[dict]:
    """Pairs from table cells and headed passages (ingest rows: text, source, kind)."""
    from flywheel.rag.text import doc_title, headed_passages, markdown_table

    titles = {r.source: doc_title(r.text) for r in df.itertuples(index=False) if r.kind != "table"}
    out = []
    for r in df.itertuples(index=False):
        title = titles.get(r.source, "the document")
        if r.kind == "table":
            header, rows = markdown_table(r.text)
            for line, cells in rows:
                for col, cell in zip(header[1:], cells[1:]):
                    if cell:
                        q = f"According to the {title}, what is the {col.lower()} for {cells[0]}?"
                        why = f"The {title} lists {cells[0]} with {col.lower()} {cell}."
                        out.append(_pair(q, cell, why, line, r.source, "table", "extractive"))
            continue
        for head, topic, first in headed_passages(r.text, title):
            q = f"What does the {title} say about {topic.lower()}?"
            why = f"Section '{head}' of the {title} states it."
            out.append(_pair(q, first, why, first, r.source, "section", "extractive"))
    return out


_TEACHER = (
    "Write {n} question-answer pairs that the text answers, for training an assistant. One per line, as\n"
    "question | answer | rationale\nThe answer uses the text's own words; the rationale says in one sentence "
    "where the text says it. No other output.\n\nText:\n{text}"
)


def teacher_pairs(df: pd.DataFrame, cfg: SynthConfig, api_key: str | None = None) -> tuple[list[dict], int]:
    """Pairs from the teacher model, one request per passage; (pairs, passages whose answer did not parse)."""
    from flywheel.core.chat import chat_each, pipe_fields
    from flywheel.guard.consistency import lexical_support, sentences

    out, failed = [], 0
    rows = list(df.itertuples(index=False))
    prompts = [_TEACHER.format(n=cfg.per_chunk, text=r.text) for r in rows]
    for r, text in zip(rows, chat_each(cfg.teacher_url, cfg.teacher_model, prompts, api_key, 512, 120)):
        got = 0
        for parts in pipe_fields(text, 3):
            if all(parts):
                # evidence: the passage's sentence that best supports the answer (the judgment's span)
                cands = sentences(r.text) or [r.text]
                ev = max(cands, key=lambda s, a=parts[1]: lexical_support(a, [s]))
                out.append(_pair(*parts, ev, r.source, r.kind, "teacher") | {"passage": r.text})
                got += 1
        failed += got == 0
    return out, failed


def _norm_q(q: str) -> str:
    return re.sub(r"[^a-z0-9$%]+", " ", q.lower()).strip()


def filter_pairs(pairs: list[dict], df: pd.DataFrame, cfg: SynthConfig, holdout: list[str]):
    """(kept, removed with ``reason``, counts total/kept/dropped_<reason>)."""
    from flywheel.curation.semantic import embed
    from flywheel.guard.consistency import lexical_support

    text_of = df.groupby("source")["text"].apply(lambda t: "\n".join(t)).to_dict()
    counts = {"total": len(pairs), "kept": 0, "dropped_empty": 0, "dropped_too_long": 0,
              "dropped_unsupported": 0, "dropped_duplicate": 0, "dropped_leak": 0}  # fmt: skip
    kept, removed, seen = [], [], set()

    def drop(p, reason):
        counts[f"dropped_{reason}"] += 1
        removed.append(p | {"reason": reason})

    survivors = []
    for p in pairs:
        if not p["question"] or not p["answer"]:
            drop(p, "empty")
        elif len(p["question"]) > cfg.max_question_chars or len(p["answer"]) > cfg.max_answer_chars:
            drop(p, "too_long")
        elif lexical_support(p["answer"], [p.get("passage") or text_of.get(p["source"], "")]) < cfg.min_support:
            drop(p, "unsupported")
        elif _norm_q(p["question"]) in seen:
            drop(p, "duplicate")
        else:
            seen.add(_norm_q(p["question"]))
            survivors.append(p)
    if survivors and holdout:
        qv = embed([p["question"] for p in survivors], cfg.embedder, device="cpu")
        hv = embed(list(holdout), cfg.embedder, device="cpu")
        nearest = (qv @ hv.T).max(axis=1)
    else:
        nearest = np.zeros(len(survivors))
    for p, sim in zip(survivors, nearest):
        if sim >= cfg.leak_threshold:
            drop(p | {"nearest_holdout": round(float(sim), 4)}, "leak")
        else:
            kept.append(p)
    counts["kept"] = len(kept)
    return kept, removed, counts


def synthesize(df: pd.DataFrame, cfg: SynthConfig, holdout: list[str] | None = None, api_key: str | None = None):
    """Generate, filter and shape the pairs: (a DataFrame of SFT rows and judgments, the removed ones, counts)."""
    if cfg.generator == "teacher":
        pairs, failed = teacher_pairs(df, cfg, api_key)
    else:
        pairs, failed = extractive_pairs(df), 0
    kept, removed, counts = filter_pairs(pairs, df, cfg, holdout or [])
    counts["teacher_unparsed"] = failed
    rows = []
    for p in kept:
        answer = f"{p['answer']}\nRationale: {p['rationale']}" if cfg.with_rationale and p["rationale"] else p["answer"]
        rid = hashlib.sha1(f"{p['source']}|{p['question']}".encode()).hexdigest()[:16]
        rows.append({"id": rid, "text": p["question"], "answer": answer, "question": p["question"],
                     "short_answer": p["answer"], "rationale": p["rationale"], "evidence": p["evidence"],
                     "source": p["source"], "kind": p["kind"], "origin": p["origin"]})  # fmt: skip
    cols = ["id", "text", "answer", "question", "short_answer", "rationale", "evidence", "source", "kind", "origin"]
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(removed), counts
