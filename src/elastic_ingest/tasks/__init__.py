"""Thin Prefect tasks over connectors.*: a call, a log line, a small return value."""
