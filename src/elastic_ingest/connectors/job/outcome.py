"""How a job ends: what happened during its run -> the status written to it. The only place
that decides it (job/run.py applies it; the stale-job sweep is the one other writer of an end)."""

from __future__ import annotations

from dataclasses import dataclass, field

from elastic_ingest.connectors.engine.reconcile import SyncCanceled
from elastic_ingest.connectors.errors import describe_error
from elastic_ingest.connectors.protocol import JobStatus


@dataclass
class Outcome:
    status: JobStatus
    error: str | None = None
    changed: bool = True
    counts: dict = field(default_factory=dict)  # SyncProgress.report() at the end


def outcome_of(
    error: BaseException | None, cancel_requested: bool, stopping: bool = False
) -> Outcome:
    """What happened -> the status the job should end with."""
    if error is None:
        return Outcome(JobStatus.COMPLETED)
    if isinstance(error, SyncCanceled):
        return Outcome(JobStatus.CANCELED, "canceled on request; nothing was deleted")
    if isinstance(error, Exception) and not stopping:
        return Outcome(JobStatus.ERROR, describe_error(error))
    if cancel_requested:  # the orchestrator stopped the run because a user cancelled it
        return Outcome(JobStatus.CANCELED, "canceled on request; nothing was deleted")
    return Outcome(JobStatus.SUSPENDED, "the service stopped during the sync; it will resume")


def settle(wanted: JobStatus, current: JobStatus) -> JobStatus:
    """The status to write, given what the job document says now: a cancel request that
    arrived after the last check still wins over completing or suspending."""
    if current == JobStatus.CANCELING and wanted in (JobStatus.COMPLETED, JobStatus.SUSPENDED):
        return JobStatus.CANCELED
    return wanted
