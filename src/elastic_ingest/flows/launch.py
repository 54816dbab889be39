"""Launching claimed jobs as runs of the `sync/...` deployments, and how many a work pool can
start now: the poller claims no more jobs than the pool has free slots, so a claimed job never
waits in a queue long enough to look stale, and the jobs still waiting show `pending`."""

from __future__ import annotations

import datetime

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.states import Crashed

from elastic_ingest.flows.runs import GENERIC_DEPLOYMENT, deployment_named, run_tags
from elastic_ingest.tasks.runtime import run_logger

OCCUPYING = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]
"""States of a run that holds (or is due to take) a slot of its pool; SCHEDULED counts only
once its start time has passed (a run waiting for a slot is SCHEDULED, named Late)."""


async def free_slots(in_process: int) -> int:
    """How many jobs to claim in this pass: the free slots of the work pool of the generic sync
    deployment when that pool has a concurrency limit; `in_process` (the loop's own limit) when
    it has none or there is no deployment to launch on."""
    deployment = await deployment_named(GENERIC_DEPLOYMENT)
    if deployment is None or not deployment.work_pool_name:
        return in_process
    async with get_client() as client:
        pool = await client.read_work_pool(deployment.work_pool_name)
        if pool.concurrency_limit is None:
            return in_process
        busy = await client.count_flow_runs(  # sync runs only: a poll pass holds a slot briefly
            flow_filter=FlowFilter(name=FlowFilterName(any_=["sync"])),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool.name])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=OCCUPYING)),
                expected_start_time=FlowRunFilterExpectedStartTime(
                    before_=datetime.datetime.now(datetime.UTC)
                ),
            ),
        )
    return max(0, pool.concurrency_limit - busy)


async def launch_through_deployments(claimed: list[dict], config_file: str | None) -> list[dict]:
    """Start a deployment run for each job: on `sync/<service_type>` when it exists, else on
    the generic `sync/connector` (plugin sources); return the jobs left to run in this process
    (no deployment at all, or one that refused the run)."""
    local, known = [], {}
    for job in claimed:
        name = None
        for candidate in (f"sync/{job['service_type']}", GENERIC_DEPLOYMENT):
            if candidate not in known:
                known[candidate] = await deployment_named(candidate) is not None
            if known[candidate]:
                name = candidate
                break
        if name is None:
            local.append(job)
            continue
        try:
            run = await run_deployment(
                name,
                parameters={**job, "config_file": config_file},
                timeout=0,
                as_subflow=False,
                idempotency_key=f"{job['job_id']}:{job['claim']}",  # a re-claim is a new run
                tags=job_tags(job),
            )
        except Exception as error:  # a claimed job must run somewhere: here, then
            run_logger().warning(
                "job %s: %s refused the run (%s); running it here", job["job_id"], name, error
            )
            local.append(job)
            continue
        run_logger().info("job %s launched as flow run %s on %s", job["job_id"], run.id, name)
    return local


def job_tags(job: dict) -> list[str]:
    return run_tags(
        job["job_id"], job["connector_id"], job["service_type"], job.get("job_type", "full")
    )


async def crash_runs_of(stale_jobs: list[dict]) -> None:
    """Mark the flow runs of jobs failed as stale `Crashed`: their process is gone (a worker
    killed, a machine lost), so Prefect would show them running and keep their pool slots."""
    async with get_client() as client:
        for job in stale_jobs:
            if not job.get("flow_run_id"):
                continue
            try:
                run = await client.read_flow_run(job["flow_run_id"])
                if run.state is None or not run.state.is_final():
                    message = f"job {job['job_id']}: its sync process stopped without finishing"
                    await client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            except Exception as error:  # the job is failed already; this is for the UI only
                run_logger().warning("flow run of job %s: %s", job["job_id"], error)
