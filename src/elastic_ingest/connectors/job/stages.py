"""The stages of one job's sync (docs/architecture.md) as one object, with the state they hand on
explicit: the index snapshot, the target it was taken of, the full listing (shared by the parts
of a partitioned sync), the parts, the progress. `JobRun` calls them in order; the `sync` flow
wraps each in a task. Longer than a module here should be, on purpose: every stage of every
kind (full, parts, incremental, deletion, access control) reads and writes the same few fields,
which one object keeps in one place instead of spreading them over mixins again."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable

import orjson

from elastic_ingest.connectors.access_control import acl_index, content_index, identity_document
from elastic_ingest.connectors.config import Settings
from elastic_ingest.connectors.engine.guard import DeletesHeld, stale_count, stale_sample
from elastic_ingest.connectors.engine.progress import SyncProgress
from elastic_ingest.connectors.engine.receipt import take_receipt
from elastic_ingest.connectors.engine.reconcile import (
    FullListing,
    SyncCanceled,
    delete_stale,
    index_changes,
    index_listed,
    mark_listed,
)
from elastic_ingest.connectors.engine.snapshot import IndexSnapshot, snapshot_index
from elastic_ingest.connectors.engine.stream import SyncOptions
from elastic_ingest.connectors.errors import describe_error
from elastic_ingest.connectors.es.access_control import (
    access_control_field,
    ensure_identities_index,
)
from elastic_ingest.connectors.es.bulk import BulkWriter
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.failures import FailureIndex, FailureRecord
from elastic_ingest.connectors.es.indices import concrete_indices, ensure_content_index, refresh
from elastic_ingest.connectors.es.scan import indexed_versions
from elastic_ingest.connectors.job.ownership import OwnerCheck
from elastic_ingest.connectors.job.setup import JobSetup, JobSetupError
from elastic_ingest.connectors.protocol import ConnectorIndex, JobIndex, JobLost, JobType, clock
from elastic_ingest.connectors.protocol.targets import resolved_problem, shared_index_problem
from elastic_ingest.connectors.source import PARTITIONS_SETTING, BaseDataSource

logger = logging.getLogger(__name__)

OWNER_CHECK_SECONDS = 1.0
KEPT_REJECTIONS = 10
ELSEWHERE = "synced_elsewhere"
"""Marks the counts of a part that another process synced (`read_part`)."""
LISTED_PAIRS = "listed_pairs"
"""The digest of what such a part listed, for the job's parity receipt."""


class WritesThrottled(RuntimeError):
    """Elasticsearch kept refusing some writes as busy after every retry: everything else of
    the sync was done, those documents are written by the next sync (its cursor stays)."""


class PartitionFailed(RuntimeError):
    """One part of a partitioned full sync failed: nothing is deleted; the message names it."""


