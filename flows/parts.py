"""The parts of a partitioned full sync as flow runs of the sync deployments: the work pool
places each on any worker, in a process of its own, on any machine. Without a deployment (or
with `use_deployments: false`) the parts run as task runs of the job's own flow run."""

from __future__ import annotations

from elastic_ingest.flows.launch import GENERIC_DEPLOYMENT, _deployment
from elastic_ingest.flows.sync import run_tags
from elastic_ingest.tasks.runtime import current, current_job
from elastic_ingest.tasks.sync_tasks import TaskStages
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment


class DistributedStages(TaskStages):
    """TaskStages whose parts run on the work pool when a sync deployment exists."""

    async def write_partition(self, number: int) -> dict:
        deployment = await _part_deployment()
        if deployment is None:
            return await super().write_partition(number)
        return await run_part_elsewhere(self.job_id, number, deployment)


async def _part_deployment() -> str | None:
    """`sync/<service_type>` or the generic `sync/connector`, when the service launches syncs
    through deployments and one exists."""
    runtime = current()
    if not runtime.settings.service.use_deployments:
        return None
    for name in (f"sync/{runtime.job.inputs.service_type}", GENERIC_DEPLOYMENT):
        if await _deployment(name) is not None:
            return name
    return None


@task(name="part-on-the-pool", task_run_name="part-{number}-on-the-pool", cache_policy=NO_CACHE)
async def run_part_elsewhere(job_id: str, number: int, deployment: str) -> dict:
    """Run one part as a flow run of `deployment` and wait for it; its counts come back
    through the job document (a worker on another machine keeps its results to itself)."""
    run = current_job(job_id)
    part = run.parts[number]
    inputs = run.inputs
    child = await run_deployment(
        deployment,
        parameters={
            "job_id": job_id,
            "claim": run.claim,
            "part": part,
            "config_file": current().config_file,
        },
        timeout=None,
        as_subflow=True,
        tags=[*run_tags(job_id, inputs.connector_id, inputs.service_type, "full"), "part"],
    )
    label = f"part {number + 1} of {len(run.parts)} ({part.get('label') or part})"
    if child.state is None or not child.state.is_completed():
        state = child.state.name if child.state else "unknown"
        message = child.state.message if child.state else ""
        raise RuntimeError(f"{label}: flow run {child.name} ended {state}: {message}")
    counts = await run.jobs.part_counts(job_id, str(child.id))
    if counts is None:
        raise RuntimeError(f"{label}: flow run {child.name} left no counts on the job")
    get_run_logger().info("%s synced by flow run %s", label, child.name)
    return counts
