"""Evaluation: task accuracy by label scoring, perplexity on general text, and the promotion gate."""
