"""Thin Prefect tasks: each wraps one domain function of ``flywheel`` and adds retries, tags,
logging and artifacts. No logic lives here that a unit test of ``flywheel`` could not reach."""
