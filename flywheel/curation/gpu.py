"""The GPU backend of curation (``backend: cudf``, extra ``gpu``): the same steps on a dask-cuda cluster,
with the fuzzy-dedup MinHash computed by cuDF on the GPUs.

- Cluster: ``dask_cuda.LocalCUDACluster`` (one worker process per visible GPU) for the MinHash
  unless ``FLYWHEEL_DASK_ADDRESS`` names a running dask-cuda scheduler; in memory, the per-document
  steps stay on the CPU cluster, while streaming runs each part's whole task (filters and MinHash)
  on the dask-cuda workers, so its Python filters get one process per GPU.
- MinHash: ``cudf.Series.str.minhash(seed, a, b, width)`` on each partition, with NeMo Curator's
  permutations (:func:`flywheel.curation.minhash.curator_permutations`). The CPU backend's
  ``murmur3`` kernel computes the same values (its tests pin it to cuDF's published outputs), so
  a GPU run and a laptop run of one recipe remove the same documents. LSH banding, candidate
  verification and connected components stay as on CPU (they are a small share of the work).
- Embeddings (semantic dedup) and quality classifiers run on CUDA through torch whenever it sees a
  GPU, on either backend.
- The per-document filters (heuristics, language, PII) are Python per document on both backends,
  as NeMo Curator's are.

Everything GPU is imported lazily: without the extra or a GPU the backend stops with a message
naming what is missing.
"""

from __future__ import annotations

import numpy as np

from flywheel.core.errors import ConfigError


def require_gpu() -> None:
    """Raise a ConfigError naming what ``backend: cudf`` lacks here (cuDF, dask-cuda, a CUDA device)."""
    missing = []
    for module, package in (("cudf", "cudf-cu12"), ("dask_cuda", "dask-cuda")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
        except Exception as e:  # noqa: BLE001 - cuDF raises its own errors when the driver/GPU is absent
            raise ConfigError(f"backend: cudf: importing {module} failed ({type(e).__name__}: {e})") from None
    if missing:
        raise ConfigError(
            f"backend: cudf needs {', '.join(missing)} (pip install 'flywheel[gpu]' on a machine with "
            "an NVIDIA GPU); backend: pandas runs the same steps on CPU"
        )
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("backend: cudf: no CUDA device visible to torch/cuDF on this machine")


def cudf_signatures(texts: list[str], p: dict) -> np.ndarray:
    """(documents, bands x rows) uint32 MinHash signatures computed by cuDF on the GPU."""
    import cudf

    from flywheel.curation.minhash import curator_permutations

    k = p["bands"] * p["rows"]
    if not texts:
        return np.empty((0, k), np.uint32)
    a, b, seed = curator_permutations(k, p["seed"])
    series = cudf.Series([t if isinstance(t, str) else "" for t in texts], dtype="str")
    sig = series.str.minhash(seed, a=cudf.Series(a, dtype="uint32"), b=cudf.Series(b, dtype="uint32"), width=p["ngram"])
    return np.asarray(sig.list.leaves.to_numpy(), dtype=np.uint32).reshape(len(texts), k)
