"""A full sync read in parts at once (`sync_partitions`): the JobRun stages that plan the
parts, read one in this process, or read one as a run of its own (flows/parts.py starts those);
the stale deletion waits for every part."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from elastic_ingest.connectors.protocol import JobLost, JobType
from elastic_ingest.connectors.source import PARTITIONS_SETTING
from elastic_ingest.connectors.sync import FullListing, SyncCanceled, describe_error

if TYPE_CHECKING:
    from elastic_ingest.connectors.job_run import Stages


class PartitionFailed(RuntimeError):
    """One part of a partitioned full sync failed: nothing is deleted; the message names it."""


ELSEWHERE = "synced_elsewhere"
"""Marks the counts of a part that another process synced (`run_part`)."""


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


class PartsOfAFullSync:
    """JobRun's stages for a partitioned full sync, mixed into JobRun: they use the run's
    source, snapshot, writers and progress."""

    @property
    def parts_wanted(self) -> int:
        """The parts the connector asks a full sync to read at once (`sync_partitions`); 0 or 1:
        none, and no planning stage runs."""
        wanted = int(self.source.config.get(PARTITIONS_SETTING) or 1)
        return wanted if self.kind == JobType.FULL and wanted > 1 else 0

    async def plan_partitions(self) -> int:
        """How many parts a full sync reads at once: what the connector asks for and the source
        can split into; 1: read as one."""
        if not self.parts_wanted:
            return 1
        self.parts = await self.source.partitions(self.parts_wanted)
        if len(self.parts) > 1:
            self._listing = FullListing(self._snapshot)
            self.source.cursor = None  # each part lists its own; the next sync looks at all
        return max(1, len(self.parts))

    async def write_partition(self, number: int) -> dict:
        """Read one part of the listing with a source of its own, upserting only; nothing is
        deleted until every part was read to its end. A failure names the part."""
        part = self.parts[number]
        source = self._source_class(self._values)
        source.partition = part
        source.advanced_rules = self.source.advanced_rules
        source.extract_binary_up_to = self.source.extract_binary_up_to
        source.index_holds = self.source.index_holds
        try:
            await self._read(self._listing, source)
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

    async def run_part(self, part: dict) -> dict:
        """One part of a partitioned full sync in a run of its own (another process, maybe
        another machine): upsert what is new or changed in it against a snapshot of its own,
        delete nothing. The job's own run heartbeats it meanwhile and, once every part ended,
        lists the source's ids and deletes what is stale. Raises JobLost if the job is no
        longer under this run's claim."""
        job = await self._claimed_job()
        try:
            await self._resolve(job)
            self.source.partition = part
            await self._snapshot_of(self.inputs.index_name)
            await self._read(FullListing(self._snapshot), self.source)
        finally:
            await self._refresh_quietly()
            await self._close()
        return {**self.progress.report(), ELSEWHERE: True}

    async def _list_after_parts(self, stages: Stages, done: list[dict]) -> None:
        """Parts synced by other processes marked nothing here: count what they did, then list
        every id of the source (nothing fetched) to find what is stale."""
        for counts in done:
            self.progress.add(counts)
        seen = self.progress.seen
        await stages.list_ids()
        self.progress.seen = seen
