"""Cleanup of syncs that stopped without finishing: stale jobs and orphaned connector locks."""

from __future__ import annotations

import logging

from connectors.protocol import clock
from connectors.protocol.job import Job, JobIndex
from connectors.protocol.states import ACTIVE, IllegalTransition
from connectors.protocol.states import JobStatus as S

logger = logging.getLogger(__name__)


async def fail_stale_jobs(jobs: JobIndex, threshold_seconds: float) -> list[Job]:
    """Mark running jobs without a recent heartbeat (or whose connector is gone) `error`."""
    cutoff = clock.iso(clock.now() - __import__("datetime").timedelta(seconds=threshold_seconds))
    active = await jobs.search({"terms": {"status": [s.value for s in ACTIVE]}}, size=1000)
    failed = []
    for job in active:
        connector = await jobs.connectors.get(job.connector_id)
        if connector is None:
            reason = f"connector {job.connector_id} was deleted while the job was running"
        elif (job.doc.get("last_seen") or job.doc.get("started_at") or "") < cutoff:
            reason = (
                f"no heartbeat from worker {job.doc.get('worker_hostname')} since "
                f"{job.doc.get('last_seen')} (more than {threshold_seconds:.0f}s): "
                "the sync process stopped without finishing"
            )
        else:
            continue
        try:
            failed.append(await jobs.finish(job.id, S.ERROR, error=reason))
        except IllegalTransition:
            continue
        logger.warning("job %s marked error: %s", job.id, reason)
    await _unlock_orphans(jobs, cutoff)
    return failed


async def _unlock_orphans(jobs: JobIndex, cutoff: str) -> None:
    """A connector locked `in_progress` with no running job (claimer died mid-claim)."""
    for connector in await jobs.connectors.all():
        if connector.doc.get("last_sync_status") != S.IN_PROGRESS.value:
            continue
        if (connector.doc.get("sync_locked_at") or "") >= cutoff:
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
        if not running:
            await jobs.connectors.update(
                connector,
                {
                    "last_sync_status": S.ERROR.value,
                    "sync_locked_at": None,
                    "last_sync_error": "sync lock released: no running job",
                },
            )
