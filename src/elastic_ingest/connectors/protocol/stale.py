"""Cleanup of syncs that stopped without finishing: stale jobs and orphaned connector locks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from elastic_ingest.connectors.es.documents import VersionConflict
from elastic_ingest.connectors.protocol import clock
from elastic_ingest.connectors.protocol.job import Job, JobIndex
from elastic_ingest.connectors.protocol.states import ACTIVE, IllegalTransition
from elastic_ingest.connectors.protocol.states import JobStatus as S

logger = logging.getLogger(__name__)


QueuedRun = Callable[[Job], Awaitable[str | None]]
"""The id of the job's launched run while it still waits for a worker, else None."""

EndedRun = Callable[[Job], Awaitable[str | None]]
"""Why the job's run ended while the job is still running (its process died: killed, out of
memory, a pod evicted), said in one line; None while the run goes on."""


async def fail_stale_jobs(
    jobs: JobIndex,
    threshold_seconds: float,
    queued_run: QueuedRun | None = None,
    launch_timeout: float = 600.0,
    ended_run: EndedRun | None = None,
    quiet_seconds: float = 6.0,
) -> list[Job]:
    """Mark running jobs without a recent heartbeat (or whose connector is gone) `error`. The
    worker, if it ever comes back, finds the job no longer its own and stops (see JobLost).

    A claimed job whose run was launched on a deployment and still waits for a worker (a full
    work pool) is not stale; after `launch_timeout` seconds of waiting it fails, naming the run.
    A job quiet for `quiet_seconds` whose run has ended (`ended_run`) fails at once, with the
    run's own reason, instead of after `threshold_seconds`.
    """
    cutoff = clock.now() - timedelta(seconds=threshold_seconds)
    quiet_since = clock.now() - timedelta(seconds=quiet_seconds)
    failed = []
    for job in await jobs.active():
        try:
            waiting = await _waiting_run(job, cutoff, queued_run)
            if waiting is not None:
                finished = await _fail_if_waited_too_long(jobs, job, waiting, launch_timeout)
            else:
                finished = await _fail_if_run_ended(
                    jobs, job, quiet_since, ended_run
                ) or await _fail_if_stale(jobs, job, cutoff, threshold_seconds)
            if finished is not None:
                failed.append(finished)
        except Exception as error:  # one job must never stop the sweep
            logger.warning("job %s: stale check failed: %s", job.id, error)
    await _unlock_orphans(jobs, cutoff)
    return failed


async def _waiting_run(job: Job, cutoff: datetime, queued_run: QueuedRun | None) -> str | None:
    """The run of a job that looks stale only because its run has not started yet."""
    last_seen = clock.parse(job.doc.get("last_seen") or job.doc.get("started_at"))
    started = (job.doc.get("metadata") or {}).get("flow_run_id")  # recorded when a run starts
    if queued_run is None or started or (last_seen is not None and last_seen >= cutoff):
        return None
    return await queued_run(job)


async def _fail_if_waited_too_long(
    jobs: JobIndex, job: Job, run_id: str, launch_timeout: float
) -> Job | None:
    claimed_at = clock.parse(job.doc.get("started_at"))
    if claimed_at is None or clock.now() - claimed_at < timedelta(seconds=launch_timeout):
        return None  # waiting for a free slot or a worker: alive
    reason = (
        f"flow run {run_id} waited more than {launch_timeout:.0f}s for a worker to start it: "
        "is a worker running on the deployment's work pool?"
    )
    return await _finish(jobs, job, reason)


async def _fail_if_run_ended(
    jobs: JobIndex, job: Job, quiet_since: datetime, ended_run: EndedRun | None
) -> Job | None:
    last_seen = clock.parse(job.doc.get("last_seen") or job.doc.get("started_at"))
    if ended_run is None or (last_seen is not None and last_seen >= quiet_since):
        return None  # a heartbeat is recent: the run is alive, nothing to ask
    reason = await ended_run(job)
    return await _finish(jobs, job, reason) if reason else None


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
    return await _finish(jobs, job, reason)


async def _finish(jobs: JobIndex, job: Job, reason: str) -> Job | None:
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
