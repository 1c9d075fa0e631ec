"""Similarity of a query (or a few) to a matrix of stored vectors, on the embedder's thread pool."""

from __future__ import annotations

import numpy as np


def similarities(owner, attr: str, q: np.ndarray) -> np.ndarray:
    """``getattr(owner, attr) @ q`` on torch's thread pool. Measured: numpy's BLAS threads keep spinning after a
    product and slowed the next MiniLM call of the query from 4 ms to 20-60 ms on two cores; torch shares the
    embedder's pool. The tensor is made once per owner (``_tensor`` + attr)."""
    import torch

    key = f"_tensor{attr}"
    t = getattr(owner, key, None)
    if t is None:
        t = torch.from_numpy(np.ascontiguousarray(getattr(owner, attr), dtype=np.float32))
        setattr(owner, key, t)
    with torch.inference_mode():
        return (t @ torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32).T)).numpy()
