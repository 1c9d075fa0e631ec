"""The knowledge base's query pipeline: classify and route -> retrieve (fused) -> rerank -> repack -> summary or
an answer with its sources through an OpenAI-compatible engine (the gateway).

Routing needs no LLM: rules on the question's wording (:func:`classify`) pick *fact* (one passage answers it:
``fact_mode``, hybrid by default), *relational* (facts joined across sections or manuals: ``relational_mode``,
vector + BM25 + graph by default) or *summary* (about a whole manual: the manual whose chunks the fused ranking
favours, all of its chunks in document order, and an extractive summary — its most central sentences, MiniLM
cosine to the other sentences and to the question).

    kb = KnowledgeBase.load("kb/")
    r = retrieve(kb, "Which rules apply to accounts younger than 30 days?")      # r.route == "relational"
    out = answer(kb, "How long do I have to dispute a charge?", openai_chat(url, "fraud"))
    out["answer"], out["sources"]                                                 # cited as [1], [2]
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from flywheel.guard.consistency import _words
from flywheel.rag.kb import Hit, KnowledgeBase

ROUTES = ("fact", "relational", "summary")
_SUMMARY = re.compile(
    r"\b(summar\w*|overview|outline|tl;?dr|key points|main points|in a nutshell|"
    r"what (?:does|do) (?:the|this|these|that) [\w\s-]{0,60}\b(?:cover|contain)s?)\b",
    re.I,
)
_RELATIONAL = re.compile(
    r"\b(across|compar\w*|relat\w*|connect\w*|link\w*|differ\w*|between|both|versus|vs)\b|"
    r"\b(?:which|what)\s+(?:\w+\s+){0,2}(?:rules|policies|manuals|fees|limits|thresholds|purchases|times|triggers|"
    r"requirements|documents)\b|\b(?:at home and abroad|and (?:for|in|at) )",
    re.I,
)
SYSTEM = (
    "Answer the question from the numbered sources only, in one or two sentences. Cite the sources you use as "
    "[1], [2]. If the sources do not answer it, say that they do not."
)


def classify(query: str) -> str:
    """fact | relational | summary, from the wording (documented rules; measured in bench/kb_eval.py)."""
    if _SUMMARY.search(query):
        return "summary"
    if _RELATIONAL.search(query):
        return "relational"
    return "fact"


@dataclass
class Retrieval:
    query: str
    route: str
    mode: str
    hits: list[Hit]
    summary: str | None = None
    reranked: str = "none"
    ranked: list[Hit] = field(default_factory=list)  # best first, before repacking
    meta: dict = field(default_factory=dict)


def retrieve(kb: KnowledgeBase, query: str, k: int | None = None, route: str | None = None) -> Retrieval:
    """Route, retrieve, rerank and repack: the chunks for ``query`` (and, for a summary, the summary)."""
    cfg = kb.cfg
    k = k or cfg.top_k
    route = route or (classify(query) if cfg.routing else "fact")
    if route not in ROUTES:
        raise ValueError(f"route: {route!r} is not one of {', '.join(ROUTES)}")
    if route == "summary":
        return _summary(kb, query, k)
    mode = cfg.relational_mode if route == "relational" else cfg.fact_mode
    if mode in ("graph", "hybrid_graph") and kb.graph is None:
        mode = "hybrid"  # a KB built without the graph
    hits = kb.search(query, mode, k=max(k, cfg.rerank_candidates) if cfg.rerank != "none" else k)
    hits = rerank(kb, query, hits)[:k]
    return Retrieval(query, route, mode, repack(hits, cfg.repack), reranked=cfg.rerank, ranked=hits)


def search(kb: KnowledgeBase, query: str, mode: str, k: int = 10) -> list[Hit]:
    """``kb.search`` with the pipeline's rerank (mode ``routed``: the whole pipeline) — for ``evaluate``."""
    if mode == "routed":
        return retrieve(kb, query, k).ranked
    hits = kb.search(query, mode, k=max(k, kb.cfg.rerank_candidates) if kb.cfg.rerank != "none" else k)
    return rerank(kb, query, hits)[:k]


# ---------------------------------------------------------------- rerank and repack
_CE: dict = {}
_CE_LOCK = threading.Lock()


def _idf(kb: KnowledgeBase) -> dict[str, float]:
    if getattr(kb, "_idf", None) is None:
        df: dict[str, int] = {}
        for n in kb.nodes.values():
            for w in _words(n.get_content()):
                df[w] = df.get(w, 0) + 1
        kb._idf = {w: float(np.log(1 + len(kb.nodes) / c)) for w, c in df.items()}
    return kb._idf


def overlap_scores(kb: KnowledgeBase, query: str, hits: list[Hit]) -> list[float]:
    """The documented scorer: idf-weighted share of the query's content words (numbers included) the chunk
    states, plus the chunk's cosine to the query."""
    idf = _idf(kb)
    q = _words(query)
    total = sum(idf.get(w, 1.0) for w in q) or 1.0
    qvec = kb.embed_query(query)
    rows = kb.row_of
    out = []
    for h in hits:
        cover = sum(idf.get(w, 1.0) for w in q & _words(h.text)) / total
        out.append(cover + float(kb._matrix[rows[h.id]] @ qvec))
    return out


def cross_encoder(path: str):
    with _CE_LOCK:
        if path not in _CE:
            from sentence_transformers import CrossEncoder

            _CE[path] = CrossEncoder(path, device="cpu")
        return _CE[path]


