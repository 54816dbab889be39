"""The service's side of Elastic's connector protocol: connector and sync-job documents."""

from connectors.protocol.connector import Connector, ConnectorIndex
from connectors.protocol.indices import ensure_protocol_indices
from connectors.protocol.job import Job, JobIndex
from connectors.protocol.states import IllegalTransition, JobStatus

__all__ = [
    "Connector",
    "ConnectorIndex",
    "IllegalTransition",
    "Job",
    "JobIndex",
    "JobStatus",
    "ensure_protocol_indices",
]
