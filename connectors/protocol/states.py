"""The sync-job state machine: statuses and the only transitions allowed between them."""

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


class IllegalTransition(ValueError):
    """A status change the job state machine forbids; nothing was written."""