def rerank(kb: KnowledgeBase, query: str, hits: list[Hit]) -> list[Hit]:
    """``hits`` reordered by the configured reranker (its score replaces the fused one)."""
    how = kb.cfg.rerank
    if how == "none" or not hits:
        return hits
    if how == "overlap":
        scores = overlap_scores(kb, query, hits)
    else:
        scores = [float(s) for s in cross_encoder(kb.cfg.reranker_model).predict([(query, h.text) for h in hits])]
    for rank, (h, s) in enumerate(zip(hits, scores), start=1):
        h.ranks["fused"] = rank
        h.score = s
    return sorted(hits, key=lambda h: -h.score)


def repack(hits: list[Hit], order: str) -> list[Hit]:
    """forward: best first; reverse: best last (nearest the question in the prompt); document: by manual, then
    position in it."""
    if order == "reverse":
        return hits[::-1]
    if order == "document":
        return sorted(hits, key=lambda h: (h.source, h.id))
    return hits


# ---------------------------------------------------------------- summary route
def _summary(kb: KnowledgeBase, query: str, k: int) -> Retrieval:
    mode = "hybrid_graph" if kb.graph is not None else "hybrid"
    votes: dict[str, float] = {}  # each manual: the sum of 1 / rank of its chunks (the best chunk weighs most)
    for rank, h in enumerate(kb.search(query, mode, k=kb.cfg.candidates), start=1):
        votes[h.source] = votes.get(h.source, 0.0) + 1.0 / rank
    doc = max(votes, key=votes.get) if votes else ""
    chunks = [n for n in kb.nodes.values() if n.metadata.get("source") == doc]
    hits = [Hit(n.node_id, doc, n.get_content(), 1.0, {"summary": i}) for i, n in enumerate(chunks, start=1)]
    summary = extractive_summary(kb, query, hits, kb.cfg.summary_sentences)
    return Retrieval(query, "summary", mode, hits, summary, ranked=hits, meta={"document": doc})


def extractive_summary(kb: KnowledgeBase, query: str, hits: list[Hit], n: int) -> str:
    """The ``n`` sentences most central to the chunks (mean cosine to the others) and nearest the question, in
    document order; table rows are left to the sources."""
    from flywheel.curation.semantic import embed
    from flywheel.guard.consistency import sentences

    sents = []
    for h in hits:
        body = h.text.split("\n", 1)[-1]
        if "|" not in body:
            sents += [s for s in sentences(body) if len(s) > 20]
    if not sents:
        return ""
    vecs = embed(sents, kb.cfg.embedder, device="cpu")
    central = (vecs @ vecs.T).mean(axis=1) + vecs @ kb.embed_query(query)
    keep = sorted(np.argsort(-central)[:n])
    return " ".join(sents[i] for i in keep)


# ---------------------------------------------------------------- answers
def sources(r: Retrieval, n: int) -> list[dict]:
    return [{"n": i, "id": h.id, "source": h.source, "title": h.text.split("\n", 1)[0][:120], "text": h.text}
            for i, h in enumerate(r.hits[:n], start=1)]  # fmt: skip


def messages_with_sources(messages: list[dict], srcs: list[dict], summary: str | None = None) -> list[dict]:
    """The conversation with the numbered sources put before its last user message."""
    block = "\n\n".join(f"[{s['n']}] {s['text']}" for s in srcs)
    if summary:
        block = f"Summary: {summary}\n\n{block}"
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages) - 1)
    question = messages[last].get("content") if messages else ""
    out = [m for m in messages if m.get("role") in ("system", "developer")] or [{"role": "system", "content": SYSTEM}]
    if out[0].get("content") != SYSTEM:
        out = [{"role": "system", "content": f"{out[0].get('content')}\n\n{SYSTEM}"}, *out[1:]]
    history = [m for m in messages[:last] if m.get("role") not in ("system", "developer")]
    return [*out, *history, {"role": "user", "content": f"Sources:\n{block}\n\nQuestion: {question}"}]


def answer(kb: KnowledgeBase, query: str, chat: Callable[[list[dict]], str], k: int | None = None) -> dict:
    """Retrieve, then ask ``chat`` (``openai_chat``) to answer from the numbered sources; the answer, its
    sources and its faithfulness to them."""
    from flywheel.rag.evaluate import faithfulness

    r = retrieve(kb, query, k)
    srcs = sources(r, kb.cfg.answer_chunks)
    text = chat(messages_with_sources([{"role": "user", "content": query}], srcs, r.summary))
    contexts = [s["text"] for s in srcs] + ([r.summary] if r.summary else [])
    return {
        "query": query, "route": r.route, "mode": r.mode, "answer": text, "summary": r.summary,
        "sources": [{k_: s[k_] for k_ in ("n", "id", "source", "title")} for s in srcs],
        "faithfulness": round(faithfulness(text, contexts), 3),
    }  # fmt: skip


def openai_chat(url: str, model: str, api_key: str | None = None, max_tokens: int = 128, timeout: float = 120.0):
    """A ``chat(messages) -> text`` over an OpenAI-compatible endpoint (the gateway, vLLM, trtllm-serve)."""
    import openai

    client = openai.OpenAI(base_url=url.rstrip("/") + "/v1", api_key=api_key or "none", timeout=timeout)

    def chat(messages: list[dict]) -> str:
        out = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, temperature=0)
        return out.choices[0].message.content or ""

    return chat
