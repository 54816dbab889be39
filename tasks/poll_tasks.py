"""The steps of one poll pass as Prefect tasks."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from connectors import poll
from connectors.protocol import ensure_protocol_indices, stale
from connectors.runner import protocol_for
from tasks.common import elasticsearch


@task(name="heartbeat-and-publish", cache_policy=NO_CACHE)
async def heartbeat_and_publish(config_file: str | None) -> dict[str, str]:
    """Create the protocol indices if needed, refresh `last_seen`, publish schemas."""
    async with elasticsearch(config_file) as (es, settings):
        await ensure_protocol_indices(es, settings.protocol)
        connectors, _ = protocol_for(es, settings)
        statuses = await poll.heartbeat_and_publish(settings, connectors)
    get_run_logger().info("%d connectors: %s", len(statuses), statuses)
    return statuses


@task(name="create-due-jobs", cache_policy=NO_CACHE)
async def create_due_jobs(config_file: str | None) -> dict[str, list[str]]:
    """`sync_now` flags and due schedules become pending jobs, once each."""
    async with elasticsearch(config_file) as (es, settings):
        outcome = await poll.create_due_jobs(*protocol_for(es, settings))
    if outcome.on_demand or outcome.scheduled:
        get_run_logger().info(
            "new jobs: on demand %s, scheduled %s", outcome.on_demand, outcome.scheduled
        )
    return {"on_demand": outcome.on_demand, "scheduled": outcome.scheduled}


@task(name="fail-stale-jobs", cache_policy=NO_CACHE)
async def fail_stale_jobs(config_file: str | None) -> list[str]:
    async with elasticsearch(config_file) as (es, settings):
        _, jobs = protocol_for(es, settings)
        failed = await stale.fail_stale_jobs(jobs, settings.service.stale_job_seconds)
    return [job.id for job in failed]


@task(name="claim-jobs", cache_policy=NO_CACHE)
async def claim_jobs(config_file: str | None, capacity: int) -> list[dict[str, str]]:
    """Claim up to `capacity` jobs for this service, at most one per connector."""
    if capacity <= 0:
        return []
    async with elasticsearch(config_file) as (es, settings):
        _, jobs = protocol_for(es, settings)
        claimed = await poll.claim_jobs(jobs, capacity, list(settings.sources))
    return [
        {"job_id": job.id, "connector_id": job.connector_id, "service_type": job.service_type}
        for job in claimed
    ]
