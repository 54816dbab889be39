"""elastic-ingest: keep Elasticsearch indices in sync with outside sources (no Prefect in here)."""

__version__ = "0.1.0"
