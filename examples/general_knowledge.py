"""The general-knowledge multiple-choice set that guards against forgetting (``general_mc_accuracy``).

Written here, never downloaded: eight families of everyday facts from the tables below (capitals, opposites,
animal sounds and young, arithmetic, calendar order, "which one is a ...", plurals, colours), each question
with four choices, the three distractors drawn from the same family with a fixed seed. 203 questions: the
95 % interval of an accuracy near 0.6 is about +-0.07, narrower for a paired difference of two models (most
questions are answered alike) — enough to see forgetting of several points, not to rank models. Chance is 0.25.

The set ships as ``flywheel/evaluation/data/general_mc.jsonl`` (a test checks the file equals this
generator's output), one question per line: ``{"id", "family", "question", "choices", "answer"}`` with
``answer`` the index of the right choice. lm-evaluation-harness reads it as a ``multiple_choice`` task.

    python -m examples.general_knowledge --out flywheel/evaluation/data/general_mc.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "China": "Beijing", "Russia": "Moscow", "Egypt": "Cairo", "Greece": "Athens", "Portugal": "Lisbon",
    "Ireland": "Dublin", "Austria": "Vienna", "Poland": "Warsaw", "Sweden": "Stockholm", "Norway": "Oslo",
    "Denmark": "Copenhagen", "Finland": "Helsinki", "Hungary": "Budapest", "Belgium": "Brussels",
    "the Netherlands": "Amsterdam", "Canada": "Ottawa", "Mexico": "Mexico City", "Argentina": "Buenos Aires",
    "Peru": "Lima", "Chile": "Santiago", "Kenya": "Nairobi", "Thailand": "Bangkok", "South Korea": "Seoul",
    "India": "New Delhi", "the United Kingdom": "London", "the United States": "Washington, D.C.",
    "Australia": "Canberra", "Turkey": "Ankara", "Cuba": "Havana", "Iran": "Tehran",
}  # fmt: skip
OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "up": "down", "light": "dark",
    "open": "closed", "early": "late", "full": "empty", "hard": "soft", "old": "young", "rich": "poor",
    "strong": "weak", "wet": "dry", "loud": "quiet", "tall": "short", "thick": "thin", "first": "last",
    "win": "lose", "buy": "sell", "push": "pull", "day": "night", "inside": "outside", "true": "false",
    "clean": "dirty", "friend": "enemy", "arrive": "leave", "increase": "decrease",
    "always": "never",
}  # fmt: skip
SOUNDS = {
    "dog": "bark", "cat": "meow", "cow": "moo", "duck": "quack", "lion": "roar", "sheep": "baa",
    "horse": "neigh", "pig": "oink", "snake": "hiss", "owl": "hoot", "bee": "buzz", "frog": "croak",
}  # fmt: skip
YOUNG = {
    "dog": "puppy", "cat": "kitten", "cow": "calf", "sheep": "lamb", "horse": "foal", "frog": "tadpole",
    "duck": "duckling", "goat": "kid", "bear": "cub", "kangaroo": "joey", "swan": "cygnet", "hen": "chick",
}  # fmt: skip
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
KINDS = {
    "fruit": ["apple", "banana", "orange", "pear", "grape", "mango", "cherry", "peach"],
    "vegetable": ["carrot", "potato", "onion", "cabbage", "lettuce", "broccoli", "spinach", "celery"],
    "tool": ["hammer", "screwdriver", "wrench", "saw", "drill", "pliers", "chisel", "shovel"],
    "animal": ["elephant", "giraffe", "tiger", "zebra", "monkey", "rabbit", "wolf", "camel"],
    "musical instrument": ["piano", "violin", "guitar", "trumpet", "flute", "drum", "cello", "harp"],
    "vehicle": ["car", "bus", "bicycle", "train", "truck", "airplane", "motorcycle", "boat"],
}  # fmt: skip
PLURALS = {
    "mouse": "mice", "child": "children", "foot": "feet", "tooth": "teeth", "man": "men", "woman": "women",
    "goose": "geese", "person": "people", "leaf": "leaves", "knife": "knives", "city": "cities",
    "baby": "babies", "wolf": "wolves", "ox": "oxen",
}  # fmt: skip
COLOURS = {
    "the sky on a clear day": "blue", "grass": "green", "snow": "white", "coal": "black",
    "a ripe banana": "yellow", "a ripe tomato": "red", "an orange": "orange", "a lemon": "yellow",
    "milk": "white", "a fire engine": "red", "chocolate": "brown", "a ripe strawberry": "red",
}  # fmt: skip


def _choices(rng: random.Random, answer: str, pool: list[str]) -> tuple[list[str], int]:
    distractors = rng.sample(sorted({p for p in pool if p != answer}), 3)
    choices = [answer, *distractors]
    rng.shuffle(choices)
    return choices, choices.index(answer)


def generate(seed: int = 2026) -> list[dict]:
    rng = random.Random(seed)
    qs: list[tuple[str, str, str, list[str]]] = []  # family, question, answer, distractor pool
    for country, city in CAPITALS.items():
        qs.append(("capitals", f"What is the capital of {country}?", city, list(CAPITALS.values())))
    words = sorted(set(OPPOSITES) | set(OPPOSITES.values()))
    for word, opposite in OPPOSITES.items():
        qs.append(("opposites", f"What is the opposite of '{word}'?", opposite, words))
    for animal, sound in SOUNDS.items():
        qs.append(("animals", f"What sound does a {animal} make?", sound, list(SOUNDS.values())))
    for animal, young in YOUNG.items():
        qs.append(("animals", f"What is a baby {animal} called?", young, list(YOUNG.values())))
    for _ in range(40):
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        op = rng.choice(["plus", "times", "minus"])
        a, b = (max(a, b), min(a, b)) if op == "minus" else (a, b)
        value = {"plus": a + b, "times": a * b, "minus": a - b}[op]
        near = sorted({value + d for d in (-10, -2, -1, 1, 2, 10) if value + d >= 0})
        qs.append(("arithmetic", f"What is {a} {op} {b}?", str(value), [str(v) for v in near]))
    for i, month in enumerate(MONTHS):
        qs.append(("calendar", f"Which month comes after {month}?", MONTHS[(i + 1) % 12], MONTHS))
    for i, day in enumerate(DAYS):
        qs.append(("calendar", f"Which day comes after {day}?", DAYS[(i + 1) % 7], DAYS))
    for kind, items in KINDS.items():
        others = [x for k, xs in KINDS.items() if k != kind for x in xs]
        for item in rng.sample(items, 5):
            choices = [item, *rng.sample(others, 3)]
            rng.shuffle(choices)
            qs.append(("categories", f"Which of these is a {kind}?", item, choices))
    for word, plural in PLURALS.items():
        wrong = [word + "s", word + "es", plural + "s"]
        qs.append(("plurals", f"What is the plural of '{word}'?", plural, wrong))
    colours = sorted(set(COLOURS.values()) | {"purple", "pink", "grey"})
    for thing, colour in COLOURS.items():
        qs.append(("colours", f"What colour is {thing}?", colour, colours))
    out = []
    for i, (family, question, answer, pool) in enumerate(qs):
        choices, idx = _choices(rng, answer, pool)
        out.append({"id": f"gk-{i:03d}", "family": family, "question": question, "choices": choices, "answer": idx})
    return out


def write(path: Path, seed: int = 2026) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in generate(seed)))
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=2026)
    a = p.parse_args(argv)
    print(write(a.out, a.seed))


if __name__ == "__main__":
    main()
