"""A labelled quality corpus: coherent expository prose ("High") and web junk that passes heuristic
filters ("Low"), for training and testing a quality classifier.

High: paragraphs of grammatical sentences about several everyday topics (fraud operations,
gardening, cycling, cooking, local history), built from sentence frames with varied slots.
Low: what heuristic filters let through because its statistics look like text — keyword-stuffed
SEO copy, word salad (real words in random order), clickbait and ad copy, auto-generated
listing spam. Each kind is written in ordinary sentences with ordinary punctuation.

    rows = quality_corpus(400, seed=0)          # [{"id", "text", "label"}], half High, half Low
    python -m examples.quality --out /tmp/quality.jsonl --n 400
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

TOPICS = {
    "fraud": {
        "who": ["the analyst", "the review team", "a senior investigator", "the payments desk", "the card issuer"],
        "act": ["checks", "compares", "documents", "escalates", "reviews"],
        "what": [
            "the disputed payment",
            "each cross-border transfer",
            "the merchant's refund history",
            "the account's recent activity",
            "a chargeback claim",
        ],
        "why": [
            "before the refund is approved",
            "because the amount is unusually large",
            "so that the customer is not charged twice",
            "when the velocity rule fires",
            "to decide whether the case needs a second opinion",
        ],
    },
    "garden": {
        "who": ["an experienced gardener", "the allotment society", "a careful grower", "my neighbour", "the nursery"],
        "act": ["waters", "prunes", "mulches", "transplants", "protects"],
        "what": [
            "the young tomato plants",
            "the raspberry canes",
            "the bed of winter onions",
            "the seedlings in the cold frame",
            "the old apple tree",
        ],
        "why": [
            "early in the morning, before the sun is strong",
            "after the last frost has passed",
            "so that the roots stay cool in July",
            "because the soil dries out quickly on the slope",
            "to keep slugs away from the leaves",
        ],
    },
    "cycling": {
        "who": ["a commuter", "the local cycling club", "the mechanic at the shop", "a touring rider", "the coach"],
        "act": ["adjusts", "cleans", "replaces", "inspects", "lubricates"],
        "what": [
            "the chain and the rear derailleur",
            "the worn brake pads",
            "the tyre pressure",
            "the bearings of the front hub",
            "the saddle height",
        ],
        "why": [
            "before a long ride in the hills",
            "after every wet journey to work",
            "because a loose part can cause a fall",
            "so that the gears shift cleanly",
            "when the bike starts to make a clicking noise",
        ],
    },
    "cooking": {
        "who": ["the cook", "a patient baker", "my grandmother", "the kitchen team", "a beginner"],
        "act": ["stirs", "seasons", "kneads", "simmers", "tastes"],
        "what": [
            "the onion and garlic base",
            "the bread dough",
            "the tomato sauce",
            "a pot of lentil soup",
            "the rice for the evening meal",
        ],
        "why": [
            "slowly over a low heat",
            "until the texture becomes smooth and elastic",
            "because salt added late tastes sharper",
            "so that nothing sticks to the bottom of the pan",
            "before serving it to the guests",
        ],
    },
    "history": {
        "who": ["the town archivist", "a local historian", "the museum volunteers", "the parish clerk", "a student"],
        "act": ["catalogues", "transcribes", "restores", "studies", "photographs"],
        "what": [
            "the old market records",
            "letters from the first railway workers",
            "a map of the river crossings",
            "the minutes of the council meetings",
            "the register of the village school",
        ],
        "why": [
            "so that later readers can search them",
            "because the paper is beginning to fade",
            "to understand how the town grew after 1850",
            "before the collection moves to a new building",
            "when a family asks about its ancestors",
        ],
    },
}
LINKS = [
    "However,",
    "In practice,",
    "For this reason,",
    "Later that week,",
    "As a rule,",
    "Meanwhile,",
    "Usually,",
    "Afterwards,",
]
FOLLOW = [
    "This takes a little longer, but it saves trouble later.",
    "Most of the work is routine and careful.",
    "The notes from last year make the job easier.",
    "Small mistakes at this stage are costly to fix.",
    "It is a habit that beginners often skip.",
    "Nobody expects it to be finished in one day.",
]

SEO_KW = [
    "cheap flights",
    "best price",
    "buy now",
    "free shipping",
    "discount code",
    "top deals",
    "online store",
    "credit card offer",
    "fast loans",
    "weight loss",
    "casino bonus",
    "crypto profit",
]
CLICK = [
    "You will not believe what happened next.",
    "Click here to find out more.",
    "Doctors hate this one simple trick.",
    "Limited offer, act now before it is gone.",
    "This changed everything for me.",
    "Share this with your friends today.",
    "Sign up now and win a free prize.",
    "Only a few hours left to claim your reward.",
]
SALAD = (
    "river invoice green quietly merchant seven bicycle policy onion theory border rapidly window archive "
    "yellow payment garden monday velocity tomato ancient refund spoon network chapter audit"
).split()


def _high(rng) -> str:
    topic = TOPICS[str(rng.choice(list(TOPICS)))]
    n = int(rng.integers(3, 6))
    # no slot value twice in one document: real prose does not repeat its phrases
    who, act, what, why = (rng.permutation(topic[k])[:n] for k in ("who", "act", "what", "why"))
    sentences = []
    for k in range(n):
        s = f"{who[k]} {act[k]} {what[k]} {why[k]}."
        s = s[0].upper() + s[1:]
        if k and rng.random() < 0.35:
            s = f"{rng.choice(LINKS)} {s[0].lower()}{s[1:]}"
        sentences.append(s)
        if rng.random() < 0.25:
            sentences.append(str(FOLLOW[k]))
    return " ".join(sentences)


def _seo(rng) -> str:
    kws = rng.choice(SEO_KW, size=3, replace=False)
    lines = []
    for _ in range(int(rng.integers(4, 9))):
        a, b = rng.choice(kws, size=2)
        lines.append(
            str(
                rng.choice(
                    [
                        f"Best {a} and {b} in 2026.",
                        f"Get {a} today with {b}.",
                        f"Looking for {a}? We have the best {b}.",
                        f"{a.capitalize()} {b} {a} online.",
                        f"Top {a} for {b}, compare {a} now.",
                    ]
                )
            )
        )
    return " ".join(lines)


def _salad(rng) -> str:
    sentences = []
    for _ in range(int(rng.integers(3, 7))):
        words = [str(w) for w in rng.choice(SALAD, size=int(rng.integers(6, 14)))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def _clickbait(rng) -> str:
    picks = rng.choice(CLICK, size=int(rng.integers(3, 6)), replace=False)
    return f"{rng.choice(SEO_KW).capitalize()} secrets revealed. " + " ".join(str(p) for p in picks)


def _listing(rng) -> str:
    item = rng.choice(["apartment", "used car", "phone case", "garden hose", "laptop bag"])
    parts = [f"{item.capitalize()} for sale, item number {int(rng.integers(10_000, 99_999))}."]
    for _ in range(int(rng.integers(3, 7))):
        parts.append(
            str(
                rng.choice(
                    [
                        f"Great {item}, great price, contact seller.",
                        f"Condition new, {item} available now.",
                        "Message me for details, no time wasters please.",
                        f"Similar {item} listings, more {item} listings, related searches.",
                    ]
                )
            )
        )
    return " ".join(parts)


LOW = [_seo, _salad, _clickbait, _listing]


def quality_corpus(n: int, seed: int = 0, high_share: float = 0.5) -> list[dict]:
    """``n`` rows ``{"id", "text", "label"}`` ("High"/"Low"), shuffled; ``round(n * high_share)`` are High."""
    rng = np.random.default_rng(seed)
    n_high = int(round(n * high_share))
    rows = [{"text": _high(rng), "label": "High", "kind": "prose"} for _ in range(n_high)]
    for i in range(n - n_high):
        make = LOW[i % len(LOW)]
        rows.append({"text": make(rng), "label": "Low", "kind": make.__name__.lstrip("_")})
    order = rng.permutation(len(rows))
    return [{"id": f"q{seed}-{k:05d}", **rows[i]} for k, i in enumerate(order)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with a.out.open("w") as f:
        for row in quality_corpus(a.n, a.seed):
            f.write(json.dumps(row) + "\n")
    print(a.out)


if __name__ == "__main__":
    main()
