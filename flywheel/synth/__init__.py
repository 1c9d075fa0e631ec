"""Synthetic training and evaluation data generated from curated documents."""
