"""The stages of a full sync as Prefect tasks (DESIGN.md §4): one task run per stage."""

from __future__ import annotations

import asyncio
import time

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from connectors.protocol import JobStatus
from connectors.runner import build_source, load_job_context, protocol_for
from connectors.snapshot import IndexSnapshot, snapshot_index
from connectors.sync import (
    SyncProgress,
    delete_stale,
    index_documents,
    prepare_index,
    refresh,
)
from tasks.common import elasticsearch, transient_only
from tasks.live import live_job

PROGRESS_EVERY_SECONDS = 2.0


@task(
    name="check-changed",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_only,
)
async def check_changed(connector_id: str, config_file: str | None) -> dict:
    """Reach the source and ask whether anything changed since the last successful sync."""
    async with elasticsearch(config_file) as (es, settings):
        connectors, _ = protocol_for(es, settings)
        context = await load_job_context(settings, connectors, connector_id)
    source = build_source(context)
    try:
        await source.ping()
        changed = await source.changed(context.connector.doc.get("sync_cursor"))
        cursor = source.sync_cursor()
    finally:
        await source.close()
    get_run_logger().info("source changed since last sync: %s", changed)
    return {"changed": changed, "cursor": cursor}


@task(
    name="snapshot-index",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_only,
)
async def snapshot(index: str, workdir: str, config_file: str | None) -> IndexSnapshot:
    """Create the index if needed, then record what it holds (ids and versions) on disk."""
    async with elasticsearch(config_file) as (es, _):
        created = await prepare_index(es, index)
        taken = await snapshot_index(es, index, workdir)
    get_run_logger().info(
        "index %s %s; holds %d documents", index, "created" if created else "exists", taken.count
    )
    return taken


@task(name="stream-and-index", cache_policy=NO_CACHE)
async def stream_documents(
    job_id: str, connector_id: str, taken: IndexSnapshot, config_file: str | None
) -> dict:
    """Stream the source, skip unchanged documents, bulk-write the rest; counts come back."""
    live = live_job(job_id)
    progress_id = await create_progress_artifact(0.0, description="documents read from source")
    last_update = time.monotonic()
    progress = live.progress

    def check_in() -> bool:
        """Called as the stream's cancel check: moves the progress artifact every few seconds,
        and answers whether the job should stop."""
        nonlocal last_update
        if time.monotonic() - last_update > PROGRESS_EVERY_SECONDS:
            last_update = time.monotonic()
            _schedule_progress(progress_id, progress, taken.count)
        return live.canceled()

    async with elasticsearch(config_file) as (es, settings):
        connectors, _ = protocol_for(es, settings)
        context = await load_job_context(settings, connectors, connector_id)
        source = build_source(context)
        try:
            await index_documents(
                es, source, context.connector.index_name, taken, settings, progress, check_in
            )
        finally:
            await source.close()
            await refresh(es, context.connector.index_name)
            await update_progress_artifact(
                progress_id, 100.0, description=f"{progress.seen} documents read"
            )
    get_run_logger().info(
        "read %d, indexed %d (%d new), skipped %d unchanged, %d rejected",
        progress.seen,
        progress.indexed,
        progress.created,
        progress.skipped,
        progress.failed,
    )
    return progress.to_dict()


_pending_updates: set = set()


def _schedule_progress(progress_id, progress: SyncProgress, expected: int) -> None:
    """Move the progress artifact without blocking the stream (fire and forget)."""
    percent = min(99.0, 100.0 * progress.seen / expected) if expected else 0.0
    description = f"{progress.seen} documents read, {progress.indexed} indexed"
    update = asyncio.ensure_future(update_progress_artifact(progress_id, percent, description))
    _pending_updates.add(update)
    update.add_done_callback(_pending_updates.discard)


@task(
    name="delete-stale",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=transient_only,
)
async def delete_stale_documents(
    job_id: str, index: str, taken: IndexSnapshot, config_file: str | None
) -> int:
    """Delete what the source no longer has; refuses unless the source was read to the end."""
    live = live_job(job_id)
    async with elasticsearch(config_file) as (es, settings):
        deleted = await delete_stale(es, index, taken, settings, live.progress, live.canceled)
        await refresh(es, index)
    get_run_logger().info("deleted %d documents the source no longer has", deleted)
    return deleted


@task(name="report-status", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2)
async def report(
    job_id: str,
    status: str,
    counts: dict,
    error: str | None,
    cursor: dict | None,
    seconds: float,
    config_file: str | None,
) -> str:
    """Finish the job (mirrored onto the connector) and publish the sync report."""
    async with elasticsearch(config_file) as (es, settings):
        _, jobs = protocol_for(es, settings)
        job_counters = SyncProgress.from_dict(counts).job_counters()
        finished = await jobs.finish(job_id, JobStatus(status), job_counters, error, cursor)
    rows = [
        {"measure": name, "value": counts.get(name, 0)}
        for name in ("seen", "created", "updated", "skipped", "deleted", "failed", "volume")
    ]
    rows.append({"measure": "seconds", "value": round(seconds, 2)})
    await create_table_artifact(
        rows,
        key=f"sync-report-{job_id.lower()[:40]}".replace("_", "-"),
        description=f"job {job_id}: {finished.status.value}" + (f" ({error})" if error else ""),
    )
    failures = counts.get("failures") or []
    if failures:
        lines = "\n".join(f"| `{f['id']}` | {f['status']} | {f['reason']} |" for f in failures)
        await create_markdown_artifact(
            f"### Documents Elasticsearch rejected\n\n| id | status | reason |\n|---|---|---|\n"
            f"{lines}\n",
            description=f"job {job_id}: rejected documents",
        )
    get_run_logger().info("job %s finished: %s", job_id, finished.status.value)
    return finished.status.value
