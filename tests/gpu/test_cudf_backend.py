"""``backend: cudf`` on a GPU machine with the gpu extra (marker ``gpu``; `make test` does not run it):
cuDF's MinHash equals the CPU murmur3 kernel value for value, and a cudf curation removes exactly what
the pandas one removes."""

import numpy as np
import pytest

from examples.near_duplicates import near_duplicate_corpus
from flywheel.curation.config import CurationConfig, FuzzyDedupConfig
from flywheel.curation.fuzzy import resolved, signatures_with
from flywheel.curation.pipeline import curate

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_cudf():
    pytest.importorskip("cudf")


def test_cudf_minhash_equals_the_cpu_kernel():
    df, _ = near_duplicate_corpus(200, seed=3)
    texts = df.text.tolist() + ["", "short", "héllo wörld ünïcode 😀 and some more text to hash"]
    p = resolved(FuzzyDedupConfig())
    np.testing.assert_array_equal(signatures_with(texts, {**p, "backend": "cudf"}), signatures_with(texts, p))


def test_cudf_curation_matches_pandas():
    df, _ = near_duplicate_corpus(150, seed=4)
    df = df.assign(source="gen", page=0, kind="text", meta="{}")
    rows = {}
    for backend in ("pandas", "cudf"):
        kept, removed, stats = curate(df, CurationConfig(backend=backend, fuzzy_dedup={"enabled": True}))
        rows[backend] = (
            sorted(kept.id),
            sorted(zip(removed.id, removed.reason, removed.duplicate_of)),
            stats["summary"],
        )
    assert rows["cudf"] == rows["pandas"] and rows["pandas"][2]["dropped_fuzzy_duplicate"] > 10
