"""`elastic-ingest job ...`: list, show, cancel and run jobs, and follow one to its end."""

from __future__ import annotations

import asyncio
import sys
import time

import yaml

from elastic_ingest.app.context import Context, RuntimeFailure, UsageError, get_connector
from elastic_ingest.app.output import as_json, error_column, job_view
from elastic_ingest.connectors.protocol import (
    IllegalTransition,
    Job,
    JobLost,
    JobStatus,
    JobType,
    clock,
)
from elastic_ingest.connectors.protocol.states import FINAL

PROGRESS_SECONDS = 2.0  # one progress line this often while following a job
READ_JOB_SECONDS = 0.5  # how often the followed job is read (the final line comes this soon)


def _progress_line(job: Job) -> str:
    """`read 12,000 of ~30,000, written 11,500, deleted 0, 2,300 documents/s, ETA 8 s`: what a
    running job's last heartbeat said (the total is known when the index was snapshotted)."""
    d = job.doc
    if job.status in (JobStatus.PENDING, JobStatus.SUSPENDED):
        return f"job {job.id}: {job.status.value}, waiting for a poll loop or worker to run it"
    read = int(d.get("total_document_count") or 0)
    written = int(d.get("indexed_document_count") or 0)
    deleted = int(d.get("deleted_document_count") or 0)
    expected = int((d.get("metadata") or {}).get("expected_document_count") or 0)
    started = clock.parse(d.get("started_at"))
    seconds = (clock.now() - started).total_seconds() if started else 0
    rate = read / seconds if seconds > 0 else 0.0
    line = f"job {job.id}: {job.status.value}, read {read:,}" + (
        f" of ~{expected:,}" if expected else ""
    )
    line += f", written {written:,}, deleted {deleted:,}, {rate:,.0f} documents/s"
    if expected > read and rate > 0:
        line += f", ETA {(expected - read) / rate:,.0f} s"
    return line


def _final_line(job: Job) -> str:
    d, metadata = job.doc, job.doc.get("metadata") or {}
    counts = [
        f"indexed {d.get('indexed_document_count') or 0}",
        f"deleted {d.get('deleted_document_count') or 0}",
    ]
    if metadata.get("skipped_document_count") is not None:
        counts.append(f"unchanged {metadata['skipped_document_count']}")
    if metadata.get("filtered_document_count"):
        counts.append(f"excluded by rules {metadata['filtered_document_count']}")
    error = f": {d['error']}" if d.get("error") else ""
    ran_as = ""
    if metadata.get("ran_as_reason"):
        ran_as = f"; ran as {metadata.get('ran_as')}: {metadata['ran_as_reason']}"
    return f"job {job.id}: {job.status.value} ({', '.join(counts)}){ran_as}{error}"


async def follow_job(ctx: Context, job_id: str, seconds: float | None) -> None:
    """Read the job until it is final: a progress line every PROGRESS_SECONDS, then the final
    line; a job that did not complete, or is not final after `seconds`, is a runtime failure."""
    try:
        async with asyncio.timeout(seconds):
            job = await _final_job(ctx, job_id)
    except TimeoutError:
        raise RuntimeFailure(
            f"job {job_id} did not end within {seconds:g} s; stopped waiting (the job goes on)"
        ) from None
    ctx.out(_final_line(job))
    if job.status != JobStatus.COMPLETED:
        raise RuntimeFailure(f"job {job.id} ended {job.status.value}")


async def _final_job(ctx: Context, job_id: str) -> Job:
    """A waiting job's line is said once (and, if no poll loop is checking in, what to start);
    a running job's progress every PROGRESS_SECONDS."""
    last_line, shown, waiting_since, hinted = -float("inf"), "", None, False
    progress = ProgressLine(ctx.out)
    while True:
        job = await ctx.jobs.get(job_id)
        if job is None:
            raise RuntimeFailure(f"job {job_id} was deleted while waiting for it")
        if job.problems():
            raise RuntimeFailure(f"job {job_id}: {'; '.join(job.problems())}")
        if job.status in FINAL:
            progress.end()
            return job
        line = _progress_line(job)
        if job.status in (JobStatus.PENDING, JobStatus.SUSPENDED):
            waiting_since = waiting_since or time.monotonic()
            if line != shown:
                progress.end()
                ctx.out(line)
                shown = line
            if not hinted and time.monotonic() - waiting_since >= _unclaimed_grace(ctx):
                hinted = True
                hint = await _nobody_polls(ctx, job)
                if hint:
                    ctx.out(hint)
        else:
            waiting_since = None
            if time.monotonic() - last_line >= PROGRESS_SECONDS:
                progress.show(line)
                shown, last_line = line, time.monotonic()
        await asyncio.sleep(READ_JOB_SECONDS)


class ProgressLine:
    """A line that updates in place on a terminal, and is printed as plain lines otherwise (a
    log or a pipe keeps every one)."""

    def __init__(self, out):
        self.out = out
        self.in_place = sys.stdout.isatty()
        self.open = False

    def show(self, line: str) -> None:
        if not self.in_place:
            self.out(line)
            return
        sys.stdout.write("\r\x1b[K" + line)
        sys.stdout.flush()
        self.open = True

    def end(self) -> None:
        """Before any other output: the line in place is finished."""
        if self.open:
            sys.stdout.write("\n")
            self.open = False


def _unclaimed_grace(ctx: Context) -> float:
    """How long a job may wait before we look for a poll loop: two passes and some slack."""
    return 2 * ctx.settings.service.poll_interval + 5


