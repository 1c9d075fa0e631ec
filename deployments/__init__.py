"""Deployment and automation definitions, and work-pool recipes."""
