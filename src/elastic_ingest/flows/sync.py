"""Flow `sync`: one job of one connector, through the stages of docs/architecture.md.

Run with `job_id` (a job the poller claimed) it syncs that job. Run without it, as
`prefect deployment run sync/<service_type>` does, it creates and claims an on-demand job for
every configured connector of that service type (or just `connector_id`) and syncs each one as a
child flow run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from prefect import flow, get_run_logger, tags
from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed

from elastic_ingest.connectors.errors import describe_error
from elastic_ingest.connectors.job.run import JobRun
from elastic_ingest.connectors.job.setup import JobSetup
from elastic_ingest.connectors.protocol import (
    IllegalTransition,
    JobLost,
    JobStatus,
    JobType,
    TriggerMethod,
)
from elastic_ingest.connectors.protocol.states import FINAL, may_sync
from elastic_ingest.deployments.register import SYNC_SLOTS
from elastic_ingest.flows.parts import DistributedStages
from elastic_ingest.flows.runs import JOB_RUNS_FAILED, PART_FAILED, run_tags
from elastic_ingest.tasks.runtime import flow_runtime, prefect_secret


def run_name() -> str:
    parameters = flow_run.parameters
    kind = parameters.get("job_type") or "full"
    if parameters.get("job_id"):  # renamed after its connector once the run starts
        parts = [parameters.get("service_type") or "sync", parameters.get("connector_id")]
        return "-".join([*filter(None, parts), kind, "job", parameters["job_id"]])
    target = parameters.get("connector_id") or parameters.get("service_type") or "all"
    return f"sync-{kind}-{target}"


def prefect_cancel_check() -> Callable[[], Awaitable[bool]]:
    """A check for whether this flow run, or a run it is a child of, was cancelled from the
    Prefect UI or CLI (a deployment run of `sync/<type>` runs each job as a child flow run).
    Prefect does not enforce cancellation of in-process runs, so the job watch asks."""
    lineage: list = []

    async def cancel_requested() -> bool:
        async with get_client() as client:
            if not lineage and flow_run.id:
                run = await client.read_flow_run(flow_run.id)
                lineage.append(run.id)
                while run.parent_task_run_id:
                    parent_task = await client.read_task_run(run.parent_task_run_id)
                    run = await client.read_flow_run(parent_task.flow_run_id)
                    lineage.append(run.id)
            for run_id in lineage:
                state = (await client.read_flow_run(run_id)).state
                if state is not None and (state.is_cancelling() or state.is_cancelled()):
                    return True
        return False

    return cancel_requested


@flow(name="sync", flow_run_name=run_name, log_prints=True)
async def sync(
    job_id: str | None = None,
    connector_id: str | None = None,
    service_type: str | None = None,
    config_file: str | None = None,
    claim: str | None = None,
    job_type: str = "full",
    part: dict | None = None,
):
    """Sync one claimed job, or every configured connector of a service type (see module doc).
    `claim` is the claim the job was launched for; a run of a job that someone else has since
    claimed stops without writing. `job_type` (full, incremental, deletion, access_control) is
    the kind of the jobs a run without `job_id` creates; with `job_id` the job's own kind rules.
    `part`: this run syncs one part of the job's partitioned full sync (flows/parts.py)."""
    if part is not None and job_id is not None:
        return await sync_part(job_id, config_file, claim, part)
    if job_id is None:
        if job_type not in set(JobType):
            return Failed(message=f"job_type {job_type!r}: expected one of {', '.join(JobType)}")
        return await sync_connectors(service_type, connector_id, config_file, JobType(job_type))
    return await sync_job(job_id, config_file, claim)


@contextlib.asynccontextmanager
async def sync_slot():
    """A slot of the SYNC_SLOTS global concurrency limit for the length of the sync, when that
    limit exists (`elastic-ingest deploy --max-syncs N`); nothing to wait for otherwise."""
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(SYNC_SLOTS)
            limited = True
        except ObjectNotFound:
            limited = False
    if not limited:
        yield
        return
    async with concurrency(SYNC_SLOTS, occupy=1, lease_duration=60):
        yield


async def sync_job(job_id: str, config_file: str | None, claim: str | None = None):
    """Run the job's lifecycle (connectors/job/run.py) through the stages of tasks/sync_tasks.py."""
    async with flow_runtime(config_file) as runtime:
        if flow_run.run_count > 1:  # retried from the Prefect UI or CLI
            job_id, claim = await _job_for_retry(runtime, job_id, claim)
        runtime.job = JobRun(
            runtime.es,
            runtime.settings,
            job_id,
            stop_requested=prefect_cancel_check(),
            metadata={
                "flow_run_id": str(flow_run.id),
                "flow_run_url": flow_run.ui_url,
            },
            claim=claim,
            secret_store=prefect_secret,
        )
        try:
            async with sync_slot():  # the job records its start only once it has a slot
                stages = DistributedStages(job_id)
                outcome = await runtime.job.run(stages, on_setup=_name_after_connector)
        except JobLost as lost:
            return Failed(message=f"job {job_id}: {lost}")
        summary = {
            "job_id": job_id,
            "job_type": runtime.job.kind.value,
            "status": outcome.status.value,
            **runtime.job.progress.report(),
            "error": outcome.error,
        }
    if not outcome.changed:
        get_run_logger().info("nothing changed since the last sync; nothing to do")
    if outcome.status == JobStatus.ERROR:  # a state, not an exception: one line, no traceback
        return Failed(message=f"job {job_id}: {outcome.error}", data=summary)
    if outcome.status == JobStatus.CANCELED:
        return Cancelled(message=f"job {job_id} canceled; nothing was deleted", data=summary)
    return Completed(message=_counts_line(summary), data=summary)


