"""The topic rail: a request is on topic when its MiniLM embedding is close enough to one of the workload's
exemplars (``topic.exemplars``; cosine ≥ ``topic.threshold``), otherwise it gets ``topic.refusal``.

Exemplars are a few requests of each kind the workload serves (a transaction to triage, a question about a
card); they are embedded once. The threshold is measured in ``bench/guard_eval.py`` on the workload's traffic
and on off-topic requests.
"""

from __future__ import annotations

import numpy as np


class TopicRail:
    def __init__(self, cfg):
        self.cfg = cfg
        self._exemplars = None

    def _vectors(self, texts: list[str]) -> np.ndarray:
        from flywheel.curation.semantic import embed

        return embed(texts, device="cpu")

    def similarity(self, text: str) -> float:
        if self._exemplars is None:
            self._exemplars = self._vectors(list(self.cfg.exemplars))
        return float((self._exemplars @ self._vectors([text])[0]).max())

    def on_topic(self, text: str) -> tuple[bool, float]:
        sim = self.similarity(text)
        return sim >= self.cfg.threshold, sim
