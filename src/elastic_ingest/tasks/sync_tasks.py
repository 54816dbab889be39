"""The stages of a sync (docs/architecture.md), each a call into the flow run's job stages
(connectors/job/stages.py), a log line and a small value. The stage that reads the source is a
task run: it takes the time, streams its progress, and is where a UI user looks. The short ones
around it (check-changed, snapshot-index, plan-partitions, delete-stale, report-status) run as
plain calls in the flow run, with the retries they had as tasks (report-status waits out an
outage in JobRun.finish itself): a task run costs the Prefect server three state events and a
log line, which for many small syncs was about a fifth of its work (README, "Many small
connectors")."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from elastic_ingest.connectors.errors import describe_error
from elastic_ingest.connectors.es.errors import is_transient
from elastic_ingest.connectors.job.run import JobRun
from elastic_ingest.connectors.protocol import JobStatus
from elastic_ingest.tasks.runtime import current_job, run_logger

PROGRESS_EVERY_SECONDS = 2.0
RETRY_DELAY_SECONDS = 2.0
T = TypeVar("T")


async def retrying(
    stage: str, call: Callable[[], Awaitable[T]], retries: int, delay: float = RETRY_DELAY_SECONDS
) -> T:
    """`call()`, again after `delay` s up to `retries` times when it fails with network trouble;
    a configuration or data mistake fails at once."""
    for attempt in range(retries + 1):
        try:
            return await call()
        except Exception as error:
            if attempt == retries or not is_transient(error):
                raise
            run_logger().warning("%s: %s; retrying in %.0f s", stage, describe_error(error), delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # the last attempt returned or raised


async def check_changed(job_id: str) -> bool:
    """Reach the source and ask whether anything changed since the last successful sync."""
    run = current_job(job_id)
    changed = await retrying("check-changed", run.stages.check_changed, retries=2)
    get_run_logger().info("source changed since last sync: %s", changed)
    return changed


async def snapshot_index(job_id: str) -> int:
    """Create the index if needed, then record what it holds (ids and versions) on disk."""
    run = current_job(job_id)
    count = await retrying("snapshot-index", run.stages.snapshot_index, retries=2)
    get_run_logger().info("index %s holds %d documents", run.setup.inputs.index_name, count)
    return count


@task(name="stream-and-index", cache_policy=NO_CACHE)
async def write_documents(job_id: str) -> dict:
    """Stream the source, skip unchanged documents, bulk-write the rest; counts come back."""
    run = current_job(job_id)
    follower = ProgressFollower(run)
    watching = asyncio.create_task(follower.follow())
    try:
        counts = await run.stages.write_documents()
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        progress = run.progress
        await follower.done(f"{progress.seen} documents read")
    get_run_logger().info(
        "read %d, indexed %d (%d new), skipped %d unchanged, fetched %d (%d left unfetched), "
        "%d excluded by sync rules, %d rejected",
        progress.seen,
        progress.indexed,
        progress.created,
        progress.skipped,
        progress.fetched,
        progress.not_fetched,
        sum(progress.filtered.values()),
        progress.failed,
    )
    return {key: value for key, value in counts.items() if key != "failures"}


async def plan_partitions(job_id: str) -> int:
    """How many parts the full listing is read in, at once (1: as one)."""
    run = current_job(job_id)
    parts = await retrying("plan-partitions", run.stages.plan_partitions, retries=2)
    if parts > 1:
        labels = ", ".join(str(part.get("label") or part) for part in run.stages.parts)
        get_run_logger().info("the source is read in %d parts at once: %s", parts, labels)
    return parts


@task(
    name="stream-and-index-part",
    task_run_name="stream-and-index-part-{number}",
    cache_policy=NO_CACHE,
)
async def write_partition(job_id: str, number: int) -> dict:
    """One part of a partitioned full sync: stream it, upsert what is new or changed."""
    counts = await current_job(job_id).stages.write_partition(number)
    get_run_logger().info("part %d read to its end", number + 1)
    return {key: value for key, value in counts.items() if key != "failures"}


class ProgressFollower:
    """The progress artifact of a stage that streams documents, moved every few seconds. It
    appears only once the stage has run that long: a sync over in under two seconds has its
    report and no progress bar (two API calls fewer, which many small syncs add up)."""

    def __init__(self, run: JobRun):
        self.run = run
        self.artifact = None

    async def follow(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_SECONDS)
            progress = self.run.progress
            expected = self.run.stages.indexed_before
            percent = min(99.0, 100.0 * progress.seen / expected) if expected else 0.0
            description = f"{progress.seen} documents read, {progress.indexed} indexed"
            if self.artifact is None:
                self.artifact = await create_progress_artifact(
                    percent, description="documents read from source"
                )
            await update_progress_artifact(self.artifact, percent, description)

    async def done(self, description: str) -> None:
        if self.artifact is not None:
            await update_progress_artifact(self.artifact, 100.0, description)


@task(name="write-changes", cache_policy=NO_CACHE)
async def write_changes(job_id: str) -> dict:
    """Incremental: upsert what changed since the cursor, delete what the source reports gone."""
    run = current_job(job_id)
    counts = await run.stages.write_changes()
    progress = run.progress
    get_run_logger().info(
        "listed %d changed since the cursor, indexed %d (%d new), %d already indexed, "
        "%d deleted, %d rejected",
        progress.seen,
        progress.indexed,
        progress.created,
        progress.skipped,
        progress.deleted,
        progress.failed,
    )
    return {key: value for key, value in counts.items() if key != "failures"}


@task(name="list-ids", cache_policy=NO_CACHE)
async def list_ids(job_id: str) -> int:
    """Deletion: list the source's ids only; nothing is fetched or written."""
    listed = await current_job(job_id).stages.list_ids()
    get_run_logger().info("the source lists %d ids", listed)
    return listed


