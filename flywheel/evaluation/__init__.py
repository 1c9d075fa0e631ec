"""Evaluation: scorers (generated answers, label log-probabilities, perplexity, general multiple choice through
lm-evaluation-harness, an optional LLM judge), metrics with bootstrap intervals and paired comparisons, the
four-row suite on a frozen golden set, the promotion gate, and the report."""
