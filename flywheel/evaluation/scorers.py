"""Scorers: run a loaded model over the evaluation and record per-unit outcomes (``metrics.Outcomes``).

- :func:`answer_outcomes`: the gateway's own prompt (system prompt + transaction, chat template) and greedy
  decoding, batched (``serving.engine.generate_chat``, the code the gateway runs); each answer parsed by
  :func:`parse_answer`. With ``icl`` examples the prompt carries them as earlier user/assistant turns.
- :func:`label_logprobs`: the label with the highest log-probability as the assistant's first word (the
  older multiple-choice scoring, kept as ``label_logprob_accuracy``).
- :func:`perplexity_windows`: NLL per window of general text.
- :func:`multiple_choice`: log-likelihood of each choice after ``Question: ...\\nAnswer:``, as
  lm-evaluation-harness scores a ``multiple_choice`` task (same tokenisation of the context/continuation
  pair), so its result can be cross-checked against the harness's (``harness.py``).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

SEPARATOR = ":"


def parse_answer(text: str, labels: list[str], separator: str = SEPARATOR) -> tuple[str | None, bool]:
    """``(label, format_valid)``: the label the answer starts with (its first word, case and punctuation
    ignored), and whether the answer keeps the contract ``LABEL<separator> reason`` exactly.

    >>> parse_answer("FRAUD: cross-border $1,200", ["FRAUD", "LEGIT"])
    ('FRAUD', True)
    >>> parse_answer("legit - looks fine", ["FRAUD", "LEGIT"])
    ('LEGIT', False)
    """
    text = (text or "").strip()
    words = text.split(maxsplit=1)
    first = words[0].strip(".,;:!-*'\"()[]").upper() if words else ""
    label = next((lb for lb in labels if lb.upper() == first), None)
    valid = label is not None and text.startswith(f"{label}{separator}") and len(text) > len(label) + 1
    return label, valid


def conversation(system_prompt: str, text: str, shots: list[dict] = ()) -> list[dict]:
    msgs = [{"role": "system", "content": system_prompt}]
    for s in shots:
        msgs += [{"role": "user", "content": s["text"]}, {"role": "assistant", "content": s["answer"]}]
    return msgs + [{"role": "user", "content": text}]


def answer_outcomes(
    model,
    tok,
    rows: list[dict],
    labels: list[str],
    system_prompt: str,
    max_new_tokens: int,
    batch_size: int,
    icl: list[list[dict]] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """One row per example: gold, pred, valid, answer, completion_tokens, latency_ms (the wall time of the
    batch that answered it: what a request in that batch waits), plus cost totals."""
    from flywheel.serving.engine import generate_chat

    convs = [conversation(system_prompt, r["text"], icl[i] if icl else ()) for i, r in enumerate(rows)]
    answers, latencies, tokens = [], [], []
    t0 = time.perf_counter()
    for i in range(0, len(convs), batch_size):
        t = time.perf_counter()
        gens = generate_chat(model, tok, convs[i : i + batch_size], max_new_tokens)
        dt = (time.perf_counter() - t) * 1000
        answers += [g.text for g in gens]
        tokens += [g.completion_tokens for g in gens]
        latencies += [dt] * len(gens)
    seconds = time.perf_counter() - t0
    parsed = [parse_answer(a, labels) for a in answers]
    frame = pd.DataFrame(
        {
            "id": [r["id"] for r in rows],
            "gold": [r["label"] for r in rows],
            "pred": [p[0] or "" for p in parsed],
            "valid": [p[1] for p in parsed],
            "answer": answers,
            "completion_tokens": tokens,
            "latency_ms": latencies,
        }
    )
    lat = np.array(latencies) if latencies else np.array([math.nan])
    cost = {
        "latency_ms_p50": float(np.percentile(lat, 50)),
        "latency_ms_p95": float(np.percentile(lat, 95)),
        "tokens_per_answer": float(np.mean(tokens)) if tokens else math.nan,
        "examples_per_second": len(rows) / seconds if seconds > 0 else math.nan,
        "generation_seconds": seconds,
        "batch_size": batch_size,
    }
    return frame, cost


def _prompts(tok, rows, system_prompt):
    return [
        tok.apply_chat_template(conversation(system_prompt, r["text"]), tokenize=False, add_generation_prompt=True)
        for r in rows
    ]


def label_logprobs(model, tok, rows, labels, system_prompt, batch_size=16) -> list[str]:
    """Per row, the label whose tokens are most likely as the assistant's first word."""
    import torch

    prompts = _prompts(tok, rows, system_prompt)
    label_ids = [tok(label, add_special_tokens=False)["input_ids"] for label in labels]
    firsts = [ids[0] for ids in label_ids]
    device = next(model.parameters()).device
    preds: list[str] = []
    tok.padding_side = "left"
    if len(set(firsts)) == len(firsts):  # one forward pass per example: the first tokens differ
        for i in range(0, len(prompts), batch_size):
            enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                logits = model(**enc.to(device)).logits[:, -1, :].float()
            preds += [labels[j] for j in logits[:, firsts].argmax(dim=-1).tolist()]
        return preds
    for p in prompts:  # labels share a first token: score every label's whole token sequence
        enc = tok(p, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
        scores = []
        for ids in label_ids:
            full = torch.cat([enc, torch.tensor([ids], device=device)], dim=1)
            with torch.no_grad():
                logp = torch.log_softmax(model(full).logits[0, :-1].float(), dim=-1)
            scores.append(sum(logp[j, full[0, j + 1]].item() for j in range(enc.shape[1] - 1, full.shape[1] - 1)))
        preds.append(labels[int(np.argmax(scores))])
    return preds


def perplexity_windows(model, tok, text: str, max_tokens: int = 2048, window: int = 256) -> pd.DataFrame:
    """NLL (sum) and token count per window of ``text``: perplexity is exp(sum NLL / sum tokens)."""
    import torch

    ids = tok(text, add_special_tokens=False)["input_ids"][:max_tokens]
    if len(ids) < 2:
        raise ValueError("perplexity: general text is empty")
    device = next(model.parameters()).device
    nll, count = [], []
    for start in range(0, len(ids) - 1, window):
        chunk = torch.tensor([ids[start : start + window + 1]], device=device)
        if chunk.shape[1] < 2:
            break
        with torch.no_grad():
            logits = model(chunk[:, :-1]).logits.float()
        nll.append(torch.nn.functional.cross_entropy(logits[0], chunk[0, 1:], reduction="sum").item())
        count.append(chunk.shape[1] - 1)
    return pd.DataFrame({"nll": nll, "tokens": count})


def mc_context(question: str) -> str:
    """The prompt of a general multiple-choice question (the harness task's ``doc_to_text``)."""
    return f"Question: {question}\nAnswer:"


def encode_pair(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's split of a (context, continuation) pair for a causal model: trailing spaces of the
    context move to the continuation, the whole string is encoded once and cut at the context's length."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    return whole[: len(ctx)], whole[len(ctx) :]


def multiple_choice(model, tok, questions: list[dict], batch_size: int = 32) -> pd.DataFrame:
    """Per question: the choice with the highest log-likelihood (target delimiter " "), and whether it is the
    answer (``correct``)."""
    import torch

    pairs = [
        (qi, encode_pair(tok, mc_context(q["question"]), " " + c))
        for qi, q in enumerate(questions)
        for c in q["choices"]
    ]
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    scores: list[float] = []
    for i in range(0, len(pairs), batch_size):
        batch = [ctx + cont for _, (ctx, cont) in pairs[i : i + batch_size]]
        width = max(len(b) for b in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, b in enumerate(batch):  # right padding: positions stay those of an unpadded run
            ids[j, : len(b)], mask[j, : len(b)] = torch.tensor(b), 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for j, (_, (ctx, cont)) in enumerate(pairs[i : i + batch_size]):
            # only the continuation's positions need a softmax over the vocabulary
            logp = torch.log_softmax(logits[j, len(ctx) - 1 : len(ctx) + len(cont) - 1].float(), -1)
            scores.append(float(logp[torch.arange(len(cont)), torch.tensor(cont)].sum()))
    out, k = [], 0
    for qi, q in enumerate(questions):
        s = scores[k : k + len(q["choices"])]
        k += len(q["choices"])
        pred = int(np.argmax(s))
        out.append({"id": q.get("id", str(qi)), "pred": pred, "correct": pred == int(q["answer"])})
    return pd.DataFrame(out, columns=["id", "pred", "correct"])
