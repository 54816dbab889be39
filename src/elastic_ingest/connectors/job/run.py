"""One job's life, from claimed to its final status (decided by job/outcome.py): claim, watch,
resolve the setup once, call the stages in order (docs/architecture.md), write the outcome. The
`sync` flow runs the same `run()` with each stage wrapped as a Prefect task (`stages=`);
`run_job` runs it plainly (CLI, scripts, tests). Nothing else finishes a running job, apart
from the stale-job sweep."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from elastic_ingest.connectors.config import Settings
from elastic_ingest.connectors.engine.progress import SyncProgress
from elastic_ingest.connectors.engine.reconcile import SyncCanceled
from elastic_ingest.connectors.errors import describe_error
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.documents import VersionConflict
from elastic_ingest.connectors.es.errors import is_transient
from elastic_ingest.connectors.job.outcome import Outcome, outcome_of, settle
from elastic_ingest.connectors.job.setup import JobSetup, resolve_setup
from elastic_ingest.connectors.job.stages import SyncStages, all_or_none
from elastic_ingest.connectors.protocol import Job, JobLost, JobStatus, JobType, protocol_for
from elastic_ingest.connectors.protocol.secrets import SecretStore
from elastic_ingest.connectors.protocol.watch import JobWatch

logger = logging.getLogger(__name__)


class Stages(Protocol):
    """The stages `JobRun.run` calls in order: SyncStages itself, or the flow's task runs."""

    async def check_changed(self) -> bool: ...
    async def snapshot_index(self) -> int: ...
    async def write_documents(self) -> dict: ...
    async def plan_partitions(self) -> int: ...
    async def write_partition(self, number: int) -> dict: ...
    async def write_changes(self) -> dict: ...
    async def list_ids(self) -> int: ...
    async def write_identities(self) -> dict: ...
    async def delete_stale(self) -> int: ...
    async def finish(self) -> JobStatus: ...