class SyncStages:
    """One job's stages and what they hand on. `check_in` is called while documents stream
    and raises when the job must stop (canceled, or no longer this worker's)."""

    def __init__(
        self,
        es: ESClient,
        settings: Settings,
        setup: JobSetup,
        jobs: JobIndex,
        connectors: ConnectorIndex,
        progress: SyncProgress,
        claim: str | None,
        generation: int | None,
        check_in: Callable[[], None],
    ):
        self.es, self.settings, self.setup = es, settings, setup
        self.jobs, self.connectors = jobs, connectors
        self.progress = progress
        self.claim, self.generation = claim, generation
        self.check_in = check_in
        self.snapshot: IndexSnapshot | None = None
        self.target: str | None = None  # the index a full, deletion or access sync snapshots
        self.listing: FullListing | None = None  # the full listing, shared by the parts
        self.parts: list[dict] = []  # the parts of a partitioned full sync
        self.held: dict | None = None  # deletes the mass-delete guard held (count, sample)
        self.receipt: dict | None = None  # a full sync's parity receipt (`record_receipt`)
        self.stage_seconds: dict[str, float] = {}  # how long each stage took, by name
        self._workdir: str | None = None
        self._extractor = None

    @property
    def source(self) -> BaseDataSource:
        return self.setup.source

    @property
    def index(self) -> str:
        return self.setup.inputs.index_name

    # -- every kind -------------------------------------------------------------------------

    async def check_changed(self) -> bool:
        """Reach the source and ask whether anything changed since the last successful sync."""
        await self.source.ping()
        if self.setup.kind == JobType.ACCESS_CONTROL:
            return True  # users and groups carry no version to compare: always listed
        if self.setup.rules_changed or self.setup.content_settings_changed:
            return True  # the same source read another way: every document is looked at again
        if self.setup.inputs.drift_found and self.setup.kind == JobType.FULL:
            return True  # the index drifted from the source: only a full read repairs it
        return await self.source.changed(self.setup.inputs.sync_cursor)

    async def snapshot_index(self) -> int:
        """Create the index if needed, then record what it holds (ids and versions) on disk.
        Only full and deletion syncs snapshot: they delete, so the index must be theirs alone."""
        await self._check_target(self.index)
        await self._check_sole_target(self.index)
        await ensure_content_index(self.es, self.index)
        await self._map_access_control(self.index)
        held = await self._snapshot_of(self.index)
        self.progress.expected = held  # a resync lists about what the index holds
        return held

    async def delete_stale(self) -> int:
        """Delete what the source no longer has; refuses unless the source was read to the end,
        and holds every delete when there are too many (`_check_guard`). Ownership is asked
        before every delete request, not from a recent answer."""
        at_stake = self.snapshot.stale_path.exists() and stale_count(self.snapshot)
        if self.setup.kind != JobType.ACCESS_CONTROL and at_stake:
            # only when there is something to delete: a first or unchanged sync pays nothing
            await self.source.confirm_complete(self.progress.seen)
            self._check_guard()
        writer = self.writer(self.target, owner_answer_lasts=0.0)
        deleted = await delete_stale(self.snapshot, writer, self.check_in)
        await refresh(self.es, self.target)
        return deleted

    def _check_guard(self) -> None:
        """Raise DeletesHeld, deleting nothing, when the deletes are more than the guard lets
        through: a listing cut short without an error looks just like this."""
        stale, indexed = stale_count(self.snapshot), self.snapshot.count
        guard = self.setup.inputs.guard(self.settings.service)
        if not guard.holds(stale, indexed):
            return
        sample = stale_sample(self.snapshot)
        self.held = {"count": stale, "indexed": indexed, "sample": sample}
        raise DeletesHeld(
            f"held {stale:,} deletes of the {indexed:,} documents index {self.target} holds "
            f"({stale / indexed:.0%}; the guard holds more than {guard.fraction:.0%} and more "
            f"than {guard.minimum:,}): the source listed far fewer than the index holds, as a "
            "read cut short would; nothing was deleted, what was new or changed was written. "
            # `--`: an Elasticsearch id may begin with "-", which argparse would take for an option
            f"If the source really lost them: elastic-ingest job release-deletes -- "
            f"{self.setup.job_id}",
            self.held,
        )

    def check_throttled(self) -> None:
        """Raise WritesThrottled when writes were left undone because Elasticsearch was busy."""
        writes = self.progress.writes
        if not writes.throttled:
            return
        first = ", ".join(item.id for item in writes.throttled_items[:3])
        reason = writes.throttled_items[0].reason if writes.throttled_items else ""
        raise WritesThrottled(
            f"{writes.throttled:,} documents were not written: Elasticsearch kept refusing them "
            f"as busy after {self.settings.bulk.max_retries} retries ({reason}; first: {first}); "
            "the rest of the sync was done, and the next sync writes them"
        )

    async def keep_failures(self, clear_earlier: bool) -> int:
        """Record every document this job could not write in the failures index (rejected,
        unreadable, or refused as busy); `clear_earlier`: the job was a completed full sync,
        which tried every listed document again, so the connector's older records go. After
        an incremental sync, the older records of the documents it wrote or deleted go."""
        writes = self.progress.writes
        failed = [*writes.failures, *writes.throttled_items]
        failures = FailureIndex(self.es, self.settings.service.failures_index)
        connector_id, now = self.setup.inputs.connector_id, clock.iso()
        await failures.record(
            [
                FailureRecord(
                    connector_id,
                    self.setup.job_id,
                    self.target or self.index,
                    item.id,
                    item.action,
                    item.status,
                    item.reason,
                    now,
                    orjson.loads(item.body) if item.body else None,
                )
                for item in failed
            ]
        )
        if clear_earlier:
            await failures.clear_before(connector_id, self.setup.job_id)
        elif writes.done_id_hashes:
            await failures.clear_before(connector_id, self.setup.job_id, writes.done_ids())
        return len(failed)

    async def record_receipt(self) -> None:
        """After a full sync: compare what the listing produced with what the index now holds
        (engine/receipt.py). A receipt that cannot be taken is a warning, never the job's
        failure: the sync itself is done."""
        if self.listing is None:  # no listing ran in this process (stages driven elsewhere)
            return
        try:
            self.receipt = (await take_receipt(self.es, self.index, self.listing.pairs)).as_dict()
        except Exception as error:
            self.receipt = {"error": describe_error(error)}
            logger.warning("job %s: no parity receipt: %s", self.setup.job_id, self.receipt)
            return
        if not self.receipt["matches"]:
            logger.warning("job %s: %s", self.setup.job_id, self.receipt["warning"])

    # -- full ---------------------------------------------------------------------------------

    async def write_documents(self) -> dict:
        """Stream the source, skip unchanged documents, bulk-write the rest."""
        self.listing = FullListing(self.snapshot)
        try:
            await self._read(self.listing, self.source)
            self.listing.complete()
        finally:
            await self.refresh_quietly()
        return self.progress.report()

    @property
    def parts_wanted(self) -> int:
        """The parts the connector asks a full sync to read at once (`sync_partitions`); 0 or 1:
        none, and no planning stage runs."""
        wanted = int(self.source.config.get(PARTITIONS_SETTING) or 1)
        return wanted if self.setup.kind == JobType.FULL and wanted > 1 else 0

    async def plan_partitions(self) -> int:
        """How many parts a full sync reads at once: what the connector asks for and the source
        can split into; 1: read as one."""
        if not self.parts_wanted:
            return 1
        self.parts = await self.source.partitions(self.parts_wanted)
        if len(self.parts) > 1:
            self.listing = FullListing(self.snapshot)
        return max(1, len(self.parts))

    async def write_partition(self, number: int) -> dict:
        """Read one part of the listing with a source of its own, upserting only; nothing is
        deleted until every part was read to its end. A failure names the part."""
        part = self.parts[number]
        source = self.setup.source_for_part(part)
        try:
            await self._read(self.listing, source)
        except (SyncCanceled, JobLost):
            raise
        except Exception as error:
            raise PartitionFailed(
                f"part {number + 1} of {len(self.parts)} ({part.get('label') or part}): "
                f"{describe_error(error)}"
            ) from error
        finally:
            await source.close()
        return self.progress.report()

    async def parts_done(self, done: list[dict], list_ids: Callable) -> None:
        """Every part was read to its end: the listing is complete. Parts synced by other
        processes marked nothing here: count what they did, then list every id of the source
        (`list_ids`, the stage; nothing fetched) to find what is stale."""
        if not any(counts.get(ELSEWHERE) for counts in done):
            self.listing.complete()
            return
        for counts in done:
            self.progress.add(counts)
            if LISTED_PAIRS in counts:
                self.listing.pairs.add_part(counts[LISTED_PAIRS])
        seen = self.progress.seen
        await list_ids()
        self.progress.seen = seen

    async def read_part(self, part: dict) -> dict:
        """One part of a partitioned full sync in a run of its own (another process, maybe
        another machine): upsert what is new or changed in it against a snapshot of its own,
        delete nothing; the job's own run deletes once every part ended."""
        self.setup.source.context = self.source.context.but(partition=part)
        try:
            await self._snapshot_of(self.index)
            listing = FullListing(self.snapshot)
            await self._read(listing, self.source)
        finally:
            await self.refresh_quietly()
        return {**self.progress.report(), ELSEWHERE: True, LISTED_PAIRS: listing.pairs.summary()}

    # -- incremental, deletion, access control ------------------------------------------------

    async def write_changes(self) -> dict:
        """Incremental: upsert what the source lists as changed since the job's cursor, and
        delete what it reports deleted; nothing else is deleted."""
        await self._check_target(self.index)
        await ensure_content_index(self.es, self.index)
        await self._map_access_control(self.index)

        async def held(ids: list[str]) -> dict[str, str | None]:
            return await indexed_versions(self.es, self.index, ids)

        self.progress.writes.remember_done_ids()  # their older failure records go at the end

        try:
            await index_changes(
                self.source,
                self.setup.inputs.sync_cursor,
                held,
                self.writer(),
                self.progress,
                self.check_in,
                self._options(),
            )
        finally:
            await self.refresh_quietly()
        return self.progress.report()

    async def list_ids(self) -> int:
        """Deletion: list the source's ids (nothing fetched, nothing written), mark them seen."""
        await mark_listed(self.source, self.snapshot, self.progress, self.check_in)
        return self.progress.seen

    async def write_identities(self) -> dict:
        """Access control: every user the source lists, with the identities they hold, into
        the content index's `.search-acl-filter-` index (unchanged users are not rewritten)."""
        content = content_index(self.index)
        await self._check_target(content)
        await ensure_content_index(self.es, content)
        field = await access_control_field(self.es, content)
        identities = acl_index(content)
        await ensure_identities_index(self.es, identities)
        await self._snapshot_of(identities)
        users = (identity_document(user, field) async for user in self.source.get_access_control())
        try:
            await index_listed(
                self.source,
                users,
                self.snapshot,
                self.writer(identities),
                self.progress,
                self.check_in,
            )
        finally:
            await self.refresh_quietly()
        return self.progress.report()

    # -- what the stages share ------------------------------------------------------------------

    def source_cursor(self) -> dict | None:
        """What the source saw, for the next sync; nothing after a partitioned sync (each part
        listed with a source of its own: the next sync looks at everything again)."""
        return None if len(self.parts) > 1 else self.source.sync_cursor()

    @property
    def indexed_before(self) -> int:
        """How many documents the index held when the sync started."""
        return self.snapshot.count if self.snapshot else 0

    def writer(
        self, index: str | None = None, owner_answer_lasts: float = OWNER_CHECK_SECONDS
    ) -> BulkWriter:
        """A bulk writer into `index` (the connector's content index by default), fenced by
        the job's generation and checking it still owns the job before it writes."""
        # A job is only taken over after `stale_job_seconds` without a heartbeat (job/ownership.py)
        stale_after = self.settings.service.stale_job_seconds
        check_owner = OwnerCheck(
            lambda: self.jobs.check_owner(self.setup.job_id, self.claim),
            reuse_for=owner_answer_lasts,
            answer_within=stale_after / 4,
            stale_after=stale_after,
        )
        index = index or self.index
        return BulkWriter.for_index(
            self.es,
            index,
            self.settings.bulk,
            pipeline=self.setup.pipeline_name if index == self.index else None,
            stats=self.progress.writes,
            version=self.generation,
            check_owner=check_owner,
            max_rejected=self.settings.service.max_failed_documents,
            keep_bodies=self.settings.service.failures_keep_documents,
        )

    def job_metadata(self) -> dict:
        """What the counters of the protocol cannot say goes into the job's metadata: what the
        job ran as, what was fetched versus left unfetched, the parts, rejected documents."""
        progress = self.progress
        metadata = {
            "ran_as": self.setup.kind.value,
            "fetched_document_count": progress.fetched,
            "not_fetched_document_count": progress.not_fetched,
            "skipped_document_count": progress.skipped,
        }
        if self.setup.rules.basic:
            metadata["filtered_document_count"] = sum(progress.filtered.values())
            metadata["filtered_by_rule"] = dict(progress.filtered)
        if self.setup.kind_note:
            metadata["ran_as_reason"] = self.setup.kind_note
        if self.held:
            metadata["held_deletes"] = self.held
        if self.setup.inputs.releases:
            metadata["releases_deletes_of"] = self.setup.inputs.releases
        if self.receipt:
            metadata["receipt"] = self.receipt
        if self.stage_seconds:
            metadata["stage_seconds"] = {k: round(v, 3) for k, v in self.stage_seconds.items()}
        if len(self.parts) > 1:
            metadata["partitions"] = [part.get("label") or str(part) for part in self.parts]
        if progress.writes.retried_items:
            metadata["retried_document_count"] = progress.writes.retried_items
        if progress.writes.throttled:
            kept = progress.writes.throttled_items[:KEPT_REJECTIONS]
            metadata["throttled_document_count"] = progress.writes.throttled
            metadata["throttled_documents"] = [f"{f.id}: {f.reason}" for f in kept]
        if progress.failed:
            kept = progress.writes.failures[:KEPT_REJECTIONS]
            metadata["rejected_document_count"] = progress.failed
            metadata["rejected_documents"] = [f"{f.id}: {f.reason}" for f in kept]
        if progress.failed or progress.writes.throttled:
            metadata["failures_index"] = self.settings.service.failures_index
        return metadata

    async def refresh_quietly(self) -> None:
        """Make what was written searchable; a failure here must not hide the sync's own."""
        try:
            await refresh(self.es, self.target or self.index)
        except Exception as error:
            logger.warning("job %s: refresh failed: %s", self.setup.job_id, describe_error(error))

    async def close(self) -> None:
        """Release the source, the extractor and the snapshot; never raises over the sync's
        own outcome."""
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        for what, closable in (
            ("stopping text extraction", self._extractor),
            ("closing the source", self.source),
        ):
            if closable is None:
                continue
            try:
                await closable.close()
            except Exception as error:
                logger.warning("job %s: %s: %s", self.setup.job_id, what, error)

    async def _read(self, listing: FullListing, source: BaseDataSource) -> None:
        """Stream `source` (all of it, or its part) into `listing`: rules, diff, fetch, writes."""
        await listing.read(
            source, source.get_docs(), self.writer(), self.progress, self.check_in, self._options()
        )

    async def _snapshot_of(self, index: str) -> int:
        self._workdir = self._workdir or tempfile.mkdtemp(prefix="elastic-ingest-")
        self.snapshot = await snapshot_index(self.es, index, self._workdir)
        self.target = index
        # the one amendment of the source's read context: only the snapshot can tell it
        self.source.context = self.source.context.but(index_holds=self.snapshot.count)
        return self.snapshot.count

    def _options(self) -> SyncOptions:
        """How this job treats listed documents: its rules, and what it does with content."""
        if self._extractor is None:
            self._extractor = self.setup.extractor(self.settings.extraction)
        return SyncOptions(
            rules=self.setup.rules,
            rules_changed=self.setup.rules_changed,
            refetch=self.setup.content_settings_changed,
            extractor=self._extractor,
            reduce_whitespace=self.setup.inputs.pipeline.reduce_whitespace,
            access_control=self.source.dls_enabled,
        )

    async def _map_access_control(self, index: str) -> str | None:
        """With document-level security on, the keyword field identities are matched on."""
        if not self.source.dls_enabled:
            return None
        return await access_control_field(self.es, index)

    async def _check_target(self, index: str) -> None:
        problem = resolved_problem(
            index, await concrete_indices(self.es, index), self.settings.protocol
        )
        if problem:
            raise JobSetupError(f"connector {self.setup.inputs.connector_id}: {problem}")

    async def _check_sole_target(self, index: str) -> None:
        """A sync that deletes what its source lacks would delete another connector's
        documents from a shared index: refuse before anything is written or deleted."""
        connector_id = self.setup.inputs.connector_id
        others = [c.id for c in await self.connectors.all() if c.index_name == index]
        problem = shared_index_problem(index, connector_id, others)
        if problem:
            raise JobSetupError(f"connector {connector_id}: {problem}")


async def all_or_none(runs) -> list:
    """Run every coroutine at once; on the first failure cancel the others and raise it."""
    tasks = [asyncio.ensure_future(run) for run in runs]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
