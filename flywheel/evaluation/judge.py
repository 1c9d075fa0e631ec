"""An LLM judge on any OpenAI-compatible endpoint (vLLM, trtllm-serve, NIM, this project's gateway).

The rubric (``eval.judge.rubric``) is formatted with the input, the answer and the reference answer and sent
as one user message at temperature 0; the reply is parsed by :func:`parse_score` into 0..1 (divided by
``scale``). A reply without a usable number is NaN: counted as ``judge_invalid`` and left out of the mean,
never read as 0. The judge model and the rubric's hash are recorded with every score (``suite.judge_fingerprint``).

    Judge(JudgeConfig(enabled=True, base_url="http://127.0.0.1:8000/v1", model="llama-70b")).score_many(...)
"""

from __future__ import annotations

import math
import re

from flywheel.evaluation.config import JudgeConfig

_NUMBER = r"(-?\d+(?:\.\d+)?)"
# Most explicit form first: "7/10" or "7 out of 10", then "Score: 8" / "rating = 8", then a lone number.
_PATTERNS = [
    re.compile(rf"{_NUMBER}\s*(?:/|out of)\s*{_NUMBER}", re.I),
    re.compile(rf"(?:score|rating|grade)\s*(?:is|[:=])?\s*{_NUMBER}", re.I),
    re.compile(rf"^\s*{_NUMBER}\s*[.!]?\s*$"),
    re.compile(rf"(?<![\w.]){_NUMBER}(?![\w.]|/)"),
]


def parse_score(text: str | None, scale: float = 10.0) -> float:
    """The judge's score as a fraction of ``scale`` (0..1), or NaN when the reply holds no score on the scale.

    >>> parse_score("10"), parse_score("7/10"), parse_score("Score: 8"), parse_score("I'd say 6, the reason is thin")
    (1.0, 0.7, 0.8, 0.6)
    >>> parse_score("no idea"), parse_score("15")
    (nan, nan)
    """
    if not text:
        return math.nan
    for i, pattern in enumerate(_PATTERNS):
        m = pattern.search(text)
        if not m:
            continue
        value = float(m.group(1))
        top = float(m.group(2)) if i == 0 else scale
        if top <= 0 or not 0 <= value <= top:
            return math.nan
        if i == 3 and len(re.findall(rf"(?<![\w.]){_NUMBER}(?![\w.]|/)", text)) > 1:
            return math.nan  # several bare numbers in prose: no way to tell which one is the score
        return value / top
    return math.nan


class Judge:
    def __init__(self, cfg: JudgeConfig, client=None):
        if not cfg.base_url and client is None:
            raise ValueError("eval.judge.base_url is required when the judge is enabled")
        if client is None:
            from openai import OpenAI

            key = cfg.api_key.get_secret_value() if cfg.api_key else "not-needed"
            client = OpenAI(base_url=cfg.base_url, api_key=key, timeout=cfg.timeout_s, max_retries=2)
        self.cfg, self.client = cfg, client

    def score(self, input_text: str, answer: str, reference: str) -> float:
        prompt = self.cfg.rubric.format(input=input_text, answer=answer, reference=reference)
        resp = self.client.chat.completions.create(
            model=self.cfg.model,
            messages=[{"role": "user", "content": prompt}],
            temperature=0,
            max_tokens=self.cfg.max_tokens,
        )
        return parse_score(resp.choices[0].message.content, self.cfg.scale)

    def score_many(self, inputs: list[str], answers: list[str], references: list[str]) -> list[float]:
        return [self.score(i, a, r) for i, a, r in zip(inputs, answers, references)]
