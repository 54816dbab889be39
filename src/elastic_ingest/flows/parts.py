"""The parts of a partitioned full sync as flow runs of the sync deployments: the work pool
places each on any worker, in a process of its own, on any machine. Without a deployment, with
`use_deployments: false`, or on a pool with a concurrency limit, the parts run as task runs of
the job's own flow run instead."""

from __future__ import annotations

import asyncio

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.states import Cancelling

from elastic_ingest.connectors.job.stages import PartitionFailed
from elastic_ingest.flows.runs import GENERIC_DEPLOYMENT, deployment_named, run_tags
from elastic_ingest.tasks.runtime import current, current_job
from elastic_ingest.tasks.sync_tasks import TaskStages

POLL_SECONDS = 1.0


class DistributedStages(TaskStages):
    """TaskStages whose parts run on the work pool when a sync deployment can take them."""

    async def write_partition(self, number: int) -> dict:
        deployment = await _part_deployment()
        if deployment is None:
            return await super().write_partition(number)
        return await run_part_elsewhere(self.job_id, number, deployment)


async def _part_deployment() -> str | None:
    """`sync/<service_type>` or the generic `sync/connector`, when the service launches syncs
    through deployments, one exists, and its pool has no concurrency limit: under a limit, the
    job's own run holds a slot, and parts waiting for slots that running jobs hold would never
    start."""
    runtime = current()
    if not runtime.settings.service.use_deployments:
        return None
    for name in (f"sync/{runtime.job.setup.inputs.service_type}", GENERIC_DEPLOYMENT):
        deployment = await deployment_named(name)
        if deployment is None:
            continue
        if deployment.work_pool_name:
            async with get_client() as client:
                pool = await client.read_work_pool(deployment.work_pool_name)
            if pool.concurrency_limit is not None:
                get_run_logger().info(
                    "work pool %s has a concurrency limit: the parts run in this flow run",
                    pool.name,
                )
                return None
        return name
    return None


@task(name="part-on-the-pool", task_run_name="part-{number}-on-the-pool", cache_policy=NO_CACHE)
async def run_part_elsewhere(job_id: str, number: int, deployment: str) -> dict:
    """Run one part as a flow run of `deployment` and wait for its end (cancelled with this
    task); its counts come back through the job document (a worker on another machine keeps
    its results to itself)."""
    run = current_job(job_id)
    part = run.stages.parts[number]
    inputs = run.setup.inputs
    child = await run_deployment(
        deployment,
        parameters={
            "job_id": job_id,
            "claim": run.claim,
            "part": part,
            "config_file": current().config_file,
        },
        timeout=0,
        as_subflow=True,
        tags=[*run_tags(job_id, inputs.connector_id, inputs.service_type, "full"), "part"],
    )
    label = f"part {number + 1} of {len(run.stages.parts)} ({part.get('label') or part})"
    async with get_client() as client:
        try:
            while child.state is None or not child.state.is_final():
                await asyncio.sleep(POLL_SECONDS)
                child = await client.read_flow_run(child.id)
        except asyncio.CancelledError:  # another part failed, or the job stops
            await client.set_flow_run_state(child.id, Cancelling(), force=True)
            raise
    if not child.state.is_completed():
        raise PartitionFailed(
            f"{label}: flow run {child.name} ended {child.state.name}: {child.state.message}"
        )
    counts = await run.jobs.part_counts(job_id, str(child.id))
    if counts is None:
        raise PartitionFailed(f"{label}: flow run {child.name} left no counts on the job")
    get_run_logger().info("%s synced by flow run %s", label, child.name)
    return counts
