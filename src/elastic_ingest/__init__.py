"""elastic-ingest: keeps Elasticsearch indices in sync with outside sources, following Elastic's
connector protocol, with every sync a Prefect flow. The map of its rooms and the direction of
their imports: docs/architecture.md."""
