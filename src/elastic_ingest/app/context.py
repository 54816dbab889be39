"""What every management command works with, and the two ways a command fails."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from elastic_ingest.connectors.config import Settings
    from elastic_ingest.connectors.es.client import ESClient
    from elastic_ingest.connectors.protocol import ConnectorIndex, JobIndex
    from elastic_ingest.connectors.protocol.connector import Connector


class UsageError(Exception):
    """A mistake in what the user typed or configured (exit 2)."""


@dataclass
class Context:
    """What a management command works with."""

    settings: Settings
    es: ESClient
    connectors: ConnectorIndex
    jobs: JobIndex
    out: Callable[[str], None]


class RuntimeFailure(Exception):
    """Something failed while running, already described in one line (exit 1)."""


async def get_connector(connectors, connector_id: str) -> Connector:
    connector = await connectors.get(connector_id)
    if connector is None:
        raise UsageError(f"connector {connector_id} does not exist")
    return connector
