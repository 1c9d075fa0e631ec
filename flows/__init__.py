"""Prefect flows, and only flows: one per stage (ingest, curate, train, evaluate), the loop (``cycle``, flow
name ``flywheel``) and ``retrain`` (what the feedback automation starts). Each body reads as the plan; the work
is in ``tasks`` (one domain call each) and ``flywheel`` (the domain)."""