class JobRun:
    """A claimed job: its claim, its watch (heartbeat, cancel requests), its setup and stages
    once resolved, and the outcome it ends with."""

    def __init__(
        self,
        es: ESClient,
        settings: Settings,
        job_id: str,
        stop_requested: Callable[[], Awaitable[bool]] | None = None,
        metadata: dict | None = None,
        claim: str | None = None,
        secret_store: SecretStore | None = None,
    ):
        """`stop_requested`: a second source of cancel requests (the orchestrator's);
        `metadata`: where the job runs, recorded on the job (e.g. the flow run's id and link);
        `claim`: the claim this run was started for (`Job.claim`); a run started by hand
        without one adopts the claim the job holds; `secret_store`: reads the secrets that
        configuration values name as `prefect-secret:NAME` (None: such a value fails the job)."""
        self.es, self.settings, self.job_id = es, settings, job_id
        self.stop_requested = stop_requested
        self.metadata = metadata
        self.claim = claim
        self.secret_store = secret_store
        self.connectors, self.jobs = protocol_for(es, settings)
        self.progress = SyncProgress()
        self.setup: JobSetup | None = None
        self.stages: SyncStages | None = None
        self.outcome: Outcome | None = None
        self.watch: JobWatch | None = None
        self._job_type = JobType.FULL
        self._finished: Job | None = None

    @property
    def kind(self) -> JobType:
        """What this run does: the setup's kind once resolved, else the job's type."""
        return self.setup.kind if self.setup else self._job_type

    async def run(
        self,
        stages: Stages | None = None,
        on_setup: Callable[[JobSetup], Awaitable[None]] | None = None,
    ) -> Outcome:
        """Every stage in order, then the final status. Raises JobLost, without writing, when
        the job is not (or no longer) this worker's; re-raises a stop of the process after
        marking the job suspended (or canceled, if that is why it stopped). `on_setup` is
        told the resolved setup before the first stage (the flow names its run from it)."""
        job = await self._claimed_job()
        error: BaseException | None = None
        self.watch = JobWatch(
            self.jobs,
            job,
            self.progress.heartbeat_fields,
            self.settings.service.heartbeat_interval,
            self.stop_requested,
        )
        try:
            async with self.watch:
                try:
                    await self._resolve(job)
                    if on_setup is not None:
                        await on_setup(self.setup)
                    await self._stages_in_order(stages or self.stages)
                finally:
                    if self.stages is not None:
                        await self.stages.close()
        except BaseException as failure:
            error = failure
        lost = error if isinstance(error, JobLost) else self.watch.lost
        if lost is not None:
            logger.warning("job %s: %s; stopped without writing more", self.job_id, lost)
            await self._note_late_writes()
            raise lost
        # A stop can surface as another exception: a client cut off mid-write by the
        # cancellation wraps it in its own error. The task's state tells the two apart.
        stopping = error is not None and (not isinstance(error, Exception) or _being_stopped())
        if error is not None:
            canceled = self.watch.canceled or (stopping and await self._asked_to_stop())
            self.outcome = outcome_of(error, canceled, stopping)
        self.outcome.counts = self.progress.report()
        if stopping:
            await asyncio.shield(self.finish(patient=False))
            raise error
        await self._keep_failures()
        await (stages or self).finish()
        return self.outcome

    async def _stages_in_order(self, stages: Stages) -> None:
        """The stages of the job's kind (docs/architecture.md), each timed; none when the
        source reports that nothing changed. Writes Elasticsearch kept refusing as busy end
        the job in error, after everything else was done; a clean full sync ends with its
        parity receipt."""
        timed = self._timed
        self.outcome = Outcome(JobStatus.COMPLETED, changed=False)
        if not await timed("check_changed", stages.check_changed()):
            return
        self.outcome.changed = True
        if self.kind == JobType.INCREMENTAL:
            await timed("write_changes", stages.write_changes())
        elif self.kind == JobType.DELETION:
            await timed("snapshot_index", stages.snapshot_index())
            await timed("list_ids", stages.list_ids())
            await timed("delete_stale", stages.delete_stale())
        elif self.kind == JobType.ACCESS_CONTROL:
            await timed("write_identities", stages.write_identities())
            await timed("delete_stale", stages.delete_stale())
        else:
            await timed("snapshot_index", stages.snapshot_index())
            parts = await stages.plan_partitions() if self.stages.parts_wanted else 1
            if parts > 1:
                try:
                    writes = all_or_none(stages.write_partition(n) for n in range(parts))
                    done = await timed("write_documents", writes)
                finally:
                    await self.stages.refresh_quietly()
                await self.stages.parts_done(done, stages.list_ids)
            else:
                await timed("write_documents", stages.write_documents())
            await timed("delete_stale", stages.delete_stale())
        self.stages.check_throttled()  # a sync that could not write everything is not clean
        if self.kind == JobType.FULL:
            # in this run, not a stage of its own: one index scan, no orchestration to pay for
            await timed("receipt", self.stages.record_receipt())

    async def _timed(self, name: str, stage: Awaitable):
        """Await one stage and record how long it took (the job's `metadata.stage_seconds`)."""
        started = time.monotonic()
        try:
            return await stage
        finally:
            self.stages.stage_seconds[name] = time.monotonic() - started

    async def _keep_failures(self) -> None:
        """The documents this job could not write, into the failures index; a failure to
        record them is a warning (they are also counted on the job), never the job's end."""
        if self.stages is None or self.setup is None:
            return
        full = self.kind == JobType.FULL and self.outcome.changed
        try:
            await self.stages.keep_failures(
                clear_earlier=full and self.outcome.status == JobStatus.COMPLETED
            )
        except Exception as error:
            logger.warning(
                "job %s: could not record its failed documents in %s: %s",
                self.job_id,
                self.settings.service.failures_index,
                describe_error(error),
            )

    async def run_part(self, part: dict) -> dict:
        """One part of a partitioned full sync in a run of its own (flows/parts.py starts
        these): no watch of its own (the job's run heartbeats), nothing deleted. Raises
        JobLost if the job is no longer under this run's claim."""
        job = await self._claimed_job()
        try:
            await self._resolve(job)
            counts = await self.stages.read_part(part)
            await self.stages.keep_failures(clear_earlier=False)
            return counts
        except JobLost:
            await self._note_late_writes()
            raise
        finally:
            if self.stages is not None:
                await self.stages.close()

    async def _note_late_writes(self) -> None:
        """A request of this run may have landed after the job was taken over (es/bulk.py
        undid what it could): have the connector's next full sync read every document."""
        late = self.progress.writes.landed_late
        if not late or self.setup is None:
            return
        summary = (
            f"job {self.job_id} was taken over while its last request was on its way; "
            f"{late} operations of it may have landed after, "
            f"{self.progress.writes.undone} documents were deleted again"
        )
        connector_id = self.setup.inputs.connector_id
        try:
            await self.connectors.note_drift(connector_id, summary)
        except Exception as error:  # the job is already lost: say so, do not mask it
            logger.error("connector %s: cannot note drift: %s", connector_id, error)

    async def _drift_unchanged(self) -> bool:
        """Whether the connector still holds the drift note this sync saw when it started:
        only that one is repaired by its full read (one noted meanwhile, e.g. by an older
        writer's late request, waits for the next full sync)."""
        seen = self.setup.inputs.drift_note if self.setup is not None else None
        if not seen:
            return False
        connector = await self.connectors.get(self.setup.inputs.connector_id)
        return connector is not None and connector.drift_note == seen

    async def finish(self, patient: bool = True) -> JobStatus:
        """Write the decided outcome to the job and its connector, if the job is still ours.
        Elasticsearch being away is waited out for as long as the job could be (until the
        stale-job rule would take it), so a short outage does not leave it to the sweep; a
        stopping service (`patient=False`) tries once."""
        deadline = time.monotonic() + (self.settings.service.stale_job_seconds if patient else 0)
        for attempt in itertools.count():
            try:
                return await self._write_outcome()
            except Exception as error:
                if not is_transient(error) or time.monotonic() > deadline:
                    raise
                if attempt == 0:
                    logger.warning("job %s: cannot report yet (%s); retrying", self.job_id, error)
                await asyncio.sleep(min(10.0, 0.5 * 2**attempt))

    async def _write_outcome(self) -> JobStatus:
        """The job first (by compare-and-set, while the claim is ours), then its connector: a
        retry after the job was written only repeats the connector's part."""
        metadata = self.stages.job_metadata() if self.stages else {"ran_as": self.kind.value}
        for _ in range(5):
            if self._finished is not None:
                break
            current = await self.jobs.check_owner(self.job_id, self.claim)
            status = settle(self.outcome.status, current.status)
            try:
                self._finished = await self.jobs.finish(
                    current,
                    status,
                    self.progress.job_counters(),
                    self.outcome.error,
                    metadata=metadata,
                    mirror=False,
                )
            except VersionConflict:
                continue  # a heartbeat or a cancel request landed meanwhile: decide again
        if self._finished is None:
            raise VersionConflict(f"job {self.job_id}: could not write its final status")
        completed = self._finished.status == JobStatus.COMPLETED
        advances = completed and self.kind != JobType.DELETION and self.setup is not None
        cursor = self.setup.cursor_after(self.stages.source_cursor()) if advances else None
        repaired = completed and self.kind == JobType.FULL and self.outcome.changed
        repaired = repaired and await self._drift_unchanged()
        await self.jobs.mirror(self._finished, cursor, drift_repaired=repaired)
        self.outcome.status = self._finished.status
        return self._finished.status

    def check_in(self) -> None:
        """Called while documents stream: stop at once when the job must stop (a part's run
        has no watch: the job's own run watches, and the writers check the claim)."""
        if self.watch is None:
            return
        if self.watch.lost:
            raise self.watch.lost
        if self.watch.canceled:
            raise SyncCanceled("the job was canceled")

    async def _claimed_job(self) -> Job:
        job = await self.jobs.get(self.job_id)
        if job is None:
            raise JobLost(f"job {self.job_id} does not exist")
        if self.claim is None:
            self.claim = job.claim
        job = self.jobs.owned(job, self.claim)
        if self.metadata:
            job = await self.jobs.record_metadata(job, self.metadata)
        self._job_type = JobType(job.job_type) if job.job_type in set(JobType) else JobType.FULL
        return job

    async def _resolve(self, job: Job) -> None:
        """The job's setup (its connector read once) and the stages that run on it."""
        live = await self.connectors.get(job.connector_id)
        self.setup = await resolve_setup(self.es, self.settings, job, live, self.secret_store)
        self.stages = SyncStages(
            self.es,
            self.settings,
            self.setup,
            self.jobs,
            self.connectors,
            self.progress,
            self.claim,
            job.generation,
            self.check_in,
        )

    async def _asked_to_stop(self) -> bool:
        """Whether the orchestrator was asked to cancel; False if it cannot be asked now."""
        if self.stop_requested is None:
            return False
        try:
            return await self.stop_requested()
        except Exception:
            return False


def _being_stopped() -> bool:
    """True while the task running this job is being cancelled (the service is stopping)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def run_job(
    es: ESClient, settings: Settings, job_id: str, claim: str | None = None
) -> Outcome:
    """Run a claimed job to its end in this process, without Prefect."""
    return await JobRun(es, settings, job_id, claim=claim).run()
