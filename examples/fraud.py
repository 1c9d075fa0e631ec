"""The bundled fraud-triage workload: realistic card transactions with a hidden labelling rule.

Mirrors the reference platform's fraud-detection case: the model reads one transaction
description and answers ``FRAUD: <reason>`` or ``LEGIT: <reason>`` on one line.

The hidden rule (what the model has to learn; the base model does not know it):

    FRAUD if  the purchase is cross-border (card country != merchant country) and amount >= $1,000
          or  velocity (transactions in the past hour) >= 5
          or  hour in 00..04 and category in {electronics, gift cards, crypto}
    else LEGIT

(account age and channel are in every description too: real records carry fields that do not
decide the label.)

The description carries what a fraud system's enrichment step adds (``cross-border``), as the
reference case's transaction records do; the thresholds are the policy manual's.

then ``noise`` of the labels are flipped, as real chargeback labels are noisy.

    python -m examples.fraud --out data/ --n-train 600 --n-test 120
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

CATEGORIES = {
    "grocery": ["FreshMart", "Green Basket", "Corner Grocer", "Daily Foods"],
    "fuel": ["Shell", "QuickFuel", "RoadStop"],
    "restaurants": ["Luigi's Trattoria", "Sushi Zen", "The Burger Joint", "Cafe Lumiere"],
    "electronics": ["TechHaven", "GadgetWorld", "Circuit City Online", "PixelPro"],
    "gift cards": ["GiftCardDepot", "CardMall", "eGift Express"],
    "crypto": ["CoinSwift", "BitHarbor Exchange"],
    "travel": ["SkyWays Airlines", "StayWell Hotels", "RailEurope"],
    "clothing": ["Urban Threads", "Nordic Wear", "DenimCo"],
    "pharmacy": ["HealthPlus Pharmacy", "CareDrug"],
}
RISKY = {"electronics", "gift cards", "crypto"}
COUNTRIES = {
    "US": "New York",
    "GB": "London",
    "DE": "Berlin",
    "FR": "Paris",
    "NG": "Lagos",
    "BR": "Sao Paulo",
    "IN": "Mumbai",
    "RO": "Bucharest",
    "CA": "Toronto",
    "JP": "Tokyo",
}
HOME_COUNTRIES = ["US", "GB", "DE", "FR", "CA"]
LABELS = ["FRAUD", "LEGIT"]


@dataclass
class Transaction:
    amount: float
    category: str
    merchant: str
    card_country: str
    merchant_country: str
    hour: int
    minute: int
    velocity: int
    account_age_days: int
    channel: str

    def describe(self) -> str:
        where = f"{COUNTRIES[self.merchant_country]}, {self.merchant_country}"
        border = " (cross-border)" if self.card_country != self.merchant_country else ""
        return (
            f"{self.channel} purchase of ${self.amount:,.2f} at {self.merchant} ({self.category}) in {where}; "
            f"card issued in {self.card_country}{border}; {self.hour:02d}:{self.minute:02d} local time; "
            f"{self.velocity} transaction{'s' if self.velocity != 1 else ''} in the past hour; "
            f"account opened {self.account_age_days} days ago."
        )

    def rule(self) -> tuple[str, str]:
        """The hidden rule: (label, one-line reason)."""
        label, reason, _ = self.decide()
        return label, reason

    def decide(self) -> tuple[str, str, str]:
        """(label, one-line reason, name of the rule that fired: cross_border | velocity | night_risky | none)."""
        if self.card_country != self.merchant_country and self.amount >= 1000:
            return "FRAUD", f"cross-border ${self.amount:,.0f}", "cross_border"
        if self.velocity >= 5:
            return "FRAUD", f"{self.velocity} transactions in one hour", "velocity"
        if self.hour <= 4 and self.category in RISKY:
            return "FRAUD", f"{self.category} at {self.hour:02d}:{self.minute:02d}", "night_risky"
        return "LEGIT", "no fraud rule applies", "none"


def _transaction(rng: random.Random) -> Transaction:
    category = rng.choice(list(CATEGORIES))
    card = rng.choice(HOME_COUNTRIES)
    abroad = rng.random() < 0.45
    merchant_country = rng.choice([c for c in COUNTRIES if c != card]) if abroad else card
    # Amounts are log-normal per category: groceries are small, travel and electronics large.
    scale = {
        "grocery": 60,
        "fuel": 50,
        "restaurants": 70,
        "pharmacy": 40,
        "clothing": 120,
        "electronics": 600,
        "gift cards": 300,
        "crypto": 900,
        "travel": 700,
    }[category]
    amount = round(min(rng.lognormvariate(0, 0.8) * scale, 9_000), 2)
    night = rng.random() < 0.3
    hour = rng.randint(0, 4) if night else rng.randint(6, 23)
    velocity = rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 6, 8]) if rng.random() < 0.35 else rng.randint(1, 2)
    age = rng.randint(1, 14) if rng.random() < 0.25 else rng.randint(30, 3650)
    channel = rng.choice(["Card-present", "Online", "Contactless", "Card-not-present"])
    return Transaction(
        amount,
        category,
        rng.choice(CATEGORIES[category]),
        card,
        merchant_country,
        hour,
        rng.randint(0, 59),
        velocity,
        age,
        channel,
    )


def generate(n: int, seed: int = 0, noise: float = 0.03, prefix: str = "txn", fraud_share: float = 0.45) -> list[dict]:
    """n labelled records; classes are sampled to ``fraud_share`` (real fraud is rarer, but
    training and test sets are balanced so accuracy is not won by always answering LEGIT)."""
    rng = random.Random(seed)
    quota = {"FRAUD": round(n * fraud_share)}
    quota["LEGIT"] = n - quota["FRAUD"]
    rows = []
    while len(rows) < n:
        t = _transaction(rng)
        label, reason, rule = t.decide()
        if quota[label] == 0:
            continue
        quota[label] -= 1
        i = len(rows)
        true_label = label
        if rng.random() < noise:
            label = "LEGIT" if label == "FRAUD" else "FRAUD"
            reason = "analyst override after review"
        rows.append(
            {
                "id": f"{prefix}-{seed}-{i:06d}",
                "text": t.describe(),
                "label": label,
                "answer": f"{label}: {reason}",
                "rule_label": true_label,
                "rule": rule,  # which rule decided it: the evaluation slices by it
            }
        )
    rng.shuffle(rows)  # quotas fill unevenly: without this the tail of the list is one class
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n-train", type=int, default=600)
    p.add_argument("--n-test", type=int, default=120)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--noise", type=float, default=0.03)
    a = p.parse_args(argv)
    write_jsonl(generate(a.n_train, a.seed, a.noise, "train"), a.out / "fraud-train.jsonl")
    write_jsonl(generate(a.n_test, a.seed + 1, 0.0, "test"), a.out / "fraud-test.jsonl")


if __name__ == "__main__":
    main()
