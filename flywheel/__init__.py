"""Flywheel: an open, self-hostable AI factory.

The domain package. Pure logic only: it never imports Prefect (a test enforces it); the
orchestration lives in the top-level ``tasks`` and ``flows`` packages.
"""

__version__ = "0.1.0"