async def sync_part(job_id: str, config_file: str | None, claim: str | None, part: dict):
    """One part of a job's partitioned full sync, launched by the job's own run: it takes no
    sync slot (the job holds one) and leaves its counts on the job for that run."""
    async with flow_runtime(config_file) as runtime:
        run = JobRun(runtime.es, runtime.settings, job_id, claim=claim, secret_store=prefect_secret)
        runtime.job = run
        try:
            counts = await run.run_part(part)
        except JobLost as lost:
            return Failed(name=PART_FAILED, message=f"job {job_id}: {lost}")
        except Exception as error:  # one line for the job's run to quote, no traceback
            return Failed(name=PART_FAILED, message=describe_error(error))
        await run.jobs.record_part_counts(job_id, str(flow_run.id), counts)
    return Completed(message=f"part of job {job_id}: {counts['seen']} documents read")


def _counts_line(summary: dict) -> str:
    """The counts a user looks for first, as the run's state message (shown in the UI)."""
    return (
        f"{summary['job_type']}: {summary['created']} new, {summary['updated']} updated, "
        f"{summary['deleted']} deleted, {summary['skipped']} unchanged, "
        f"{summary['fetched']} fetched, {summary['failed']} rejected"
    )


async def _name_after_connector(setup: JobSetup) -> None:
    """Name the run after what a user recognises (the connector's name, its index, the kind);
    the ids stay in the tags. A run that cannot be renamed keeps its first name."""
    inputs = setup.inputs
    label = inputs.connector_name or inputs.connector_id
    target = inputs.index_name if label == inputs.index_name else f"{label} -> {inputs.index_name}"
    try:
        if flow_run.id is not None:
            async with get_client() as client:
                name = f"{target} ({inputs.job_type})"
                await client.update_flow_run(flow_run.id, name=name)
    except Exception as error:  # a name is not worth failing a sync for
        get_run_logger().warning("the run keeps its name: %s", describe_error(error))


async def _job_for_retry(runtime, job_id: str, claim: str | None) -> tuple[str, str | None]:
    """A retried run syncs its connector again. The job it was given keeps the end it had (the
    history stays true); a new on-demand job is claimed for the same connector and run here."""
    connectors, jobs = runtime.protocol
    job = await jobs.get(job_id)
    if job is None or job.problems() or job.status not in FINAL:
        return job_id, claim  # still pending or running: JobRun decides whether it is ours
    connector = await connectors.get(job.connector_id)
    kind = JobType(job.job_type) if job.job_type in set(JobType) else JobType.FULL
    again = await _claim_new_job(jobs, connector, kind) if connector is not None else None
    if again is None:
        return job_id, claim  # connector gone or busy: the run fails saying the job ended
    get_run_logger().info("retry of job %s (%s): runs as new job %s", job_id, job.status, again.id)
    return again.id, again.claim


async def sync_connectors(
    service_type: str | None, connector_id: str | None, config_file, job_type: JobType
):
    """Create, claim and run an on-demand job per matching connector, each as a child run. Each
    job is claimed just before its run, so none waits claimed (without heartbeat) for others."""
    logger = get_run_logger()
    results, failures = [], []
    async with flow_runtime(config_file) as runtime:
        connectors, jobs = runtime.protocol
        if connector_id:
            found = await connectors.get(connector_id)
            mistake = _target_mistake(connector_id, found, service_type)
            if mistake:  # a run given a wrong id must not end green
                return Failed(message=mistake)
            targets = [found]
        else:
            targets = await connectors.all(service_type)
        runnable = [connector for connector in targets if may_sync(connector.status)]
        if len(runnable) < len(targets) or not runnable:
            logger.warning(
                "%d of %d matching connectors can sync (service_type=%s, connector_id=%s)",
                len(runnable),
                len(targets),
                service_type,
                connector_id,
            )
        for connector in runnable:
            job = await _claim_new_job(jobs, connector, job_type)
            if job is None:
                continue
            with tags(*run_tags(job.id, job.connector_id, job.service_type, job.job_type)):
                state = await sync(
                    job.id,
                    job.connector_id,
                    job.service_type,
                    config_file,
                    job.claim,
                    job.job_type,
                    return_state=True,
                )
                if state.is_completed():
                    results.append(await state.result())
                else:  # the child's one line, not its state's data
                    failures.append(f"{job.connector_id}: {state.message or state.name}")
    if failures:  # each job run failed (and notified) on its own
        return Failed(name=JOB_RUNS_FAILED, message="; ".join(failures), data=results)
    return results


def _target_mistake(connector_id: str, connector, service_type: str | None) -> str | None:
    """Why a run asked to sync this one connector cannot, in one line (None: it can)."""
    if connector is None:
        return f"connector {connector_id} does not exist"
    if service_type and connector.service_type != service_type:
        return (
            f"connector {connector_id} is a {connector.service_type!r} connector, not "
            f"{service_type!r}: run sync/{connector.service_type}"
        )
    if not may_sync(connector.status):
        return f"connector {connector_id} is {connector.status}; it cannot sync until configured"
    return None


async def _claim_new_job(jobs, connector, job_type: JobType = JobType.FULL):
    """A new on-demand job for the connector, claimed here; None (and the job canceled) when
    the connector is busy or gone."""
    job_id = await jobs.create(connector, job_type, TriggerMethod.ON_DEMAND)
    job = await jobs.claim(await jobs.get(job_id))
    if job is not None:
        return job
    get_run_logger().warning("connector %s is already syncing; skipped", connector.id)
    try:
        await jobs.request_cancel(job_id)
    except IllegalTransition:
        pass  # a poller claimed it meanwhile: it runs there
    return None
