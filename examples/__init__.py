"""Bundled sample data generators (the fraud workload, sample PDFs)."""