async def _nobody_polls(ctx: Context, job: Job) -> str | None:
    """What to start when no poll loop has checked in with the job's connector lately (every
    pass refreshes its `last_seen`); None when one has."""
    connector = await ctx.connectors.get(job.connector_id)
    last_seen = clock.parse(connector.doc.get("last_seen")) if connector else None
    if last_seen and (clock.now() - last_seen).total_seconds() < _unclaimed_grace(ctx):
        return None
    since = f"since {last_seen.isoformat(timespec='seconds')}" if last_seen else "yet"
    return (
        f"no poll loop has checked in with connector {job.connector_id} {since}, so nothing "
        "will run this job: start one (`elastic-ingest` in another shell, or `make deploy` "
        "for the Prefect deployments and a worker); still waiting"
    )


async def list_jobs(args, ctx: Context) -> None:
    await get_connector(ctx.connectors, args.connector_id)
    jobs = await ctx.jobs.for_connector(args.connector_id)
    if args.output == "json":
        ctx.out(as_json([job_view(job) for job in jobs]))
        return
    row = "{:<40} {:<12} {:<12} {:<10} {:>8} {:>8} {:<33} {}"
    ctx.out(row.format("ID", "TYPE", "STATUS", "TRIGGER", "INDEXED", "DELETED", "CREATED", "ERROR"))
    for job in jobs:
        d = job.doc
        ctx.out(
            row.format(
                job.id,
                str(d.get("job_type") or JobType.FULL.value),
                str(d.get("status")),
                str(d.get("trigger_method")),
                str(d.get("indexed_document_count", "-")),
                str(d.get("deleted_document_count", "-")),
                str(d.get("created_at")),
                error_column(d.get("error")),
            )
        )


async def show_job(args, ctx: Context) -> None:
    job = await ctx.jobs.get(args.job_id)
    if job is None:
        raise UsageError(f"job {args.job_id} does not exist")
    if args.output == "json":
        ctx.out(as_json(job_view(job)))
    else:
        ctx.out(yaml.safe_dump(job_view(job), sort_keys=False).rstrip())


async def list_failures(args, ctx: Context) -> None:
    """`job failures JOB_ID`: the failures index's records of that job, oldest first."""
    from elastic_ingest.connectors.es.failures import FailureIndex

    if await ctx.jobs.get(args.job_id) is None:
        raise UsageError(f"job {args.job_id} does not exist")
    records = await FailureIndex(ctx.es, ctx.settings.service.failures_index).of_job(args.job_id)
    if args.output == "json":
        ctx.out(as_json(records))
        return
    for record in records:
        status = record["status"] or "-"
        ctx.out(f"{record['document_id']}  {record['action']} {status}  {record['reason']}")
    if not records:
        ctx.out(f"job {args.job_id} left no failed documents (or a later full sync wrote them)")


async def cancel_job(args, ctx: Context) -> None:
    try:
        job = await ctx.jobs.request_cancel(args.job_id)
    except IllegalTransition as error:
        raise UsageError(str(error)) from None
    ctx.out(f"job {job.id}: {job.status.value}")


async def run_job_here(args, ctx: Context) -> None:
    """The plain driver: the same job lifecycle the `sync` flow runs, minus Prefect."""
    from elastic_ingest.connectors.job.run import (
        run_job,  # the sync engine loads only when used
    )

    job = await ctx.jobs.get(args.job_id)
    if job is None:
        raise UsageError(f"job {args.job_id} does not exist")
    if job.problems() or job.status not in (JobStatus.PENDING, JobStatus.SUSPENDED):
        state = job.doc.get("status")
        raise UsageError(f"job {job.id} is {state}; only pending or suspended jobs can run")
    claimed = await ctx.jobs.claim(job)
    if claimed is None:
        raise UsageError(
            f"job {job.id} was not claimed: its connector is running another job, "
            "was deleted, or another worker took the job first"
        )
    try:
        outcome = await run_job(ctx.es, ctx.settings, job.id, claim=claimed.claim)
    except JobLost as lost:
        raise RuntimeFailure(str(lost)) from None
    counts = outcome.counts
    ctx.out(
        f"job {job.id}: {outcome.status.value} (indexed {counts['created'] + counts['updated']}, "
        f"deleted {counts['deleted']}, unchanged {counts['skipped']})"
        + (f": {outcome.error}" if outcome.error else "")
    )
    if outcome.status == JobStatus.ERROR:
        raise RuntimeFailure(f"job {job.id} failed: {outcome.error}")


async def release_deletes(args, ctx: Context) -> None:
    """A deletion job allowed past the mass-delete guard once, for a job whose deletes it held:
    it lists the source again (nothing else), so only what is still gone is deleted."""
    held = await ctx.jobs.get(args.job_id)
    if held is None:
        raise UsageError(f"job {args.job_id} does not exist")
    counts = (held.doc.get("metadata") or {}).get("held_deletes")
    if not counts:
        raise UsageError(f"job {held.id} held no deletes (nothing to release)")
    connector = await get_connector(ctx.connectors, held.connector_id)
    job_id = await ctx.jobs.create(
        connector, JobType.DELETION, metadata={"releases_deletes_of": held.id}
    )
    ctx.out(
        f"deletion job {job_id} created: it lists connector {connector.id}'s source again and "
        f"may delete past the guard once (job {held.id} held {counts['count']:,} of "
        f"{counts['indexed']:,}); the next poll pass runs it"
    )
    if args.wait:
        await follow_job(ctx, job_id, None)
