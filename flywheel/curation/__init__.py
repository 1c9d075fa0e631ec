"""Curation: normalisation, heuristic filters, exact dedup, partition-wise on Dask."""
