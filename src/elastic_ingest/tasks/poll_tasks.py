"""The steps of one poll pass as Prefect tasks, over the flow run's runtime (tasks/runtime.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound

from elastic_ingest.connectors import poll
from elastic_ingest.connectors.protocol import ensure_protocol_indices, stale
from elastic_ingest.connectors.registry import registered_sources
from elastic_ingest.tasks.runtime import current, prefect_secret, run_logger

if TYPE_CHECKING:
    from elastic_ingest.connectors.protocol import Job

STARTING = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]


@task(name="heartbeat-and-publish", cache_policy=NO_CACHE)
async def heartbeat_and_publish() -> dict[str, str]:
    """Create the protocol indices if needed, refresh `last_seen`, publish schemas."""
    runtime = current()
    await ensure_protocol_indices(runtime.es, runtime.settings.protocol)
    connectors, _ = runtime.protocol
    statuses = await poll.heartbeat_and_publish(runtime.settings, connectors, prefect_secret)
    run_logger().info("%d connectors: %s", len(statuses), status_summary(statuses))
    return statuses


def status_summary(statuses: dict[str, str], named: int = 5) -> str:
    """`28 connected, 2 error (a1, b2)`: one short line per pass, however many connectors;
    the ids are named only for statuses other than connected."""
    by_status: dict[str, list[str]] = {}
    for connector_id, status in statuses.items():
        by_status.setdefault(status, []).append(connector_id)
    parts = []
    for status, ids in sorted(by_status.items(), key=lambda item: -len(item[1])):
        shown = "" if status == "connected" else f" ({', '.join(ids[:named])}"
        if shown:
            shown += ", ...)" if len(ids) > named else ")"
        parts.append(f"{len(ids)} {status}{shown}")
    return ", ".join(parts) or "none"


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
async def fail_stale_jobs() -> list[dict[str, str | None]]:
    """The jobs failed as stale, each with the flow run it had (to be marked crashed)."""
    runtime = current()
    _, jobs = runtime.protocol
    service = runtime.settings.service
    failed = await stale.fail_stale_jobs(
        jobs,
        service.stale_job_seconds,
        queued_run=queued_run if service.use_deployments else None,
        launch_timeout=service.launch_timeout,
        ended_run=ended_run,
        quiet_seconds=3 * service.heartbeat_interval,
    )
    return [
        {"job_id": job.id, "flow_run_id": (job.doc.get("metadata") or {}).get("flow_run_id")}
        for job in failed
    ]


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


async def queued_run(job: Job) -> str | None:
    """The id of a flow run launched for this job that has not reached the job yet: waiting for
    a slot of its work pool or a worker (Scheduled, Pending), or starting (Running, before the
    sync recorded itself on the job). Runs carry their job's id as a tag."""
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[f"job:{job.id}"]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=STARTING)),
            ),
            limit=1,
        )
    return str(runs[0].id) if runs else None


async def ended_run(job: Job) -> str | None:
    """Why the job's flow run ended while the job still runs (the run's process died), or None:
    the run goes on, or the job records no run."""
    run_id = (job.doc.get("metadata") or {}).get("flow_run_id")
    if not run_id:
        return None
    try:
        async with get_client() as client:
            run = await client.read_flow_run(UUID(run_id))
    except (ObjectNotFound, ValueError):
        return None
    if run.state is None or not run.state.is_final():
        return None
    return (
        f"its flow run {run.name} ended {run.state.name} before the job did "
        f"({run.state.message or 'no message'}): the sync process stopped without finishing"
    )
