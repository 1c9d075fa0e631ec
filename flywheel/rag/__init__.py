"""The knowledge base (issue 16): chunks of the curated documents in a llama-index vector index and a BM25 index,
queried by reciprocal-rank fusion, evaluated on hand-checked and generated judgments."""
