"""The response cache's trained similarity model: is request B the same request as A (a paraphrase, whose cached
answer is right) or a near miss (one fact differs, the answer may be the opposite)?

A generic embedding cannot tell "$480 at TechHaven at 14:15" from "$4,800 at TechHaven at 02:15"; the guard in
``flywheel.serving.cache`` refuses any hit whose facts differ, and this model learns the decision from pairs
instead: a logistic regression over a handful of pair features — MiniLM cosine, whether the numbers, times and
names agree (and by how much they differ), word overlap, length ratio. It is small on purpose (nine weights,
microseconds per candidate) and trained from pairs of the workload's own traffic:

- from each logged request: a *paraphrase* (its clauses reordered, common words swapped for synonyms) and a
  *near miss* (one number, time or name changed), generated without a model (:func:`pairs_from_traffic`);
- from corrections: two logged requests that look alike (cosine ≥ 0.9) but whose corrected or approved answers
  differ are near misses mined from real traffic;
- plus any labelled pairs given (``examples/cache_pairs.py`` writes template pairs).

Its threshold (a probability) is chosen on a validation set: the most paraphrase hits with at most 1 % of near
misses and 1 % of different requests hitting (``bench/cache_pairs.py`` reports the test split beside plain
cosine and the guard). ``flywheel cache-train`` writes ``<home>/models/cache-similarity/<workload>.json``;
``cache.matcher: model`` uses it.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np

from flywheel.serving.facts import facts

FEATURES = [
    "cosine", "same_facts", "facts_jaccard", "facts_differing", "numbers_equal", "times_equal", "names_equal",
    "word_jaccard", "length_ratio",
]  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+")


def _minilm(texts: list[str]) -> np.ndarray:
    from flywheel.curation.semantic import embed

    return embed(texts, device="cpu")


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def pair_features(a: str, b: str, cosine: float) -> np.ndarray:
    fa, fb = facts(a), facts(b)

    def kind(fs, k):
        return {f for f in fs if f[0] == k}

    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return np.array(
        [
            cosine,
            float(fa == fb),
            _jaccard(fa, fb),
            float(len(fa ^ fb)),
            float(kind(fa, "n") == kind(fb, "n")),
            float(kind(fa, "t") == kind(fb, "t")),
            float(kind(fa, "e") == kind(fb, "e")),
            _jaccard(wa, wb),
            min(len(a), len(b)) / max(len(a), len(b), 1),
        ]
    )


class SimilarityModel:
    """``probability(a, b, cosine)``: how likely B is a paraphrase of A; a hit needs ``>= threshold``."""

    def __init__(self, coef, intercept: float, threshold: float, meta: dict | None = None):
        self.coef = np.asarray(coef, np.float64)
        self.intercept = float(intercept)
        self.threshold = float(threshold)
        self.meta = meta or {}

    def probability(self, a: str, b: str, cosine: float) -> float:
        z = float(pair_features(a, b, cosine) @ self.coef + self.intercept)
        return 1.0 / (1.0 + np.exp(-z))

    @classmethod
    def load(cls, path: str | Path) -> SimilarityModel:
        d = json.loads(Path(path).expanduser().read_text())
        if d.get("features") != FEATURES:
            raise ValueError(f"cache.model: {path} was trained on other features ({d.get('features')})")
        return cls(d["coef"], d["intercept"], d["threshold"], d)

    def save(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"features": FEATURES, "coef": self.coef.tolist(), "intercept": self.intercept}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.meta | body | {"threshold": self.threshold}, indent=2))
        tmp.replace(path)
        return path


def _cosines(pairs: list[dict], embed) -> np.ndarray:
    ea = np.asarray(embed([p["a"] for p in pairs]))
    eb = np.asarray(embed([p["b"] for p in pairs]))
    return (ea * eb).sum(axis=1)


def hit_rates(pairs: list[dict], hits: list[bool]) -> dict[str, float]:
    out = {}
    for label in sorted({p["label"] for p in pairs}):
        got = [h for h, p in zip(hits, pairs, strict=True) if p["label"] == label]
        out[label] = sum(got) / len(got)
    return out


def train(train_pairs: list[dict], val_pairs: list[dict], embed=None, max_false: float = 0.01) -> SimilarityModel:
    """Fit on ``train_pairs`` (``a``, ``b``, ``label`` paraphrase | near_miss | different); the threshold is the one
    with the most paraphrase hits on ``val_pairs`` while near misses and different requests hit ≤ ``max_false``."""
    from sklearn.linear_model import LogisticRegression

    embed = embed or _minilm
    labels = {p["label"] for p in train_pairs}
    if "paraphrase" not in labels or len(labels) < 2:
        raise ValueError("pairs: training needs paraphrases and near misses (or different requests)")
    x = np.stack([pair_features(p["a"], p["b"], c) for p, c in zip(train_pairs, _cosines(train_pairs, embed))])
    y = np.array([p["label"] == "paraphrase" for p in train_pairs])
    lr = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(x, y)
    model = SimilarityModel(lr.coef_[0], lr.intercept_[0], 0.5)
    vc = _cosines(val_pairs, embed)
    probs = np.array([model.probability(p["a"], p["b"], c) for p, c in zip(val_pairs, vc)])
    best = None
    for t in np.unique(np.round(probs, 4)):
        r = hit_rates(val_pairs, list(probs >= t))
        wrong = max(v for k, v in r.items() if k != "paraphrase")
        if wrong <= max_false and (best is None or r["paraphrase"] > best[1]):
            best = (float(t), r["paraphrase"], r)
    if best is None:
        raise ValueError("validation: no threshold keeps near misses under max_false")
    model.threshold = best[0]
    model.meta = {
        "train_pairs": len(train_pairs),
        "validation_pairs": len(val_pairs),
        "validation_hit_rates": best[2],
        "max_false": max_false,
    }
    return model


# ---------------------------------------------------------------- pairs from the workload's own traffic
SYNONYMS = [
    ("purchase", "transaction"), ("past", "last"), ("local time", "local"), ("account opened", "account created"),
    ("card issued in", "card from"), ("transactions", "payments"), ("days ago", "days back"), ("Why", "How come"),
    ("my card", "the card"), ("please", "kindly"),
]  # fmt: skip
_FACT = re.compile(r"\$?\d[\d,]*(?:\.\d+)?|\b(?:[01]?\d|2[0-3]):[0-5]\d\b|\b[A-Z][a-zA-Z]+\b")


def paraphrase(text: str, rng: random.Random) -> str:
    """The same request in other words: clauses separated by ';' reordered, common words swapped."""
    clauses = [c.strip() for c in text.rstrip(".").split(";")]
    if len(clauses) > 2:
        head, rest = clauses[0], clauses[1:]
        rng.shuffle(rest)
        clauses = [head, *rest]
    out = "; ".join(clauses) + ("." if text.endswith(".") else "")
    for a, b in rng.sample(SYNONYMS, k=len(SYNONYMS)):
        if a in out:
            out = out.replace(a, b, 1)
    return out if out != text else text.replace(" ", "  ", 1)


def near_miss(text: str, rng: random.Random, names: list[str]) -> str | None:
    """One fact changed: an amount or count (x10, +3), a time (+12 h), a capitalised name (another seen name)."""
    found = list(_FACT.finditer(text))
    if not found:
        return None
    m = rng.choice(found)
    tok = m.group()
    if ":" in tok:
        h, mi = tok.split(":")
        new = f"{(int(h) + 12) % 24:02d}:{mi}"
    elif tok[0] in "$0123456789":
        digits = tok.lstrip("$").replace(",", "")
        value = float(digits) * 10 if "." in digits else int(digits) + 3
        new = ("$" if tok.startswith("$") else "") + (f"{value:,.2f}" if "." in digits else str(value))
    else:
        others = [n for n in names if n != tok]
        if not others:
            return None
        new = rng.choice(others)
    return text[: m.start()] + new + text[m.end() :]


def pairs_from_traffic(rows: list[dict], seed: int = 0, embed=None, mine_threshold: float = 0.9) -> list[dict]:
    """Labelled pairs from logged interactions (``messages``, ``response``, ``correction``, ``rating``): a
    paraphrase and a near miss of each single-turn request, and near misses mined from corrections."""
    rng = random.Random(seed)
    texts, answers = [], []
    for r in rows:
        users = [m.get("content") or "" for m in r["messages"] if m.get("role") == "user"]
        if len(users) != 1 or any(f.startswith("blocked") for f in r.get("guard_flags") or []):
            continue
        texts.append(users[0])
        good = r.get("correction") or (r["response"] if r.get("rating") == 1 else None)
        answers.append(good.split(":", 1)[0].strip().upper() if good else None)
    names = sorted({m.group() for t in texts for m in re.finditer(r"\b[A-Z][a-zA-Z]{3,}\b", t)})
    out = []
    for t in dict.fromkeys(texts):
        out.append({"a": t, "b": paraphrase(t, rng), "label": "paraphrase", "kind": "traffic"})
        nm = near_miss(t, rng, names)
        if nm and nm != t:
            out.append({"a": t, "b": nm, "label": "near_miss", "kind": "traffic"})
    judged = [(t, a) for t, a in zip(texts, answers) if a]
    if len(judged) > 1:
        embed = embed or _minilm
        vec = np.asarray(embed([t for t, _ in judged]))
        sims = vec @ vec.T
        for i in range(len(judged)):
            for j in range(i + 1, len(judged)):
                if sims[i, j] >= mine_threshold and judged[i][1] != judged[j][1] and judged[i][0] != judged[j][0]:
                    out.append({"a": judged[i][0], "b": judged[j][0], "label": "near_miss", "kind": "corrections"})
    return out
