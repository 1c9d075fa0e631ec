"""Labelled pairs for the response cache: paraphrases (the same request in other words: a hit is right), near
misses (one fact differs: a hit would serve a wrong answer) and different requests (another question about
the same facts, which only the similarity can tell apart). Half of the paraphrases and near misses are fraud
transactions (the workload's own traffic, reworded, or with one field changed: amount, time, merchant, city,
velocity, account age), half card-service questions from templates with slots (card digits, amounts, dates,
names). Generated from templates written for this project, with a seed: the validation split (seed 1)
chooses the threshold, the test split (seed 2) reports it.

    python -m examples.cache_pairs --n 60 --seed 2 --out pairs.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random

from examples.fraud import COUNTRIES, _transaction

SERVICE = [
    # (template A, template B: the same request reworded), slots filled from the same values
    ("What is the spending limit on my card ending {d4}?", "How much can I spend with the card that ends in {d4}?"),
    ("Please block my card ending {d4}, I lost it in {city}.", "I lost my card ({d4}) in {city}, can you block it?"),
    ("Why was my payment of ${amt} at {shop} declined?", "My ${amt} payment to {shop} got declined, why?"),
    ("Can I raise my daily ATM limit to ${amt}?", "I'd like my daily ATM withdrawal limit set to ${amt}, is that possible?"),  # noqa: E501
    ("I don't recognise a charge of ${amt} from {shop} on {date}.", "There is a ${amt} charge from {shop} dated {date} that I didn't make."),  # noqa: E501
    ("When will my replacement card for account {d6} arrive?", "How long until the new card for account {d6} gets here?"),  # noqa: E501
    ("Is a transfer of ${amt} to {name} safe to send today?", "Should I go ahead and send {name} ${amt} today, is it safe?"),  # noqa: E501
    ("Dispute the {shop} transaction from {date} please.", "I want to dispute what {shop} charged me on {date}."),
]  # fmt: skip
SHOPS = ["TechHaven", "FreshMart", "SkyWays Airlines", "QuickFuel", "PharmaPlus", "StyleHub", "CoinVault"]
NAMES = ["Maria Lopez", "John Carter", "Aiko Tanaka", "Omar Haddad", "Lena Fischer"]
CITIES = ["Lisbon", "Chicago", "Nairobi", "Osaka", "Berlin", "Lagos"]


def _slots(rng: random.Random) -> dict:
    return {
        "d4": f"{rng.randint(1000, 9999)}",
        "d6": f"{rng.randint(100000, 999999)}",
        "amt": f"{rng.choice([45, 120, 480, 950, 1240, 2500, 4800])}",
        "shop": rng.choice(SHOPS),
        "date": f"{rng.choice(['March', 'June', 'October'])} {rng.randint(1, 28)}",
        "name": rng.choice(NAMES),
        "city": rng.choice(CITIES),
    }


def _change_one(rng: random.Random, slots: dict, used: str) -> dict:
    keys = [k for k in slots if "{" + k + "}" in used]
    k = rng.choice(keys)
    new = dict(slots)
    while new[k] == slots[k]:
        new[k] = _slots(rng)[k]
    return new


def _reworded(t) -> str:
    """The same transaction in other words (every fact kept)."""
    where = f"{COUNTRIES[t.merchant_country]} ({t.merchant_country})"
    return (
        f"{t.channel} transaction: {t.merchant}, a {t.category} merchant in {where}, charged ${t.amount:,.2f} at "
        f"{t.hour:02d}:{t.minute:02d} local time. The card was issued in {t.card_country}; "
        f"{t.velocity} transaction{'s' if t.velocity != 1 else ''} on it in the last hour; the account is "
        f"{t.account_age_days} days old."
    )


def _one_field(rng: random.Random, t):
    field = rng.choice(["amount", "hour", "merchant_country", "velocity", "account_age_days", "minute"])
    if field == "amount":
        return dataclasses.replace(t, amount=round(t.amount * rng.choice([10, 0.1, 2]), 2) or 1.0)
    if field == "hour":
        return dataclasses.replace(t, hour=(t.hour + rng.choice([12, 3, -5])) % 24)
    if field == "minute":
        return dataclasses.replace(t, minute=(t.minute + rng.choice([7, 30])) % 60)
    if field == "merchant_country":
        return dataclasses.replace(t, merchant_country=rng.choice([c for c in COUNTRIES if c != t.merchant_country]))
    if field == "velocity":
        return dataclasses.replace(t, velocity=t.velocity + rng.choice([3, 5]))
    return dataclasses.replace(t, account_age_days=max(1, t.account_age_days // 10))


def pairs(n: int, seed: int, different: bool = False) -> list[dict]:
    """``n`` paraphrase pairs and ``n`` near-miss pairs, half of each fraud transactions; with ``different``, also
    ``n`` pairs of two different card-service questions with the same slots."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = _transaction(rng)
        if i % 2 == 0:
            out.append({"a": t.describe(), "b": _reworded(t), "label": "paraphrase", "kind": "fraud"})
            out.append({"a": t.describe(), "b": _one_field(rng, t).describe(), "label": "near_miss", "kind": "fraud"})
        else:
            a, b = rng.choice(SERVICE)
            s = _slots(rng)
            out.append({"a": a.format(**s), "b": b.format(**s), "label": "paraphrase", "kind": "service"})
            out.append(
                {"a": a.format(**s), "b": a.format(**_change_one(rng, s, a)), "label": "near_miss", "kind": "service"}
            )
    for _ in range(n if different else 0):
        (a, _b), (c, d) = rng.sample(SERVICE, 2)
        s = _slots(rng)
        out.append({"a": a.format(**s), "b": rng.choice([c, d]).format(**s), "label": "different", "kind": "service"})
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.out, "w") as f:
        for p in pairs(a.n, a.seed):
            f.write(json.dumps(p) + "\n")
