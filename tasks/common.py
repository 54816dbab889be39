"""Settings and an Elasticsearch client per task (tasks never receive clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from elasticsearch import ApiError, AsyncElasticsearch, ConnectionTimeout
from elasticsearch import ConnectionError as ESConnectionError

from connectors.config import Settings, load_settings
from connectors.es.bulk import RETRIABLE_STATUS
from connectors.es.client import create_client


@asynccontextmanager
async def elasticsearch(
    config_file: str | None,
) -> AsyncIterator[tuple[AsyncElasticsearch, Settings]]:
    settings = load_settings(config_file)
    client = create_client(settings.elasticsearch)
    try:
        yield client, settings
    finally:
        await client.close()


def transient_only(task, task_run, state) -> bool:
    """Retry condition: retry network trouble, never a configuration or data mistake.
    (Prefect hands the failed state over with the exception as its data.)"""
    error = state.data
    if isinstance(error, ESConnectionError | ConnectionTimeout | TimeoutError | ConnectionError):
        return True
    return isinstance(error, ApiError) and error.meta.status in RETRIABLE_STATUS
