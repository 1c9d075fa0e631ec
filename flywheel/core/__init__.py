"""Shared foundations: project home, configuration models, the Dataset contract, counted steps."""
