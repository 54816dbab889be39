"""Flow `sync`: one job of one connector, one task run per stage of DESIGN.md §4.

Run with `job_id` (a job the poller claimed) it syncs that job. Run without it, as
`prefect deployment run sync/<service_type>` does, it creates and claims an on-demand job for
every configured connector of that service type (or just `connector_id`) and syncs each one as a
child flow run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable

from prefect import flow, get_run_logger, runtime, tags
from prefect.client.orchestration import get_client
from prefect.states import Cancelled

from connectors.protocol import JobStatus
from connectors.protocol.watch import JobWatch
from connectors.runner import protocol_for
from connectors.sync import SyncCanceled, SyncProgress, describe_error
from tasks.common import elasticsearch
from tasks.live import LiveJob, register, unregister
from tasks.sync_tasks import (
    check_changed,
    delete_stale_documents,
    report,
    snapshot,
    stream_documents,
)

RUNNABLE_STATUSES = ("configured", "connected", "error")


class SyncFailed(RuntimeError):
    """The job ended `error`; the message is the job's error."""


def run_name() -> str:
    parameters = runtime.flow_run.parameters
    if parameters.get("job_id"):
        return (
            f"{parameters.get('service_type') or 'sync'}-{parameters.get('connector_id')}"
            f"-job-{parameters['job_id']}"
        )
    return f"sync-{parameters.get('connector_id') or parameters.get('service_type') or 'all'}"


def run_tags(job_id: str, connector_id: str, service_type: str) -> list[str]:
    return [f"job:{job_id}", f"connector:{connector_id}", f"service_type:{service_type}"]


def prefect_cancel_check() -> Callable[[], Awaitable[bool]]:
    """A check for whether this flow run, or a run it is a child of, was cancelled from the
    Prefect UI or CLI (a deployment run of `sync/<type>` runs each job as a child flow run).
    Prefect does not enforce cancellation of in-process runs, so the job watch asks."""
    lineage: list = []

    async def cancel_requested() -> bool:
        async with get_client() as client:
            if not lineage and runtime.flow_run.id:
                run = await client.read_flow_run(runtime.flow_run.id)
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
):
    """Sync one claimed job, or every configured connector of a service type (see module doc)."""
    if job_id is None:
        return await sync_connectors(service_type, connector_id, config_file)
    return await sync_job(job_id, config_file)


async def sync_job(job_id: str, config_file: str | None):
    logger = get_run_logger()
    started = time.monotonic()
    async with elasticsearch(config_file) as (es, settings):
        _, jobs = protocol_for(es, settings)
        job = await jobs.get(job_id)
        if job is None or job.status not in (JobStatus.IN_PROGRESS, JobStatus.CANCELING):
            raise SyncFailed(
                f"job {job_id} is {job.status.value if job else 'missing'}, not claimed for running"
            )
        metadata = {
            "flow_run_id": str(runtime.flow_run.id),
            "flow_run_url": runtime.flow_run.ui_url,
        }
        await jobs.set_metadata(job_id, metadata)
        progress = SyncProgress()
        cancel_requested = prefect_cancel_check()
        watch = JobWatch(
            jobs,
            job,
            progress.job_counters,
            settings.service.heartbeat_interval,
            stop_requested=cancel_requested,
        )
        register(job_id, LiveJob(progress, watch.is_canceled))
        status, error, cursor = JobStatus.COMPLETED, None, None
        try:
            async with watch:
                check = await check_changed(job.connector_id, config_file)
                if check["changed"]:
                    with tempfile.TemporaryDirectory(prefix="elastic-ingest-") as workdir:
                        taken = await snapshot(job.index_name, workdir, config_file)
                        await stream_documents(job_id, job.connector_id, taken, config_file)
                        await delete_stale_documents(job_id, job.index_name, taken, config_file)
                else:
                    logger.info("nothing changed since the last sync; nothing to do")
                cursor = check["cursor"]
        except SyncCanceled:
            status = JobStatus.CANCELED
        except Exception as failure:
            status, error = JobStatus.ERROR, describe_error(failure)
        except BaseException:  # process stopping or run cancelled by Prefect: never lose the job
            canceled = watch.canceled or await _answer(cancel_requested)
            stopped = JobStatus.CANCELED if canceled else JobStatus.SUSPENDED
            await asyncio.shield(
                jobs.finish(
                    job_id, stopped, progress.job_counters(), f"sync stopped: {stopped.value}"
                )
            )
            raise
        finally:
            unregister(job_id)
    final = await report(
        job_id,
        status.value,
        progress.to_dict(),
        error,
        cursor,
        time.monotonic() - started,
        config_file,
    )
    summary = {"job_id": job_id, "status": final, **progress.to_dict(), "error": error}
    if final == JobStatus.ERROR.value:
        raise SyncFailed(error)
    if final == JobStatus.CANCELED.value:
        return Cancelled(message=f"job {job_id} canceled; nothing was deleted", data=summary)
    return summary


async def _answer(check: Callable[[], Awaitable[bool]]) -> bool:
    """The check's answer, or False if Prefect cannot be asked (the process is stopping)."""
    try:
        return await check()
    except Exception:
        return False


async def sync_connectors(service_type: str | None, connector_id: str | None, config_file):
    """Create, claim and run an on-demand job per matching connector, each as a child run."""
    logger = get_run_logger()
    async with elasticsearch(config_file) as (es, settings):
        connectors, jobs = protocol_for(es, settings)
        if connector_id:
            found = await connectors.get(connector_id)
            targets = [found] if found else []
        else:
            targets = await connectors.all(service_type)
        claimed = []
        for connector in targets:
            if connector.status not in RUNNABLE_STATUSES:
                logger.warning("connector %s is %s; skipped", connector.id, connector.status)
                continue
            new_job = await jobs.get(await jobs.create(connector, "full", "on_demand"))
            job = await jobs.claim(new_job)
            if job is None:
                logger.warning("connector %s is already syncing; skipped", connector.id)
                await jobs.transition(
                    new_job.id, JobStatus.CANCELED, {"error": "connector was already syncing"}
                )
                continue
            claimed.append(job)
    if not claimed:
        logger.warning(
            "no runnable connector matched (service_type=%s, connector_id=%s)",
            service_type,
            connector_id,
        )
    results, failures = [], []
    for job in claimed:
        with tags(*run_tags(job.id, job.connector_id, job.service_type)):
            try:
                results.append(await sync(job.id, job.connector_id, job.service_type, config_file))
            except Exception as failure:
                failures.append(f"{job.connector_id}: {failure}")
    if failures:
        raise SyncFailed("; ".join(failures))
    return results
