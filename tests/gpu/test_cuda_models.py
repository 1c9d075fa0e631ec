"""Curation's models on CUDA (marker ``gpu``; `make test` does not run it): MiniLM embeddings and the
quality classifier give on the GPU what they give on the CPU."""

import numpy as np
import pytest
import torch

from examples.quality import quality_corpus
from flywheel.curation.quality import load_classifier, train_classifier
from flywheel.curation.semantic import embed

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_embeddings_on_cuda_match_cpu():
    texts = [r["text"] for r in quality_corpus(64, seed=1)]
    cpu, gpu = embed(texts, device="cpu"), embed(texts, device="cuda")
    assert (np.sum(cpu * gpu, axis=1) > 0.999).all()


def test_quality_classifier_on_cuda_predicts_as_on_cpu(tmp_path):
    train_classifier(quality_corpus(200, seed=0), tmp_path / "clf")
    texts = [r["text"] for r in quality_corpus(100, seed=2)]
    cpu, gpu = load_classifier(tmp_path / "clf", "cpu"), load_classifier(tmp_path / "clf", "cuda")
    np.testing.assert_allclose(gpu.probabilities(texts), cpu.probabilities(texts), atol=1e-3)
