"""Web-like documents with the pathologies heuristic filters look for, in random mixtures.

Prose paragraphs, plus — each with some probability — cookie banners, bullet lists, link farms,
number tables, repeated lines and paragraphs, ellipsis teasers, hashtags, parentheses, very long
tokens, shouting, too-short texts. Used to compare filter decisions with NeMo Curator's and to
measure filter throughput.

    docs = web_like_corpus(2000, seed=0)   # list[str]
"""

from __future__ import annotations

import numpy as np

COMMON = "the be to of and that have with a in is it for on as at by this from or".split()
CONTENT = (
    "analyst fraud payment merchant review ledger policy border velocity account refund dispute card holder "
    "bank transfer risk score model report audit team customer service online store night amount"
).split()
BANNER = [
    "This website uses cookies to improve your experience.",
    "Read our privacy policy and terms of use.",
    "Accept all cookies",
    "Subscribe to our newsletter",
]


def _sentence(rng, words=None):
    k = int(rng.integers(5, 20))
    w = [str(rng.choice(COMMON if rng.random() < 0.45 else CONTENT)) for _ in range(k)]
    return " ".join(w).capitalize() + str(rng.choice([".", ".", ".", "?", "!"]))


def _paragraph(rng):
    return " ".join(_sentence(rng) for _ in range(int(rng.integers(2, 6))))


def web_like_document(rng) -> str:
    parts = [_paragraph(rng) for _ in range(int(rng.integers(1, 6)))]
    r = rng.random
    if r() < 0.15:
        parts += BANNER[: int(rng.integers(1, 5))]
    if r() < 0.12:
        parts.append("\n".join("\u2022 " + _sentence(rng)[:-1] for _ in range(int(rng.integers(3, 12)))))
    if r() < 0.08:
        parts.append(
            " ".join(
                f"https://example.com/{rng.integers(1e6)}/page?id={rng.integers(1e9)}"
                for _ in range(int(rng.integers(3, 30)))
            )
        )
    if r() < 0.08:
        parts.append(
            "\n".join(" ".join(str(rng.integers(0, 10**6)) for _ in range(6)) for _ in range(int(rng.integers(2, 15))))
        )
    if r() < 0.1:
        line = _sentence(rng)
        parts.append("\n".join([line] * int(rng.integers(2, 12))))
    if r() < 0.06:
        parts = parts + parts[: int(rng.integers(1, len(parts) + 1))]
    if r() < 0.08:
        parts.append("\n".join(_sentence(rng)[:-1] + "..." for _ in range(int(rng.integers(2, 8)))))
    if r() < 0.05:
        parts.append(" ".join("#" + str(rng.choice(CONTENT)) for _ in range(int(rng.integers(3, 40)))))
    if r() < 0.05:
        parts.append(" ".join(f"({rng.choice(CONTENT)})" for _ in range(int(rng.integers(5, 60)))))
    if r() < 0.03:
        parts.append("x" * int(rng.integers(500, 2000)))
    if r() < 0.05:
        parts = [p.upper() for p in parts]
    if r() < 0.1:
        parts = parts[:1]
        parts[0] = " ".join(parts[0].split()[: int(rng.integers(3, 60))])
    if r() < 0.05:
        parts.append("lorem ipsum dolor sit amet")
    sep = "\n\n" if r() < 0.6 else "\n"
    return sep.join(parts)


def web_like_corpus(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [web_like_document(rng) for _ in range(n)]
