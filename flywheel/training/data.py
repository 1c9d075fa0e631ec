"""Training data: rows from a Dataset, a file or the feedback store; chat-template encoding; packing.

SFT rows have ``text`` (the user turn) and ``answer`` (the assistant turn), or ``messages`` (a chat,
a list or its JSON, the loss on every assistant turn). DPO rows have ``prompt`` (a string or a chat),
``chosen`` and ``rejected``.

    rows = load_rows("feedback:fraud", "dpo", home)        # or a Dataset folder / .jsonl / .parquet
    enc = encode_sft_rows(tok, rows, system_prompt, 192)   # EncodedRows: examples + counts
    batches = pack(enc.examples, cfg.max_seq_length)       # several examples per row

Labels are -100 on everything but the assistant turns. An example longer than ``max_seq_length``
loses the left of its prompt (the answer is kept) or is dropped (``truncation: drop``); both are
counted (``truncated``, ``dropped_too_long``), as are rows whose answer is empty after templating
(``dropped_no_answer``). No rows, or no row left, is an error, never a zero-step run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.core.errors import DataError

IGNORE = -100
SFT_COLUMNS = ["id", "text", "answer", "label", "source"]


def labelled_rows(dataset_path: str) -> list[dict]:
    """Rows with a label and an answer in ``meta`` (what the workload generator and users provide);
    rows without them (plain documents) are not training examples and are skipped."""
    from flywheel.core.dataset import read_dataset

    df = read_dataset(dataset_path).to_pandas()
    out = []
    for r in df.to_dict("records"):
        meta = json.loads(r.get("meta") or "{}")
        if meta.get("label") and meta.get("answer"):
            out.append(
                {
                    "id": r["id"],
                    "text": r["text"],
                    "answer": meta["answer"],
                    "label": meta["label"],
                    "source": r["source"],
                    "meta": meta,
                }
            )
    return out


def build_sft_dataset(
    rows: list[dict],
    datasets_root,
    name: str,
    labels: list[str],
    fuzzy,
    heldout=None,
    parents: list[str] = (),
    config: dict | None = None,
):
    """The loop's SFT Dataset from the cycle's rows (``continual.cycle_rows``: curated rows, weighted feedback,
    replay), those whose label is one of ``labels``, minus every row that is an exact or near-duplicate
    (``fuzzy``: the curation's MinHash settings) of a ``heldout`` row: the evaluation must not score what
    training has seen.

    Returns the Dataset (parents: ``parents`` and the held-out digest) and its counts: ``rows_in``,
    ``dropped_label`` (a label outside ``labels``), ``dropped_leakage`` and ``leak_example`` (one leaking pair,
    or None)."""
    import pandas as pd

    from flywheel.core.dataset import write_dataset

    kept = [{k: r[k] for k in SFT_COLUMNS} for r in rows if r["label"] in labels]
    frame = pd.DataFrame(kept, columns=SFT_COLUMNS)
    leaked, example = 0, None
    if heldout is not None and len(frame):
        from flywheel.curation.split import leakage

        held = heldout.to_pandas()[["id", "text"]]
        both = pd.concat([frame[["id", "text"]], held], ignore_index=True)
        split = pd.Series(["train"] * len(frame) + ["heldout"] * len(held))
        leaks = leakage(both, split, fuzzy)
        leaked = len(leaks)
        if leaked:
            first = leaks.iloc[0]
            example = {
                "id": first["id"],
                "duplicate_of": first["duplicate_of"],
                "similarity": float(first["similarity"]),
            }
            frame = frame.drop(index=leaks["pos"].to_numpy()).reset_index(drop=True)
    parents = list(parents) + ([heldout.digest] if heldout is not None else [])
    ds = write_dataset(frame, datasets_root, name, parents=parents, config=config)
    return ds, {
        "rows_in": len(rows),
        "dropped_label": len(rows) - len(kept),
        "dropped_leakage": leaked,
        "leak_example": example,
    }


def lineage(spec: str) -> list[tuple[str, str, str]]:
    """(path, name, digest) of the Dataset a ``TrainConfig.dataset`` names, for the MLflow run; none for a file
    or ``feedback:<workload>`` (those have no digest of their own)."""
    from flywheel.core.dataset import is_dataset, read_dataset

    if spec.startswith("feedback:") or not is_dataset(Path(spec).expanduser()):
        return []
    ds = read_dataset(Path(spec).expanduser())
    return [(str(ds.path), ds.name, ds.digest)]


def load_rows(spec: str, recipe: str, home=None) -> list[dict]:
    """Rows of a Dataset folder, a .jsonl/.parquet file, or ``feedback:<workload>``; columns checked."""
    if spec.startswith("feedback:"):
        from flywheel.core.home import Home
        from flywheel.feedback.store import FeedbackStore

        store = FeedbackStore((home or Home.resolve()).database_url())
        workload = spec.split(":", 1)[1]
        rows = store.preference_pairs(workload) if recipe == "dpo" else store.training_rows(workload)
    else:
        from flywheel.core.dataset import read_table

        path = Path(spec).expanduser()
        try:
            df = read_table(path)
        except ValueError as e:
            raise DataError(f"dataset {e}") from None
        rows = df.to_dict("records")
        if (
            recipe == "sft"
            and rows
            and "meta" in df.columns
            and not {"answer", "messages"} & set(df.columns)
            and path.is_dir()
        ):
            rows = labelled_rows(str(path)) or rows  # a curated Dataset keeps label and answer in ``meta``
    check_columns(rows, recipe, spec)
    return rows


def check_columns(rows: list[dict], recipe: str, name: str = "dataset") -> None:
    if not rows:
        raise DataError(f"{name}: no rows to train on")
    cols = set(rows[0])
    if recipe == "dpo":
        need = [c for c in ("prompt", "chosen", "rejected") if c not in cols]
    elif "messages" in cols:
        need = []
    else:
        need = [c for c in ("text", "answer") if c not in cols]
    if need:
        wanted = "prompt, chosen, rejected" if recipe == "dpo" else "text + answer, or messages"
        raise DataError(
            f"{name}: missing column(s) {', '.join(need)} for recipe {recipe} "
            f"(needs {wanted}; has {', '.join(sorted(cols))})"
        )


def _chat(value) -> list[dict] | None:
    if isinstance(value, str):
        value = value.strip()
        if not value.startswith("["):
            return None
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, (list, tuple)) and all(isinstance(m, dict) and "role" in m for m in value):
        return [{"role": m["role"], "content": str(m.get("content", ""))} for m in value]
    return None


def conversation(row: dict, system_prompt: str, answer_key: str = "answer") -> list[dict]:
    """The row as a chat ending with the assistant turn (``answer_key``), system turn first if given."""
    msgs = _chat(row.get("messages")) if "messages" in row else None
    if msgs is None:
        prompt = row.get("prompt", row.get("text"))
        msgs = _chat(prompt)
        if msgs is None:
            msgs = [{"role": "user", "content": str(prompt)}]
        msgs = msgs + [{"role": "assistant", "content": str(row[answer_key])}]
    if system_prompt and msgs[0]["role"] != "system":
        msgs = [{"role": "system", "content": system_prompt}] + msgs
    return msgs


def encode_chat(tok, msgs: list[dict]) -> tuple[list[int], list[int]]:
    """Token ids and labels: labels are the ids on assistant turns (their end-of-turn tokens too), else IGNORE."""
    ids = tok.apply_chat_template(msgs, tokenize=False)
    ids = tok(ids, add_special_tokens=False)["input_ids"]
    labels = [IGNORE] * len(ids)
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        start = len(
            tok(
                tok.apply_chat_template(msgs[:i], tokenize=False, add_generation_prompt=True), add_special_tokens=False
            )["input_ids"]
        )
        end = len(tok(tok.apply_chat_template(msgs[: i + 1], tokenize=False), add_special_tokens=False)["input_ids"])
        labels[start:end] = ids[start:end]
    if all(label == IGNORE for label in labels) and msgs[-1]["role"] == "assistant":
        # The template renders differently once the answer is there: prompt + answer + eos, concatenated.
        p_ids = tok(
            tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True), add_special_tokens=False
        )["input_ids"]
        a_ids = tok(msgs[-1]["content"] + (tok.eos_token or ""), add_special_tokens=False)["input_ids"]
        ids, labels = p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids
    return ids, labels


@dataclass
class EncodedRows:
    examples: list[tuple[list[int], list[int]]] = field(default_factory=list)
    counts: dict = field(default_factory=dict)


def fit(ids: list[int], labels: list[int], max_len: int, truncation: str) -> tuple[list[int], list[int]] | None:
    """Cut from the left (keeps the answer, which is at the end) or None when dropping."""
    if len(ids) <= max_len:
        return ids, labels
    if truncation == "drop":
        return None
    cut = len(ids) - max_len
    return ids[cut:], labels[cut:]


def encode_rows(
    tok, rows: list[dict], system_prompt: str, max_len: int, truncation: str, answer_keys: tuple[str, ...], what: str
) -> tuple[list[tuple], dict]:
    """Per kept row, one (ids, labels) per answer column (``answer`` for SFT; ``chosen``, ``rejected`` for
    DPO); a row goes if any side is too long (``truncation: drop``) or has no answer tokens; counted."""
    counts = {"total": len(rows), "kept": 0, "truncated": 0, "dropped_too_long": 0, "dropped_no_answer": 0}
    kept = []
    for row in rows:
        sides, cut = [], False
        for key in answer_keys:
            ids, labels = encode_chat(tok, conversation(row, system_prompt, answer_key=key))
            fitted = fit(ids, labels, max_len, truncation)
            if fitted is None:
                break
            sides.append(fitted)
            cut |= len(fitted[0]) < len(ids)
        if len(sides) < len(answer_keys):
            counts["dropped_too_long"] += 1
        elif any(all(label == IGNORE for label in labels) for _, labels in sides):
            counts["dropped_no_answer"] += 1
        else:
            counts["truncated"] += cut
            kept.append(tuple(sides))
    counts["kept"] = len(kept)
    if not kept:
        raise DataError(f"no {what} left to train on: {counts}")
    return kept, counts


def encode_sft_rows(
    tok, rows: list[dict], system_prompt: str, max_len: int, truncation: str = "prompt_left"
) -> EncodedRows:
    kept, counts = encode_rows(tok, rows, system_prompt, max_len, truncation, ("answer",), "example")
    return EncodedRows(examples=[k[0] for k in kept], counts=counts)


def pack(examples: list[tuple[list[int], list[int]]], max_len: int) -> list[tuple[list[int], list[int], list[int]]]:
    """First-fit-decreasing bins of at most ``max_len`` tokens: (ids, labels, position_ids) per packed row.

    position_ids restart at 0 for each example; transformers turns that into a block-diagonal causal
    mask (no attention across examples) when no attention mask is passed."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(examples)), key=lambda i: -len(examples[i][0])):
        n = len(examples[i][0])
        for b, free in enumerate(room):
            if free >= n:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(max_len - n)
    rows = []
    for members in bins:
        ids, labels, pos = [], [], []
        for i in sorted(members):
            ids += examples[i][0]
            labels += examples[i][1]
            pos += list(range(len(examples[i][0])))
        rows.append((ids, labels, pos))
    return rows


def collate(batch, pad_id: int, packed: bool = False):
    """Right-padded tensors: ids, labels, attention mask (or position ids for packed rows)."""
    import torch

    width = max(len(b[0]) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    pos = torch.zeros((len(batch), width), dtype=torch.long)
    for i, b in enumerate(batch):
        n = len(b[0])
        ids[i, :n] = torch.tensor(b[0])
        labels[i, :n] = torch.tensor(b[1])
        mask[i, :n] = 1
        # Packed rows: each example's positions restart; the padding tail is one more "example".
        pos[i, :n] = torch.tensor(b[2]) if packed else torch.arange(n)
        pos[i, n:] = torch.arange(width - n)
    return ids, labels, mask, pos


def separator_ids(tok, separator: str = ":") -> set[int]:
    """Token ids whose text contains the answer's separator (where the label ends in ``LABEL: reason``)."""
    return {i for t, i in tok.get_vocab().items() if separator in tok.convert_tokens_to_string([t])}


def answer_weights(labels, sep_ids: set[int], label_weight: float, reason_weight: float):
    """Per-token loss weights for a batch of labels: the answer's first tokens up to and including the first
    separator token get ``label_weight``, the rest of the answer ``reason_weight``, everything else 0; a row
    whose answer has no separator (a plain replay text) keeps weight 1 on every token.

    With 10 answer tokens of which 2 are the label, weights 5 / 1 give the label 10/18 of the loss instead of
    2/10: the decision is learnt first, the wording after."""
    import torch

    answer = labels != IGNORE
    weights = answer.float() * reason_weight
    sep = torch.zeros_like(answer)
    for t in sep_ids & set(labels[answer].unique().tolist()):
        sep |= labels == t
    # position of the first separator within each row's answer (answer tokens after it are the reason)
    seen = torch.cumsum((sep & answer).int(), dim=1)
    before_or_at = answer & ((seen == 0) | (sep & (seen == 1)))
    has_sep = (sep & answer).any(dim=1, keepdim=True)
    weights[before_or_at & has_sep] = label_weight
    weights[answer & ~has_sep] = 1.0  # no separator: not a "LABEL: reason" answer (plain replay text), plain loss
    return weights
