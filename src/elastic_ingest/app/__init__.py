"""The entry points above flows/: the `elastic-ingest` CLI and the service loop it starts."""
