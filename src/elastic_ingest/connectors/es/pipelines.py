"""Ingest pipelines a connector names: does one exist (asked once, before a sync writes)."""

from __future__ import annotations

from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.transport import NotFoundError


async def pipeline_exists(es: ESClient, name: str) -> bool:
    try:
        found = await es.ingest.get_pipeline(id=name, summary=True)
    except NotFoundError:
        return False
    return name in found
