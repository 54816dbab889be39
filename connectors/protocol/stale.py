"""Cleanup of syncs that stopped without finishing: stale jobs and orphaned connector locks."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from connectors.es.documents import VersionConflict
from connectors.protocol import clock
from connectors.protocol.job import Job, JobIndex
from connectors.protocol.states import ACTIVE, IllegalTransition
from connectors.protocol.states import JobStatus as S

logger = logging.getLogger(__name__)


async def fail_stale_jobs(jobs: JobIndex, threshold_seconds: float) -> list[Job]:
    """Mark running jobs without a recent heartbeat (or whose connector is gone) `error`. The
    worker, if it ever comes back, finds the job no longer its own and stops (see JobLost)."""
    cutoff = clock.now() - timedelta(seconds=threshold_seconds)
    failed = []
    for job in await jobs.active():
        try:
            finished = await _fail_if_stale(jobs, job, cutoff, threshold_seconds)
            if finished is not None:
                failed.append(finished)
        except Exception as error:  # one job must never stop the sweep
            logger.warning("job %s: stale check failed: %s", job.id, error)
    await _unlock_orphans(jobs, cutoff)
    return failed


async def _fail_if_stale(
    jobs: JobIndex, job: Job, cutoff: datetime, threshold_seconds: float
) -> Job | None:
    """The job as failed, if it was stale (or unusable); None if it is alive."""
    problems = job.problems()
    if problems:
        await jobs.fail_malformed(job, problems)
        return job
    connector = await jobs.connectors.get(job.connector_id)
    last_seen = clock.parse(job.doc.get("last_seen") or job.doc.get("started_at"))
    if connector is None:
        reason = f"connector {job.connector_id} was deleted while the job was running"
    elif last_seen is None or last_seen < cutoff:
        reason = (
            f"no heartbeat from worker {job.doc.get('worker_hostname')} since "
            f"{job.doc.get('last_seen')} (more than {threshold_seconds:.0f}s): "
            "the sync process stopped without finishing"
        )
    else:
        return None
    try:
        finished = await jobs.finish(job, S.ERROR, error=reason)
    except (IllegalTransition, VersionConflict):
        return None  # it moved meanwhile: alive after all, or finished by someone else
    logger.warning("job %s marked error: %s", job.id, reason)
    return finished


async def _unlock_orphans(jobs: JobIndex, cutoff: datetime) -> None:
    """A connector locked `in_progress` with no running job (claimer died mid-claim)."""
    lock_fields = {
        "last_sync_status": "last_sync_error",
        "last_access_control_sync_status": "last_access_control_sync_error",
    }
    for connector in await jobs.connectors.all():
        locked = [f for f in lock_fields if connector.doc.get(f) == S.IN_PROGRESS.value]
        locked_at = clock.parse(connector.doc.get("sync_locked_at"))
        if not locked or (locked_at is not None and locked_at >= cutoff):
            continue
        running = await jobs.search(
            {
                "bool": {
                    "filter": [
                        {"term": {"connector.id": connector.id}},
                        {"terms": {"status": [s.value for s in ACTIVE]}},
                    ]
                }
            },
            size=1,
        )
        if running:
            continue
        fields: dict = {"sync_locked_at": None}
        for status_field in locked:
            fields[status_field] = S.ERROR.value
            fields[lock_fields[status_field]] = "sync lock released: no running job"
        await jobs.connectors.update(connector, fields)