@task(name="write-identities", cache_policy=NO_CACHE)
async def write_identities(job_id: str) -> dict:
    """Access control: each user's identities into the connector's `.search-acl-filter-` index."""
    run = current_job(job_id)
    counts = await run.stages.write_identities()
    progress = run.progress
    get_run_logger().info(
        "listed %d users, wrote %d (%d new), %d unchanged",
        progress.seen,
        progress.indexed,
        progress.created,
        progress.skipped,
    )
    return {key: value for key, value in counts.items() if key != "failures"}


async def delete_stale(job_id: str) -> int:
    """Delete what the source no longer has; refuses unless the source was read to the end."""
    deleted = await retrying("delete-stale", current_job(job_id).stages.delete_stale, retries=1)
    get_run_logger().info("deleted %d documents the source no longer has", deleted)
    return deleted


async def finish(job_id: str) -> JobStatus:
    """Finish the job (mirrored onto the connector) and publish the sync report."""
    run = current_job(job_id)
    status = await run.finish()  # waits out Elasticsearch being away itself: no retry on top
    counts = run.progress.report()
    rows = [
        {"measure": name, "value": counts[name]}
        for name in (
            "seen",
            "created",
            "updated",
            "skipped",
            "fetched",
            "not_fetched",
            "filtered",
            "deleted",
            "failed",
            "volume",
        )
    ]
    rows.insert(0, {"measure": "job_type", "value": run.kind.value})
    receipt = run.stages.receipt if run.stages else None
    if receipt and "error" not in receipt:
        rows.append({"measure": "receipt", "value": _receipt_line(receipt)})
    error = run.outcome.error
    await create_table_artifact(
        rows,
        key=report_key(run.setup.inputs.connector_id if run.setup else job_id),
        description=f"job {job_id} ({run.kind.value}): {status.value}"
        + (f" ({error})" if error else ""),
    )
    if counts["failures"]:
        lines = "\n".join(
            f"| `{f['id']}` | {f['status']} | {f['reason']} |" for f in counts["failures"]
        )
        await create_markdown_artifact(
            f"### Documents Elasticsearch rejected\n\n| id | status | reason |\n|---|---|---|\n"
            f"{lines}\n",
            description=f"job {job_id}: rejected documents",
        )
    get_run_logger().info("job %s finished: %s", job_id, status.value)
    return status


def _receipt_line(receipt: dict) -> str:
    """The parity receipt in one cell: both digests, and whether they match."""
    verdict = "match" if receipt["matches"] else f"DIFFER: {receipt['warning']}"
    return (
        f"{verdict} (source {receipt['source_count']} {receipt['source_digest']}, "
        f"index {receipt['index_count']} {receipt['index_digest']})"
    )


def report_key(connector_id: str) -> str:
    """One artifact key per connector, so the Artifacts page shows each connector's history
    (keys allow lowercase letters, digits and dashes)."""
    return "sync-report-" + re.sub(r"[^a-z0-9-]", "-", connector_id.lower())[:60]


class TaskStages:
    """A job's stages as the flow run calls them, for `JobRun.run(stages=...)`."""

    def __init__(self, job_id: str):
        self.job_id = job_id

    async def check_changed(self) -> bool:
        return await check_changed(self.job_id)

    async def snapshot_index(self) -> int:
        return await snapshot_index(self.job_id)

    async def write_documents(self) -> dict:
        return await write_documents(self.job_id)

    async def plan_partitions(self) -> int:
        return await plan_partitions(self.job_id)

    async def write_partition(self, number: int) -> dict:
        return await write_partition(self.job_id, number)

    async def write_changes(self) -> dict:
        return await write_changes(self.job_id)

    async def list_ids(self) -> int:
        return await list_ids(self.job_id)

    async def write_identities(self) -> dict:
        return await write_identities(self.job_id)

    async def delete_stale(self) -> int:
        return await delete_stale(self.job_id)

    async def finish(self) -> JobStatus:
        return await finish(self.job_id)
