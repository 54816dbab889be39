"""The service's side of Elastic's connector protocol: connector and sync-job documents.

The vocabulary (statuses, job types) loads with the package; the document classes, which need
the Elasticsearch client, load on first use, so `connectors.protocol.JobType` costs no client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from elastic_ingest.connectors.protocol.states import (
    ConnectorStatus,
    IllegalTransition,
    JobStatus,
    JobType,
    TriggerMethod,
)

if TYPE_CHECKING:
    from elastic_ingest.connectors.config import Settings
    from elastic_ingest.connectors.es.client import ESClient
    from elastic_ingest.connectors.protocol.connector import Connector, ConnectorIndex
    from elastic_ingest.connectors.protocol.indices import ensure_protocol_indices
    from elastic_ingest.connectors.protocol.job import Job, JobIndex, JobLost

_LOADED_ON_USE = {
    "Connector": "elastic_ingest.connectors.protocol.connector",
    "ConnectorIndex": "elastic_ingest.connectors.protocol.connector",
    "ensure_protocol_indices": "elastic_ingest.connectors.protocol.indices",
    "Job": "elastic_ingest.connectors.protocol.job",
    "JobIndex": "elastic_ingest.connectors.protocol.job",
    "JobLost": "elastic_ingest.connectors.protocol.job",
}


def __getattr__(name: str) -> Any:
    if name not in _LOADED_ON_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LOADED_ON_USE[name]), name)
    globals()[name] = value
    return value


def protocol_for(es: ESClient, settings: Settings) -> tuple[ConnectorIndex, JobIndex]:
    """The two protocol indices this service's settings name, sharing one client."""
    from elastic_ingest.connectors.protocol.connector import ConnectorIndex
    from elastic_ingest.connectors.protocol.job import JobIndex
    from elastic_ingest.connectors.registry import RegistryError, source_class_for

    def sensitive(service_type: str) -> frozenset[str]:
        try:
            return source_class_for(settings.sources, service_type).sensitive_fields()
        except RegistryError:
            return frozenset()

    connectors = ConnectorIndex(es, settings.protocol.connectors_index)
    return connectors, JobIndex(es, settings.protocol.jobs_index, connectors, sensitive)


__all__ = [
    "Connector",
    "ConnectorIndex",
    "ConnectorStatus",
    "IllegalTransition",
    "Job",
    "JobIndex",
    "JobLost",
    "JobStatus",
    "JobType",
    "TriggerMethod",
    "ensure_protocol_indices",
    "protocol_for",
]
