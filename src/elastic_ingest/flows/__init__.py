"""Prefect flows: `sync` (one job of one connector) and `poll` (one pass of the service)."""
