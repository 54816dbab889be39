"""The protocol's vocabulary: connector and job statuses, job types, trigger methods, and the only
transitions allowed between job statuses."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    CANCELED = "canceled"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    ERROR = "error"


class ConnectorStatus(StrEnum):
    CREATED = "created"
    NEEDS_CONFIGURATION = "needs_configuration"
    CONFIGURED = "configured"
    CONNECTED = "connected"
    ERROR = "error"


class JobType(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"
    ACCESS_CONTROL = "access_control"
    DELETION = "deletion"  # this service's extension of the protocol: ids only, deletes only


SCHEDULED_KINDS = (JobType.FULL, JobType.INCREMENTAL, JobType.DELETION, JobType.ACCESS_CONTROL)
"""Job types with a schedule (`scheduling.<kind>`)."""

CONTENT_JOB_TYPES = (JobType.FULL, JobType.INCREMENTAL)
"""Job types that write content and advance the connector's `sync_cursor`."""


class TriggerMethod(StrEnum):
    ON_DEMAND = "on_demand"
    SCHEDULED = "scheduled"


S = JobStatus
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.PENDING: frozenset({S.IN_PROGRESS, S.CANCELED}),
    S.IN_PROGRESS: frozenset({S.CANCELING, S.COMPLETED, S.SUSPENDED, S.ERROR}),
    S.SUSPENDED: frozenset({S.IN_PROGRESS, S.CANCELED}),
    S.CANCELING: frozenset({S.CANCELED, S.ERROR}),
    S.COMPLETED: frozenset(),
    S.CANCELED: frozenset(),
    S.ERROR: frozenset(),
}
ACTIVE = (S.IN_PROGRESS, S.CANCELING)
FINAL = (S.COMPLETED, S.CANCELED, S.ERROR)
COUNTERS = (
    "indexed_document_count",
    "indexed_document_volume",
    "deleted_document_count",
    "total_document_count",
)

# A connector syncs only once configured; `created`/`needs_configuration` wait for a UI to fill in.
SYNCABLE = frozenset({ConnectorStatus.CONFIGURED, ConnectorStatus.CONNECTED, ConnectorStatus.ERROR})


def may_sync(connector_status: str) -> bool:
    """The one rule for which connectors get jobs: configured ones, whatever their last outcome."""
    return connector_status in SYNCABLE


class IllegalTransition(ValueError):
    """A status change the job state machine forbids; nothing was written."""
