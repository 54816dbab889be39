"""Settings and an Elasticsearch client per task (tasks never receive clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from elasticsearch import AsyncElasticsearch

from connectors.config import Settings, load_settings
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
    """Retry condition: retry network trouble, never a configuration or data mistake."""
    try:
        state.result()
    except (ConnectionError, TimeoutError, OSError):
        return True
    except Exception as error:
        name = type(error).__name__
        return name in ("ConnectionTimeout", "TransportError", "ApiError")
    return False
