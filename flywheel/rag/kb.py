"""Build, update and query a knowledge base: llama-index's ``VectorStoreIndex`` (MiniLM embeddings, the embedder
curation and the cache use) and its ``BM25Retriever`` over the same chunks, fused by reciprocal rank.

A KB folder holds the persisted vector index (``storage/``), the BM25 index (``bm25/``) and ``kb.json``: the
format version, the settings, and each source document's digest and chunk ids. Rebuilding from a changed
Dataset embeds only the chunks of new or changed documents and deletes those of removed ones; unchanged
documents keep their vectors.

    counts = build_kb(df, "kb/", KbConfig())          # df: ingest rows (text, source, page, kind)
    kb = KnowledgeBase.load("kb/")
    hits = kb.search("How long do I have to dispute a charge?")   # [Hit(id, source, text, score, ranks)]
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flywheel.core.errors import DataError
from flywheel.rag.config import KbConfig
from flywheel.rag.text import doc_title, sections, split_sentences

FORMAT = 2  # 2: the property graph (graph/) and build settings only in the manifest
MANIFEST = "kb.json"


def _llama():
    """llama-index with no LLM (its default is OpenAI): retrieval here never calls one."""
    from llama_index.core import Settings
    from llama_index.core.llms import MockLLM

    Settings.llm = MockLLM()  # (Settings.llm = None prints a line to stdout on every build)
    return Settings


@dataclass
class Chunk:
    id: str
    doc: str
    text: str
    kind: str
    title: str = ""


def chunk_rows(df: pd.DataFrame, cfg: KbConfig) -> list[Chunk]:
    """Ingest rows -> chunks. ``sections``: a text row is cut at its heading lines (each section titled with
    the document's title and its heading); a table is one chunk under the document's title."""
    chunks: list[Chunk] = []
    titles: dict[str, str] = {}
    for r in df.itertuples(index=False):
        if r.kind != "table":
            titles.setdefault(r.source, doc_title(r.text))
    for i, r in enumerate(df.itertuples(index=False)):
        doc, title = str(r.source), titles.get(r.source, "")
        base = hashlib.sha1(f"{doc}|{r.page}|{i}".encode()).hexdigest()[:12]
        if cfg.chunker == "ingest" or r.kind == "table":
            text = r.text if r.kind != "table" or not title else f"{title}\n{r.text}"
            chunks.append(Chunk(f"{base}-0", doc, text, r.kind, title))
            continue
        if cfg.chunker == "semantic":
            for n, piece in enumerate(_semantic(r.text, title, cfg)):
                chunks.append(Chunk(f"{base}-{n}", doc, f"{title}\n{piece}" if title else piece, "text", title))
            continue
        n = 0
        for head, text in sections(r.text, title):
            for piece in split_sentences(text, cfg.max_chars):
                prefix = " — ".join(x for x in (title, head) if x)
                chunks.append(Chunk(f"{base}-{n}", doc, f"{prefix}\n{piece}" if prefix else piece, "text", title))
                n += 1
    return chunks


def _semantic(text: str, title: str, cfg: KbConfig) -> list[str]:
    """llama-index's semantic splitter: a new chunk where the MiniLM distance between neighbouring sentence
    groups is in its top 5 %; pieces longer than ``max_chars`` are split at sentences."""
    from llama_index.core import Document
    from llama_index.core.node_parser import SemanticSplitterNodeParser

    body = "\n".join(line for line in text.splitlines() if line.strip() and line.strip() != title)
    parser = SemanticSplitterNodeParser.from_defaults(embed_model=minilm_embedding(cfg.embedder))
    pieces = [n.get_content().strip() for n in parser.get_nodes_from_documents([Document(text=body)])]
    return [p for piece in pieces if piece for p in split_sentences(piece, cfg.max_chars)]


def minilm_embedding(name: str):
    """A llama-index embedding model over ``flywheel.curation.semantic.embed`` (normalised MiniLM vectors)."""
    from llama_index.core.embeddings import BaseEmbedding

    from flywheel.curation.semantic import embed

    class _Embedding(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return embed([query], name, device="cpu")[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_query_embedding(text)

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return embed(texts, name, device="cpu").tolist()

    return _Embedding(model_name=name, embed_batch_size=64)


def _digests(df: pd.DataFrame) -> dict[str, str]:
    out = {}
    for doc, g in df.groupby("source", sort=True):
        h = hashlib.sha256()
        for t in g.sort_values(["page"]).itertuples(index=False):
            h.update(f"{t.page}\x00{t.kind}\x00{t.text}\x01".encode())
        out[str(doc)] = h.hexdigest()
    return out


def read_manifest(kb_dir: str | Path) -> dict:
    path = Path(kb_dir) / MANIFEST
    if not path.exists():
        raise DataError(f"{kb_dir}: not a knowledge base (no {MANIFEST}); build one with `flywheel kb build`")
    m = json.loads(path.read_text())
    if m.get("format") != FORMAT:
        raise DataError(
            f"{kb_dir}: a knowledge base of format {m.get('format')}, this version reads format {FORMAT}; "
            "rebuild it with `flywheel kb build --rebuild`"
        )
    return m


def build_kb(
    df: pd.DataFrame, kb_dir: str | Path, cfg: KbConfig, rebuild: bool = False, llm_api_key: str | None = None
) -> dict:
    """Create or update the KB in ``kb_dir`` from ingest rows; counts of documents and chunks, and how many
    chunks were embedded (only those of new or changed documents). ``llm_api_key``: the LLM extractor's key."""
    from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    t0 = time.perf_counter()
    _llama()
    missing = {"text", "source", "page", "kind"} - set(df.columns)
    if missing:
        raise DataError(f"kb build: the dataset has no column {sorted(missing)} (an ingest or curate output)")
    df = df[df["text"].map(lambda t: isinstance(t, str) and bool(t.strip()))]
    if df.empty:
        raise DataError("kb build: no text rows in the dataset")
    kb_dir = Path(kb_dir)
    embed_model = minilm_embedding(cfg.embedder)
    old = None
    if (kb_dir / MANIFEST).exists() and not rebuild:
        old = read_manifest(kb_dir)
        if old["settings"] != cfg.build_settings():
            raise DataError(f"{kb_dir}: built with other settings; pass --rebuild to build it anew")
    if old is None and (kb_dir / "graph").exists():  # built anew: no entity vector of another embedder is reused
        shutil.rmtree(kb_dir / "graph")
    digests = _digests(df)
    old_docs = old["docs"] if old else {}
    changed = sorted(d for d, h in digests.items() if old_docs.get(d, {}).get("digest") != h)
    removed = sorted(set(old_docs) - set(digests))
    chunks = chunk_rows(df[df["source"].astype(str).isin(changed)], cfg)

    def node(c: Chunk) -> TextNode:
        n = TextNode(id_=c.id, text=c.text, metadata={"source": c.doc, "kind": c.kind, "title": c.title})
        n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=c.doc)
        return n

    nodes = [node(c) for c in chunks]
    if old:
        storage = StorageContext.from_defaults(persist_dir=str(kb_dir / "storage"))
        index = load_index_from_storage(storage, embed_model=embed_model)
        for d in [*removed, *(d for d in changed if d in old_docs)]:
            index.delete_ref_doc(d, delete_from_docstore=True)
        index.insert_nodes(nodes)
    else:
        index = VectorStoreIndex(nodes, embed_model=embed_model, show_progress=False)
    index.storage_context.persist(persist_dir=str(kb_dir / "storage"))
    all_nodes = list(index.docstore.docs.values())
    if not all_nodes:
        raise DataError("kb build: no chunks")
    _bm25(all_nodes, cfg).persist(str(kb_dir / "bm25"))
    docs = {d: {"digest": digests[d], "chunks": [c.id for c in chunks if c.doc == d]} for d in changed}
    docs |= {d: old_docs[d] for d in digests if d not in docs}
    graph = _build_graph(kb_dir / "graph", chunks, changed, digests, all_nodes, cfg, llm_api_key) if cfg.graph else {}
    manifest = {
        "format": FORMAT, "settings": cfg.build_settings(), "docs": docs, "chunks": len(all_nodes),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    (kb_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    seconds = time.perf_counter() - t0
    return {
        "documents": len(digests), "changed": len(changed), "unchanged": len(digests) - len(changed),
        "removed": len(removed), "chunks": len(all_nodes), "embedded": len(nodes), **graph,
        "seconds": round(seconds, 2), "chunks_per_second": round(len(nodes) / seconds, 1) if seconds else None,
    }  # fmt: skip


def _build_graph(
    folder: Path, chunks: list[Chunk], changed: list[str], digests: dict, all_nodes, cfg, key=None
) -> dict:
    """Extract entities and relations from the chunks of changed documents only; keep the others' extractions."""
    from flywheel.rag import graph

    path = folder / "extractions.json"
    old = json.loads(path.read_text())["docs"] if path.exists() else {}
    fallback = 0
    if cfg.graph_extractor == "llm":
        new, fallback = graph.llm_extract(chunks, cfg.llm_url, cfg.llm_model, key)
    else:
        new = graph.spacy_extract(chunks)
    docs = {d: old[d] for d in digests if d in old and d not in changed}
    for c in chunks:
        docs.setdefault(c.doc, {"digest": digests[c.doc], "chunks": {}})["chunks"][c.id] = new[c.id]
    counts = graph.write_graph(folder, docs, {n.node_id: n.get_content() for n in all_nodes}, cfg.embedder)
    return {**counts, "chunks_extracted": len(chunks), "llm_fallbacks": fallback}


def _bm25(nodes, cfg: KbConfig):
    from llama_index.retrievers.bm25 import BM25Retriever

    return BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=min(cfg.candidates, len(nodes)))


@dataclass
class Hit:
    id: str
    source: str
    text: str
    score: float
    ranks: dict = field(default_factory=dict)  # retriever -> rank (1-based)


class KnowledgeBase:
    """A loaded KB. Vector search runs as one matrix product over the persisted embeddings (llama-index's
    ``SimpleVectorStore`` scores node by node in Python: 121 ms p50 at 10,000 chunks, against 20 ms here with the
    question's embedding included, bench/kb_eval.py); the nodes, their text and metadata stay llama-index's."""

    def __init__(self, kb_dir: Path, cfg: KbConfig, index, bm25, n: int, graph=None):
        self.dir, self.cfg, self.index, self.bm25, self.n, self.graph = kb_dir, cfg, index, bm25, n, graph
        store = index.vector_store.data.embedding_dict
        self._ids = list(store)
        self._matrix = np.asarray([store[i] for i in self._ids], np.float32).reshape(len(self._ids), -1)
        self.row_of = {nid: r for r, nid in enumerate(self._ids)}
        self.nodes = dict(index.docstore.docs)  # parsed once (the docstore rebuilds a node from JSON per get)
        self._idf = None  # word -> idf, for the overlap reranker (flywheel.rag.pipeline)

    @classmethod
    def load(cls, kb_dir: str | Path, config: KbConfig | None = None) -> KnowledgeBase:
        """The KB in ``kb_dir``; ``config``: query-time settings (weights, graph search, pipeline) over the
        defaults — the build settings are the manifest's."""
        from llama_index.core import StorageContext, load_index_from_storage
        from llama_index.retrievers.bm25 import BM25Retriever

        _llama()
        kb_dir = Path(kb_dir)
        m = read_manifest(kb_dir)
        cfg = (config or KbConfig()).model_copy(update=m["settings"])
        storage = StorageContext.from_defaults(persist_dir=str(kb_dir / "storage"))
        index = load_index_from_storage(storage, embed_model=minilm_embedding(cfg.embedder))
        graph = None
        if cfg.graph:
            from flywheel.rag.graph import Graph

            graph = Graph.load(kb_dir / "graph")
        return cls(kb_dir, cfg, index, BM25Retriever.from_persist_dir(str(kb_dir / "bm25")), m["chunks"], graph)

    def embed_query(self, query: str) -> np.ndarray:
        from flywheel.curation.semantic import embed

        return embed([query], self.cfg.embedder, device="cpu")[0]

    def query_vectors(self, query: str, graph: bool) -> np.ndarray:
        """The query's embedding (row 0) and, for the graph, its noun phrases' — one MiniLM call."""
        from flywheel.curation.semantic import embed

        phrases = []
        if graph:
            from flywheel.rag.graph import query_phrases

            phrases = query_phrases(query)
        return embed([query, *phrases], self.cfg.embedder, device="cpu")

    def ranked(self, query: str, mode: str, qvecs: np.ndarray | None = None) -> list[tuple[str, float]]:
        """One retriever's ranking: (chunk id, its score), best first (``qvecs``: ``query_vectors``)."""
        k = min(self.cfg.candidates, self.n)
        if mode == "vector":
            from flywheel.rag.vectors import similarities

            qvec = self.embed_query(query) if qvecs is None else qvecs[0]
            sims = similarities(self, "_matrix", qvec)
            top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
            top = top[np.argsort(-sims[top], kind="stable")]
            return [(self._ids[i], float(sims[i])) for i in top]
        if mode == "bm25":
            return [(r.node.node_id, float(r.score)) for r in self.bm25.retrieve(query) if r.score and r.score > 0]
        if mode == "graph":
            if self.graph is None:
                raise DataError(f"{self.dir}: built without the graph (graph: false); rebuild it with graph: true")
            c = self.cfg
            qvecs = self.query_vectors(query, graph=True) if qvecs is None else qvecs
            return self.graph.rank(qvecs, c.graph_seeds, c.graph_hops, c.graph_min_sim, c.pagerank_weight, k)
        raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")

    def weights(self, mode: str) -> dict[str, float]:
        """Each retriever's share of a fused mode's score."""
        b, g = self.cfg.bm25_weight, self.cfg.graph_weight
        if mode == "hybrid":
            return {"vector": 1.0 - b, "bm25": b}
        if mode == "hybrid_graph":
            return {"vector": (1.0 - b) * (1 - g), "bm25": b * (1 - g), "graph": g}
        return {mode: 1.0}

    def search(self, query: str, mode: str = "hybrid", k: int | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``query``: one retriever's ranking (vector, bm25, graph), or several fused by
        weighted reciprocal rank — score = sum over retrievers of weight / (rrf_k + rank); hybrid: vector + BM25
        (weights 1 - bm25_weight, bm25_weight); hybrid_graph: the same x (1 - graph_weight), + the graph's."""
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        if not isinstance(query, str) or not query.strip():
            raise DataError("query: empty")
        query = query[: self.cfg.max_query_chars]
        k = k or self.cfg.top_k
        weight = self.weights(mode)
        qvecs = self.query_vectors(query, "graph" in weight) if {"vector", "graph"} & set(weight) else None
        fused: dict[str, Hit] = {}
        for m, w in weight.items():
            for rank, (nid, score) in enumerate(self.ranked(query, m, qvecs), start=1):
                node = self.nodes[nid]
                hit = fused.setdefault(nid, Hit(nid, node.metadata.get("source", ""), node.text, 0.0))
                hit.ranks[m] = rank
                hit.score += w / (self.cfg.rrf_k + rank) if len(weight) > 1 else score
        return sorted(fused.values(), key=lambda h: -h.score)[:k]


MODES = ("vector", "bm25", "graph", "hybrid", "hybrid_graph")


def hits_json(hits: list[Hit]) -> list[dict]:
    return [asdict(h) | {"score": round(h.score, 5)} for h in hits]
