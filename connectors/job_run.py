"""One job's life, from claimed to its final status (decided by connectors/job_outcome.py).

`JobRun.run()` holds the order of the stages (DESIGN.md §4), the heartbeat, and the mapping from
what happened to the job's status; the stages themselves are methods. The `sync` flow runs the
same `run()` with each stage wrapped as a Prefect task (`stages=`); `run_job` runs it plainly
(CLI, scripts, tests). Nothing else finishes a running job, apart from the stale-job sweep.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from elastic_ingest.connectors.access_control import (
    content_index,
)
from elastic_ingest.connectors.config import Settings
from elastic_ingest.connectors.es.bulk import BulkWriter
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.documents import VersionConflict
from elastic_ingest.connectors.es.errors import is_transient
from elastic_ingest.connectors.es.indices import concrete_indices, ensure_content_index, refresh
from elastic_ingest.connectors.es.scan import indexed_versions
from elastic_ingest.connectors.index_snapshot import IndexSnapshot, snapshot_index
from elastic_ingest.connectors.job_access import AccessControlStages
from elastic_ingest.connectors.job_inputs import JobInputs, JobSetupError
from elastic_ingest.connectors.job_options import checked_rules, extractor_for, ingest_pipeline
from elastic_ingest.connectors.job_outcome import Outcome, outcome_of, settle
from elastic_ingest.connectors.job_parts import ELSEWHERE, PartsOfAFullSync, all_or_none
from elastic_ingest.connectors.progress import SyncProgress
from elastic_ingest.connectors.protocol import Job, JobLost, JobStatus, JobType, protocol_for
from elastic_ingest.connectors.protocol.secrets import (
    SecretStore,
    SecretUnavailable,
    with_resolved_secrets,
)
from elastic_ingest.connectors.protocol.targets import resolved_problem, target_problem
from elastic_ingest.connectors.protocol.watch import JobWatch
from elastic_ingest.connectors.registry import RegistryError, source_class_for
from elastic_ingest.connectors.source import (
    BaseDataSource,
    ConfigurationError,
)
from elastic_ingest.connectors.sync import (
    FullListing,
    SyncCanceled,
    SyncOptions,
    delete_stale,
    describe_error,
    index_changes,
    mark_listed,
)
from elastic_ingest.connectors.sync_rules import (
    CONTENT_CURSOR_KEY,
    RULES_CURSOR_KEY,
    SyncRules,
    with_framework,
)

logger = logging.getLogger(__name__)

SUPPORTED_JOB_TYPES = (JobType.FULL, JobType.INCREMENTAL, JobType.DELETION, JobType.ACCESS_CONTROL)
OWNER_CHECK_SECONDS = 1.0
KEPT_REJECTIONS = 10


class Stages(Protocol):
    """The stages `JobRun.run` calls in order; the flow supplies task-wrapped ones."""

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


class JobRun(PartsOfAFullSync, AccessControlStages):
    """A claimed job and everything its sync needs: one client, one source, one set of inputs."""

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
        self.secret_store = secret_store
        self.metadata = metadata
        self.claim = claim
        self.generation: int | None = None
        self.es = es
        self.settings = settings
        self.job_id = job_id
        self.stop_requested = stop_requested
        self.connectors, self.jobs = protocol_for(es, settings)
        self.progress = SyncProgress()
        self.inputs: JobInputs | None = None
        self.kind: JobType = JobType.FULL  # what this run does; see `_plan`
        self.kind_note: str | None = None
        self.source: BaseDataSource | None = None
        self.rules = SyncRules()
        self.pipeline_name: str | None = None  # the ingest pipeline bulk requests name
        self._extractor = None
        self.outcome: Outcome | None = None
        self.watch: JobWatch | None = None
        self._snapshot: IndexSnapshot | None = None
        self._target: str | None = None  # the index a full, deletion or access sync snapshots
        self.parts: list[dict] = []  # the parts of a partitioned full sync (see `partitions`)
        self._listing: FullListing | None = None  # their shared listing
        self._source_class: type[BaseDataSource] | None = None
        self._values: dict = {}
        self._workdir: str | None = None
        self._owner_checked_at = -float("inf")
        self._finished: Job | None = None

    async def run(self, stages: Stages | None = None) -> Outcome:
        """Every stage in order, then the final status. Raises JobLost, without writing, when
        the job is not (or no longer) this worker's; re-raises a stop of the process after
        marking the job suspended (or canceled, if that is why it stopped)."""
        stages = stages or self
        job = await self._claimed_job()
        error: BaseException | None = None
        self.watch = JobWatch(
            self.jobs,
            job,
            self.progress.job_counters,
            self.settings.service.heartbeat_interval,
            self.stop_requested,
        )
        try:
            async with self.watch:
                try:
                    await self._resolve(job)
                    self.outcome = Outcome(JobStatus.COMPLETED, changed=False)
                    if await stages.check_changed():
                        self.outcome.changed = True
                        if self.kind == JobType.INCREMENTAL:
                            await stages.write_changes()
                        elif self.kind == JobType.DELETION:
                            await stages.snapshot_index()
                            await stages.list_ids()
                            await stages.delete_stale()
                        elif self.kind == JobType.ACCESS_CONTROL:
                            await stages.write_identities()
                            await stages.delete_stale()
                        else:
                            await stages.snapshot_index()
                            parts = await stages.plan_partitions() if self.parts_wanted else 1
                            if parts > 1:
                                try:
                                    done = await all_or_none(
                                        stages.write_partition(n) for n in range(parts)
                                    )
                                finally:
                                    await self._refresh_quietly()
                                if any(counts.get(ELSEWHERE) for counts in done):
                                    await self._list_after_parts(stages, done)
                                else:
                                    self._listing.complete()
                            else:
                                await stages.write_documents()
                            await stages.delete_stale()
                finally:
                    await self._close()
        except BaseException as failure:
            error = failure
        lost = error if isinstance(error, JobLost) else self.watch.lost
        if lost is not None:
            logger.warning("job %s: %s; stopped without writing more", self.job_id, lost)
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
        await stages.finish()
        return self.outcome

    # -- the stages -------------------------------------------------------------------------

    async def check_changed(self) -> bool:
        """Reach the source and ask whether anything changed since the last successful sync."""
        await self.source.ping()
        if self.kind == JobType.ACCESS_CONTROL:
            return True  # users and groups carry no version to compare: always listed
        if self.rules_changed or self.content_settings_changed:
            return True  # the same source read another way: every document is looked at again
        return await self.source.changed(self.inputs.sync_cursor)

    async def snapshot_index(self) -> int:
        """Create the index if needed, then record what it holds (ids and versions) on disk.
        Only full and deletion syncs snapshot: they delete, so the index must be theirs alone."""
        index = self.inputs.index_name
        await self._check_target(index)
        await self._check_sole_target(index)
        await ensure_content_index(self.es, index)
        await self._map_access_control(index)
        return await self._snapshot_of(index)

    async def _snapshot_of(self, index: str) -> int:
        self._workdir = self._workdir or tempfile.mkdtemp(prefix="elastic-ingest-")
        self._snapshot = await snapshot_index(self.es, index, self._workdir)
        self._target = index
        self.source.index_holds = self._snapshot.count
        return self._snapshot.count

    async def write_documents(self) -> dict:
        """Stream the source, skip unchanged documents, bulk-write the rest."""
        listing = FullListing(self._snapshot)
        try:
            await self._read(listing, self.source)
            listing.complete()
        finally:
            await self._refresh_quietly()
        return self.progress.report()

    async def _read(self, listing: FullListing, source: BaseDataSource) -> None:
        """Stream `source` (all of it, or its part) into `listing`: rules, diff, fetch, writes."""
        await listing.read(
            source, source.get_docs(), self._writer(), self.progress, self.check_in, self._options()
        )

    async def write_changes(self) -> dict:
        """Incremental: upsert what the source lists as changed since the job's cursor, and
        delete what it reports deleted; nothing else is deleted."""
        index = self.inputs.index_name
        await self._check_target(index)
        await ensure_content_index(self.es, index)
        await self._map_access_control(index)

        async def held(ids: list[str]) -> dict[str, str | None]:
            return await indexed_versions(self.es, index, ids)

        try:
            await index_changes(
                self.source,
                self.inputs.sync_cursor,
                held,
                self._writer(),
                self.progress,
                self.check_in,
                self._options(),
            )
        finally:
            await self._refresh_quietly()
        return self.progress.report()

    async def list_ids(self) -> int:
        """Deletion: list the source's ids (nothing fetched, nothing written), mark them seen."""
        await mark_listed(self.source, self._snapshot, self.progress, self.check_in)
        return self.progress.seen

    async def delete_stale(self) -> int:
        """Delete what the source no longer has; refuses unless the source was read to the end.
        Ownership is asked before every delete request, not from a recent answer."""
        writer = self._writer(self._target, owner_answer_lasts=0.0)
        deleted = await delete_stale(self._snapshot, writer, self.check_in)
        await refresh(self.es, self._target)
        return deleted

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
                    metadata=self._job_metadata(),
                    mirror=False,
                )
            except VersionConflict:
                continue  # a heartbeat or a cancel request landed meanwhile: decide again
        if self._finished is None:
            raise VersionConflict(f"job {self.job_id}: could not write its final status")
        completed = self._finished.status == JobStatus.COMPLETED
        advances = completed and self.kind != JobType.DELETION
        await self.jobs.mirror(self._finished, self.source_cursor if advances else None)
        self.outcome.status = self._finished.status
        return self._finished.status

    # -- helpers ----------------------------------------------------------------------------

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
        self.generation = job.generation
        return job

    async def _resolve(self, job: Job) -> None:
        """Fix the job's inputs once, from its snapshot, and build its source."""
        live = await self.connectors.get(job.connector_id)
        if live is None:
            raise JobSetupError(f"connector {job.connector_id} was deleted")
        if job.job_type not in set(SUPPORTED_JOB_TYPES):
            raise JobSetupError(
                f"job type {job.job_type!r} is not supported for service type "
                f"{job.service_type!r} (supported: {', '.join(SUPPORTED_JOB_TYPES)})"
            )
        self.inputs = JobInputs.of(job, live)
        self.kind = JobType(job.job_type)
        problem = target_problem(content_index(self.inputs.index_name), self.settings.protocol)
        if problem:
            raise JobSetupError(f"connector {job.connector_id}: {problem}")
        try:
            source_class = source_class_for(self.settings.sources, job.service_type)
            values = await with_resolved_secrets(self.inputs.values(), self.secret_store)
            self.source = source_class(values)
            self._source_class, self._values = source_class, values
        except RegistryError as error:
            raise JobSetupError(str(error)) from None
        except SecretUnavailable as error:
            raise JobSetupError(f"connector {job.connector_id} configuration: {error}") from None
        except ConfigurationError as error:
            raise JobSetupError(
                f"connector {job.connector_id} configuration: {'; '.join(error.problems)}"
            ) from None
        self._check_access_control(source_class)
        self.rules = checked_rules(self.inputs, source_class)
        self.source.advanced_rules = self.rules.advanced
        if self.inputs.pipeline.extract_binary_content:
            self.source.extract_binary_up_to = self.settings.extraction.max_bytes
        self.pipeline_name = await ingest_pipeline(self.es, self.inputs)
        self._plan()

    def _options(self) -> SyncOptions:
        """How this job treats listed documents: its rules, and what it does with content."""
        if self._extractor is None:
            self._extractor = extractor_for(self.inputs, self.settings.extraction)
        return SyncOptions(
            rules=self.rules,
            rules_changed=self.rules_changed,
            refetch=self.content_settings_changed,
            extractor=self._extractor,
            reduce_whitespace=self.inputs.pipeline.reduce_whitespace,
            access_control=self.source.dls_enabled,
        )

    @property
    def rules_changed(self) -> bool:
        """Whether the rules differ from those of the sync that stored the cursor."""
        return self.rules.fingerprint != self.inputs.remembered.get(RULES_CURSOR_KEY, "")

    @property
    def content_settings_changed(self) -> bool:
        """Whether extraction or whitespace settings differ from the last sync's: every file
        is then read again, changed or not."""
        stored = self.inputs.remembered.get(CONTENT_CURSOR_KEY, "")
        return self.content_fingerprint != stored

    @property
    def content_fingerprint(self) -> str:
        """What the documents written depend on besides the source: extraction, whitespace,
        and whether they carry identities (turning DLS on or off rewrites every document)."""
        fingerprint = self.inputs.pipeline.content_fingerprint
        if self.source is not None and self.source.dls_enabled:
            fingerprint += ";dls"
        return fingerprint

    def _plan(self) -> None:
        """An incremental job needs a source that can do one and a cursor to start from;
        without a cursor (no successful sync yet) it runs as a full sync and says so."""
        if self.kind != JobType.INCREMENTAL:
            return
        problem = self.source.incremental_problem(self.source.config)
        if problem:
            raise JobSetupError(
                f"connector {self.inputs.connector_id} cannot run incremental syncs: {problem}"
            )
        if not self.source.can_sync_since(self.inputs.sync_cursor):
            self.kind_note = (
                "no sync cursor to start from (no successful sync since the connector was "
                "created or its configuration changed)"
            )
        elif self.rules_changed:
            self.kind_note = "the sync rules changed since the last sync"
        else:
            return
        self.kind = JobType.FULL
        logger.info("job %s: ran as a full sync: %s", self.job_id, self.kind_note)

    async def _check_target(self, index: str) -> None:
        problem = resolved_problem(
            index, await concrete_indices(self.es, index), self.settings.protocol
        )
        if problem:
            raise JobSetupError(f"connector {self.inputs.connector_id}: {problem}")

    async def _check_sole_target(self, index: str) -> None:
        """A sync that deletes what its source lacks would delete another connector's
        documents from a shared index: refuse before anything is written or deleted."""
        others = sorted(
            connector.id
            for connector in await self.connectors.all()
            if connector.index_name == index and connector.id != self.inputs.connector_id
        )
        if others:
            raise JobSetupError(
                f"connector {self.inputs.connector_id}: index {index} is also the target of "
                f"connector {', '.join(others)}; a {self.kind} sync would delete its documents "
                "(give each connector its own index)"
            )

    def _writer(
        self, index: str | None = None, owner_answer_lasts: float = OWNER_CHECK_SECONDS
    ) -> BulkWriter:
        """A bulk writer into `index` (the connector's content index by default)."""
        # A job is only taken over after `stale_job_seconds` without a heartbeat, so an answer
        # younger than a small fraction of that is still true; a frozen process resumes with an
        # old answer and asks again before its next request.
        fresh_for = min(owner_answer_lasts, self.settings.service.stale_job_seconds / 4)

        async def check_owner() -> None:
            if time.monotonic() - self._owner_checked_at < fresh_for:
                return
            await self.jobs.check_owner(self.job_id, self.claim)
            self._owner_checked_at = time.monotonic()

        index = index or self.inputs.index_name
        return BulkWriter.for_index(
            self.es,
            index,
            self.settings.bulk,
            pipeline=self.pipeline_name if index == self.inputs.index_name else None,
            stats=self.progress.writes,
            version=self.generation,
            check_owner=check_owner,
            max_rejected=self.settings.service.max_failed_documents,
        )

    @property
    def indexed_before(self) -> int:
        """How many documents the index held when the sync started."""
        return self._snapshot.count if self._snapshot else 0

    @property
    def source_cursor(self) -> dict | None:
        """What the connector remembers after this sync: the source's cursor and the rules."""
        if self.source is None:
            return None
        remembered = {
            RULES_CURSOR_KEY: self.rules.fingerprint,
            CONTENT_CURSOR_KEY: self.content_fingerprint,
        }
        return with_framework(self.source.sync_cursor(), remembered)

    def _job_metadata(self) -> dict:
        """What the counters of the protocol cannot say goes into the job's metadata: what was
        fetched versus left unfetched, a kind change, and the rejected documents."""
        metadata = {
            "ran_as": self.kind.value,
            "fetched_document_count": self.progress.fetched,
            "not_fetched_document_count": self.progress.not_fetched,
            "skipped_document_count": self.progress.skipped,
        }
        if self.rules.basic:
            metadata["filtered_document_count"] = sum(self.progress.filtered.values())
            metadata["filtered_by_rule"] = dict(self.progress.filtered)
        if self.kind_note:
            metadata["ran_as_reason"] = self.kind_note
        if len(self.parts) > 1:
            metadata["partitions"] = [part.get("label") or str(part) for part in self.parts]
        if self.progress.failed:
            kept = self.progress.writes.failures[:KEPT_REJECTIONS]
            metadata["rejected_document_count"] = self.progress.failed
            metadata["rejected_documents"] = [f"{f.id}: {f.reason}" for f in kept]
        return metadata

    async def _asked_to_stop(self) -> bool:
        """Whether the orchestrator was asked to cancel; False if it cannot be asked now."""
        if self.stop_requested is None:
            return False
        try:
            return await self.stop_requested()
        except Exception:
            return False

    async def _refresh_quietly(self) -> None:
        """Make what was written searchable; a failure here must not hide the sync's own."""
        try:
            await refresh(self.es, self._target or self.inputs.index_name)
        except Exception as error:
            logger.warning("job %s: refresh failed: %s", self.job_id, describe_error(error))

    async def _close(self) -> None:
        """Release the source and the snapshot; never raises over the sync's own outcome."""
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        if self._extractor is not None:
            try:
                await self._extractor.close()
            except Exception as error:
                logger.warning("job %s: stopping text extraction: %s", self.job_id, error)
        if self.source is not None:
            try:
                await self.source.close()
            except Exception as error:
                logger.warning("job %s: closing the source: %s", self.job_id, error)


def _being_stopped() -> bool:
    """True while the task running this job is being cancelled (the service is stopping)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def run_job(
    es: ESClient, settings: Settings, job_id: str, claim: str | None = None
) -> Outcome:
    """Run a claimed job to its end in this process, without Prefect."""
    return await JobRun(es, settings, job_id, claim=claim).run()
