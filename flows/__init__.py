"""Prefect flows: one per stage, ``flywheel`` (the loop) and ``retrain`` (event-triggered)."""
