"""Prefect workers of our own: flow runs started from a warm process (workers/warm.py)."""
