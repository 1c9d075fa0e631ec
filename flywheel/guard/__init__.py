"""Guardrails of the gateway (issue 15): PII masking so far."""
