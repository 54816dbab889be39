"""The steps of one poll pass as Prefect tasks, over the flow run's runtime (tasks/runtime.py)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from connectors import poll
from connectors.protocol import ensure_protocol_indices, stale
from connectors.registry import registered_sources
from tasks.runtime import current, prefect_secret, run_logger


@task(name="heartbeat-and-publish", cache_policy=NO_CACHE)
async def heartbeat_and_publish() -> dict[str, str]:
    """Create the protocol indices if needed, refresh `last_seen`, publish schemas."""
    runtime = current()
    await ensure_protocol_indices(runtime.es, runtime.settings.protocol)
    connectors, _ = runtime.protocol
    statuses = await poll.heartbeat_and_publish(runtime.settings, connectors, prefect_secret)
    run_logger().info("%d connectors: %s", len(statuses), statuses)
    return statuses


@task(name="create-due-jobs", cache_policy=NO_CACHE)
async def create_due_jobs() -> dict[str, list[str]]:
    """`sync_now` flags and due schedules become pending jobs, once each."""
    outcome = await poll.create_due_jobs(*current().protocol)
    if outcome.on_demand or outcome.scheduled:
        run_logger().info(
            "new jobs: on demand %s, scheduled %s", outcome.on_demand, outcome.scheduled
        )
    return {"on_demand": outcome.on_demand, "scheduled": outcome.scheduled}


@task(name="fail-stale-jobs", cache_policy=NO_CACHE)
async def fail_stale_jobs() -> list[str]:
    runtime = current()
    _, jobs = runtime.protocol
    failed = await stale.fail_stale_jobs(jobs, runtime.settings.service.stale_job_seconds)
    return [job.id for job in failed]


@task(name="claim-jobs", cache_policy=NO_CACHE)
async def claim_jobs(capacity: int) -> list[dict[str, str]]:
    """Claim up to `capacity` jobs for this service, at most one per connector."""
    if capacity <= 0:
        return []
    runtime = current()
    _, jobs = runtime.protocol
    service_types = list(registered_sources(runtime.settings.sources))
    claimed = await poll.claim_jobs(jobs, capacity, service_types)
    return [
        {
            "job_id": job.id,
            "connector_id": job.connector_id,
            "service_type": job.service_type,
            "claim": job.claim,
            "job_type": job.job_type,
        }
        for job in claimed
    ]
