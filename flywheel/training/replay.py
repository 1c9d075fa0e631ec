"""Generative replay against forgetting: plain-text continuations the base model writes itself.

Fine-tuning on chat-formatted task answers moves the model's distribution on ordinary text too (SmolLM2 after
one LoRA epoch on fraud triage: general-text perplexity +28 %). Training on text sampled from the base model,
with the loss on every token, pulls the adapter back towards the base distribution where it is not needed
(minimising cross-entropy on the base model's own samples is minimising KL(base || model) on them) — no
external corpus, nothing downloaded, and never the held-out general text the evaluation measures.

The texts are generated once per base model and settings (temperature-1 samples from neutral openings below,
seeded per batch) and cached beside the model: ``<models>/<base>.replay-<tokens>-<seed>.json``.

    texts = self_replay_texts(base_path, 150, cache_dir=models_dir)
    examples += replay_examples(tok, texts)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

BATCH = 16

# Neutral openings across everyday registers (none about card transactions or the evaluation's general text).
OPENINGS = [
    "The history of the city begins",
    "In the morning, the farmers",
    "Scientists have long wondered why",
    "The recipe calls for",
    "When the train finally arrived,",
    "Our team meeting on Monday",
    "The museum's new exhibition",
    "Learning a second language",
    "The river runs through",
    "After the storm, the village",
    "A good night's sleep",
    "The committee decided that",
    "Children at the school",
    "The old bridge was built",
    "In the quiet library,",
    "The garden in spring",
    "Engineers designed the new",
    "During the summer holidays,",
    "The orchestra began to play",
    "Most people agree that",
    "The mountain path was",
    "The company announced",
    "Her grandmother always said",
    "The weather forecast for",
    "A healthy breakfast",
    "The football match ended",
    "The first computers were",
    "On the island, the fishermen",
    "The teacher explained",
    "The market opens at",
]


def self_replay_texts(
    base_path: str | Path, n: int, max_tokens: int = 48, seed: int = 0, cache_dir: str | Path | None = None
) -> list[str]:
    """The first ``n`` texts the base model at ``base_path`` writes after the openings (temperature-1 samples).

    Generated in batches of 16, each seeded by its index, and cached: a later call that needs more extends the
    same pool, one that needs fewer takes its head — the same texts either way."""
    base_path = Path(base_path)
    cache = Path(cache_dir or base_path.parent) / f"{base_path.name}.replay-{max_tokens}-{seed}.json"
    texts = json.loads(cache.read_text()) if cache.exists() else []
    if len(texts) >= n:
        return texts[:n]
    import torch

    from flywheel.training.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(base_path)
    tok.padding_side = "left"
    for j in range(len(texts) // BATCH, -(-n // BATCH)):
        rng = random.Random(f"{seed}-{j}")
        batch = [rng.choice(OPENINGS) for _ in range(BATCH)]
        torch.manual_seed(seed * 100_003 + j)
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=max_tokens,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                pad_token_id=tok.pad_token_id,
            )
        new = [p + tok.decode(o[enc["input_ids"].shape[1] :], skip_special_tokens=True) for p, o in zip(batch, out)]
        texts = texts[: j * BATCH] + new
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(texts, indent=0))
    tmp.replace(cache)
    return texts[:n]


def replay_examples(tok, texts: list[str], max_len: int) -> list[tuple[list[int], list[int]]]:
    """Plain language-model examples (no chat template, loss on every token) of at most ``max_len`` tokens."""
    out = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"][:max_len]
        if len(ids) > 1:
            out.append((ids, list(ids)))
    return out
