"""The service's side of Elastic's connector protocol: connector and sync-job documents."""

from __future__ import annotations

from connectors.config import Settings
from connectors.es.client import ESClient
from connectors.protocol.connector import Connector, ConnectorIndex
from connectors.protocol.indices import ensure_protocol_indices
from connectors.protocol.job import Job, JobIndex, JobLost
from connectors.protocol.states import (
    ConnectorStatus,
    IllegalTransition,
    JobStatus,
    JobType,
    TriggerMethod,
)
from connectors.registry import RegistryError, source_class_for


def protocol_for(es: ESClient, settings: Settings) -> tuple[ConnectorIndex, JobIndex]:
    """The two protocol indices this service's settings name, sharing one client."""

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
