"""A corpus with planted near-duplicates and its ground truth, for fuzzy dedup tests and benchmarks.

Each base document is ~200 words of random sentences over a Zipf-distributed vocabulary. Copies
are planted with the edits near-duplicates have in the wild: a few words replaced, two sentences
swapped, a boilerplate footer appended, the end cut, whitespace and case noise. Unrelated
documents share common words but almost no 24-character shingles.

    df, clusters = near_duplicate_corpus(n_base=200, seed=0)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FOOTERS = [
    "Subscribe to our newsletter for weekly updates.",
    "All rights reserved. Terms of use apply.",
    "Share this article with your colleagues.",
]


def _vocab(rng, size=3000):
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, rng.integers(2, 10))) for _ in range(size)]


def _document(rng, vocab, words=200):
    p = 1 / np.arange(1, len(vocab) + 1)
    sentences, n = [], 0
    while n < words:
        k = int(rng.integers(6, 18))
        w = list(rng.choice(vocab, k, p=p / p.sum()))
        sentences.append(" ".join(w).capitalize() + ".")
        n += k
    return sentences


def _variant(rng, sentences, vocab, kind):
    s = list(sentences)
    if kind == "edit":  # replace ~3 % of the words
        words = " ".join(s).split(" ")
        for i in rng.choice(len(words), max(1, len(words) // 33), replace=False):
            words[i] = str(rng.choice(vocab))
        return " ".join(words)
    if kind == "swap":  # two sentences trade places
        i, j = rng.choice(len(s), 2, replace=False)
        s[i], s[j] = s[j], s[i]
        return " ".join(s)
    if kind == "footer":
        return " ".join(s) + " " + str(rng.choice(FOOTERS))
    if kind == "cut":  # the last sentence lost
        return " ".join(s[:-1])
    if kind == "noise":  # doubled spaces and a capitalised sentence
        s[0] = s[0].upper()
        return "  ".join(s)
    raise ValueError(kind)


def near_duplicate_corpus(n_base: int = 200, copies: tuple[int, int] = (0, 3), seed: int = 0):
    """(DataFrame id/text/cluster, {cluster: [ids]}): every base document plus 0-3 planted variants."""
    rng = np.random.default_rng(seed)
    vocab = _vocab(rng)
    rows = []
    for c in range(n_base):
        sentences = _document(rng, vocab)
        rows.append({"id": f"d{c:05d}-0", "text": " ".join(sentences), "cluster": c})
        for v in range(int(rng.integers(copies[0], copies[1] + 1))):
            kind = str(rng.choice(["edit", "swap", "footer", "cut", "noise"]))
            rows.append(
                {
                    "id": f"d{c:05d}-{v + 1}",
                    "text": _variant(rng, sentences, vocab, kind),
                    "cluster": c,
                    "variant": kind,
                }
            )
    df = pd.DataFrame(rows).sample(frac=1, random_state=seed).reset_index(drop=True)
    return df, df.groupby("cluster")["id"].apply(list).to_dict()
