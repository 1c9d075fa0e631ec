"""Benchmarks for one model (base + optional adapter).

- ``accuracy``: multiple-choice scoring, as lm-evaluation-harness does it: for each held-out
  example the model's log-probability of each allowed label (``FRAUD``/``LEGIT``) as the first
  word of the assistant turn is compared; the highest wins. One forward pass per example when the
  labels start with different tokens (the common case), one per (example, label) otherwise.
- ``perplexity``: exp(mean token NLL) on held-out general English text, to catch forgetting.

    from flywheel.evaluation.metrics import evaluate_model
    metrics = evaluate_model(base_path, adapter_dir, rows, general_text, labels, system_prompt, cfg)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class EvalResult:
    accuracy: float
    perplexity: float
    n_examples: int
    per_label_recall: dict
    seconds: float

    def metrics(self) -> dict:
        out = {"accuracy": self.accuracy, "perplexity": self.perplexity}
        out.update({f"recall_{k.lower()}": v for k, v in self.per_label_recall.items()})
        return out


def _prompts(tok, rows, system_prompt):
    return [
        tok.apply_chat_template(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": r["text"]}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for r in rows
    ]


def label_scores(model, tok, rows, labels, system_prompt, batch_size=16):
    """Return, per row, the log-probability of each label as the assistant's first word."""
    import torch

    prompts = _prompts(tok, rows, system_prompt)
    label_ids = [tok(label, add_special_tokens=False)["input_ids"] for label in labels]
    firsts = [ids[0] for ids in label_ids]
    device = next(model.parameters()).device
    scores: list[list[float]] = []
    tok.padding_side = "left"
    if len(set(firsts)) == len(firsts):
        for i in range(0, len(prompts), batch_size):
            enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(
                device
            )
            with torch.no_grad():
                logits = model(**enc).logits[:, -1, :].float()
            logp = torch.log_softmax(logits, dim=-1)[:, firsts]
            scores.extend(logp.tolist())
        return scores
    # Labels share a first token: score every label's whole token sequence.
    for p in prompts:
        row = []
        for ids in label_ids:
            enc = tok(p, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
            full = torch.cat([enc, torch.tensor([ids], device=device)], dim=1)
            with torch.no_grad():
                logp = torch.log_softmax(model(full).logits[0, :-1].float(), dim=-1)
            pos = range(enc.shape[1] - 1, full.shape[1] - 1)
            row.append(sum(logp[j, full[0, j + 1]].item() for j in pos))
        scores.append(row)
    return scores


def accuracy(model, tok, rows, labels, system_prompt, batch_size=16) -> tuple[float, dict]:
    if not rows:
        raise ValueError("accuracy: no held-out rows")
    scores = label_scores(model, tok, rows, labels, system_prompt, batch_size)
    preds = [labels[max(range(len(labels)), key=lambda k: s[k])] for s in scores]
    gold = [r["label"] for r in rows]
    acc = sum(p == g for p, g in zip(preds, gold)) / len(rows)
    recall = {}
    for label in labels:
        idx = [i for i, g in enumerate(gold) if g == label]
        recall[label] = (sum(preds[i] == label for i in idx) / len(idx)) if idx else float("nan")
    return acc, recall


def perplexity(model, tok, text: str, max_tokens: int = 2048, window: int = 256) -> float:
    import torch

    ids = tok(text, add_special_tokens=False)["input_ids"][:max_tokens]
    if len(ids) < 2:
        raise ValueError("perplexity: general text is empty")
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = torch.tensor([ids[start : start + window + 1]], device=device)
        if chunk.shape[1] < 2:
            break
        with torch.no_grad():
            logits = model(chunk[:, :-1]).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[0], chunk[0, 1:], reduction="sum")
        nll += loss.item()
        count += chunk.shape[1] - 1
    return math.exp(nll / count)


def evaluate_model(base_path, adapter_dir, rows, general_text, labels, system_prompt, cfg) -> EvalResult:
    import torch

    from flywheel.training.models import load_model_and_tokenizer, pick_device

    t0 = time.perf_counter()
    device = pick_device("auto")
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    model, tok = load_model_and_tokenizer(base_path, adapter_dir, device, dtype)
    rows = rows[: cfg.max_examples]
    acc, recall = accuracy(model, tok, rows, labels, system_prompt, cfg.batch_size)
    ppl = perplexity(model, tok, general_text, cfg.perplexity_max_tokens)
    return EvalResult(acc, ppl, len(rows), recall, time.perf_counter() - t0)
