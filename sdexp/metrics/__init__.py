"""Metrics: a registry of what each metric is, and their implementations."""
