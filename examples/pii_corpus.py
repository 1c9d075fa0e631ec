"""Support tickets with seeded personal data of every configured type, and the list of what was seeded.

    df, seeded = pii_corpus(100, seed=0)   # seeded: {row id: {entity: value}}

Card numbers pass the Luhn check and IBANs the ISO 13616 mod-97 check, as real ones do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FIRST = [
    "Maria",
    "James",
    "Aisha",
    "Wei",
    "Olga",
    "Carlos",
    "Fatima",
    "Liam",
    "Sofia",
    "Noah",
    "Emma",
    "Lucas",
    "Hannah",
    "Mateo",
    "Chloe",
    "Daniel",
    "Grace",
    "Samuel",
    "Elena",
    "Thomas",
]
LAST = [
    "Gonzalez",
    "Smith",
    "Khan",
    "Zhang",
    "Ivanova",
    "Silva",
    "Haddad",
    "Murphy",
    "Rossi",
    "Becker",
    "Dubois",
    "Novak",
    "Jensen",
    "Kowalski",
    "Tanaka",
    "Okafor",
    "Larsen",
    "Moreau",
    "Fischer",
    "Brennan",
]
STREETS = ["Baker", "Maple", "Oak", "Harbor", "Mill", "Cedar", "Sunset", "Park", "Lake", "River"]
TYPES = ["Street", "Avenue", "Road", "Lane", "Drive"]


def luhn_card(rng) -> str:
    digits = [4] + [int(d) for d in rng.integers(0, 10, 14)]
    total = 0
    for i, d in enumerate(reversed(digits)):  # the check digit will sit to the right
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i : i + 4] for i in range(0, 16, 4))


def iban_de(rng) -> str:
    bban = "".join(str(d) for d in rng.integers(0, 10, 18))
    numeric = int(bban + "1314" + "00")  # D=13, E=14, check digits 00
    check = 98 - numeric % 97
    raw = f"DE{check:02d}{bban}"
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def pii_corpus(n: int, seed: int = 0) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    rng = np.random.default_rng(seed)
    rows, seeded = [], {}
    for i in range(n):
        first, last = str(rng.choice(FIRST)), str(rng.choice(LAST))
        values = {
            "PERSON": f"{first} {last}",
            "EMAIL_ADDRESS": f"{first.lower()}.{last.lower()}{i}@example.com",
            "PHONE_NUMBER": f"+1 415-555-{int(rng.integers(1000, 10000))}",
            "CREDIT_CARD": luhn_card(rng),
            "IBAN_CODE": iban_de(rng),
            "IP_ADDRESS": ".".join(str(int(x)) for x in rng.integers(1, 255, 4)),
            "STREET_ADDRESS": f"{int(rng.integers(1, 999))} {rng.choice(STREETS)} {rng.choice(TYPES)}",
            "US_SSN": f"{int(rng.integers(100, 665)):03d}-{int(rng.integers(10, 99)):02d}-"
            f"{int(rng.integers(1000, 9999)):04d}",
        }
        text = (
            f"Ticket {i}: customer {values['PERSON']} wrote from {values['EMAIL_ADDRESS']} and asked us to call "
            f"{values['PHONE_NUMBER']}. The card {values['CREDIT_CARD']} was charged twice; refunds go to IBAN "
            f"{values['IBAN_CODE']}. Login came from IP {values['IP_ADDRESS']}. Mail the letter to "
            f"{values['STREET_ADDRESS']}. Verified with SSN {values['US_SSN']}. The analyst closed the case."
        )
        rows.append({"id": f"t{i:04d}", "text": text, "source": "tickets", "page": 0, "kind": "text", "meta": "{}"})
        seeded[f"t{i:04d}"] = values
    return pd.DataFrame(rows), seeded
