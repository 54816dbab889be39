"""The stages of the sync kinds (docs/architecture.md) as plain functions over small values.

  snapshot_index   -> an on-disk snapshot of the index (engine/snapshot.py)
  index_documents  -> full: stream the source, skip unchanged, fetch and upsert the rest;
                      mark what was seen (FullListing: also in parts read at once)
  index_changes    -> incremental: what the source lists since its cursor, diffed against the
                      index by id, fetched and upserted; deletions the source reports applied
  mark_listed      -> deletion: stream the source's ids only; mark what was seen
  index_listed     -> access control: the users' identity documents, as index_documents
  delete_stale     -> delete ids the source did not produce (only after a complete listing)
The order, the heartbeat and the job's final status belong to connectors/job/run.py.
Memory is ~22 bytes per indexed document (two hash arrays, a mark and a lookup table), never a
dict of ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson

from elastic_ingest.connectors.engine.progress import SyncProgress
from elastic_ingest.connectors.engine.receipt import ListedPairs
from elastic_ingest.connectors.engine.snapshot import (
    IndexedVersions,
    IndexSnapshot,
    hash64,
    load_stale,
)
from elastic_ingest.connectors.engine.stream import (
    BATCH,
    CheckIn,
    DocumentStream,
    SyncOptions,
    keep_going,
)
from elastic_ingest.connectors.es.bulk import BulkWriter
from elastic_ingest.connectors.source import BaseDataSource, Document


class SyncCanceled(Exception):  # noqa: N818 - it is an outcome, not a bug
    """The job was asked to stop; nothing is deleted."""


async def index_documents(
    source: BaseDataSource,
    snapshot: IndexSnapshot,
    writer: BulkWriter,
    progress: SyncProgress,
    check_in: CheckIn = keep_going,
    options: SyncOptions | None = None,
) -> None:
    """Stream the source, upsert what is new or changed, and record which indexed ids were seen.
    A document the sync rules exclude is not seen, so `delete_stale` removes it from the index.

    Raises (and writes no stale mask) if the source fails, the job must stop, or the writer
    fails; in every such case `delete_stale` refuses to run.
    """
    await index_listed(source, source.get_docs(), snapshot, writer, progress, check_in, options)


async def index_listed(
    source: BaseDataSource,
    documents: AsyncIterator[Document],
    snapshot: IndexSnapshot,
    writer: BulkWriter,
    progress: SyncProgress,
    check_in: CheckIn = keep_going,
    options: SyncOptions | None = None,
) -> None:
    """`index_documents` for any listing of `source` (an access-control sync lists its users'
    identity documents); writes the stale mask only after the listing ended without error."""
    listing = FullListing(snapshot)
    await listing.read(source, documents, writer, progress, check_in, options)
    listing.complete()


class FullListing:
    """A full listing against an index snapshot, in one part or in several read at once: each
    part marks the indexed ids it saw, and the stale mask (what `delete_stale` deletes) is
    written only by `complete()`, once every part was read to its end."""

    def __init__(self, snapshot: IndexSnapshot):
        snapshot.stale_path.unlink(missing_ok=True)
        self.snapshot = snapshot
        self.indexed = IndexedVersions(snapshot)
        self.pairs = ListedPairs()  # what the listing produced, for the parity receipt

    async def read(
        self,
        source: BaseDataSource,
        documents: AsyncIterator[Document],
        writer: BulkWriter,
        progress: SyncProgress,
        check_in: CheckIn = keep_going,
        options: SyncOptions | None = None,
    ) -> None:
        """Upsert what is new or changed in one part (or all) of the listing."""

        async def unchanged(batch: list[Document]) -> list[bool]:
            return _versions_match(batch, self.indexed)

        stream = DocumentStream(source, unchanged, writer, progress, options, pairs=self.pairs)
        await stream.write(documents, check_in)
        check_in()

    def complete(self) -> None:
        self.indexed.save_stale(self.snapshot.stale_path)


async def index_changes(
    source: BaseDataSource,
    cursor: dict,
    indexed_versions: Callable[[list[str]], Awaitable[dict[str, str | None]]],
    writer: BulkWriter,
    progress: SyncProgress,
    check_in: CheckIn = keep_going,
    options: SyncOptions | None = None,
) -> None:
    """Upsert what the source lists as changed since `cursor` (re-listed items the index holds
    in that version are skipped, looked up by id) and delete what it reports deleted, or what
    the sync rules now exclude."""

    async def unchanged(batch: list[Document]) -> list[bool]:
        held = await indexed_versions([str(d["_id"]) for d in batch])
        return [
            d.get("_timestamp") is not None and held.get(str(d["_id"])) == str(d["_timestamp"])
            for d in batch
        ]

    stream = DocumentStream(source, unchanged, writer, progress, options, delete_excluded=True)
    await stream.write(source.get_docs_since(cursor), check_in)


async def mark_listed(
    source: BaseDataSource,
    snapshot: IndexSnapshot,
    progress: SyncProgress,
    check_in: CheckIn = keep_going,
) -> None:
    """A deletion sync's listing: the source's ids only, marked in the snapshot; nothing is
    fetched or written. Writes the stale mask only after the listing ended without error."""
    snapshot.stale_path.unlink(missing_ok=True)
    indexed = IndexedVersions(snapshot)
    ids: list[int] = []
    async for document_id in source.get_ids():
        ids.append(hash64(str(document_id)))
        if len(ids) >= BATCH:
            indexed.mark_seen(ids)
            progress.seen += len(ids)
            ids.clear()
            check_in()
            await asyncio.sleep(0)
    indexed.mark_seen(ids)
    progress.seen += len(ids)
    check_in()
    indexed.save_stale(snapshot.stale_path)


def _versions_match(batch: list[Document], indexed: IndexedVersions) -> list[bool]:
    """Look each document up in the snapshot; marks every listed id seen."""
    if indexed.empty:  # a first sync: nothing to look up, nothing to hash
        return [False] * len(batch)
    ids = [hash64(str(d["_id"])) for d in batch]
    versions = [
        0 if (timestamp := d.get("_timestamp")) is None else hash64(str(timestamp)) for d in batch
    ]  # 0 matches no indexed version: a document without one is always written
    return indexed.unchanged(ids, versions)


async def delete_stale(
    snapshot: IndexSnapshot, writer: BulkWriter, check_in: CheckIn = keep_going
) -> int:
    """Delete the indexed ids the source did not produce. Runs only after `index_documents`
    finished a complete read (it alone writes the stale mask)."""
    if not snapshot.stale_path.exists():
        raise RuntimeError("refusing to delete: the source was not read to the end")
    stale = load_stale(snapshot.stale_path)
    if 1 not in stale:
        return 0
    before = writer.stats.deleted
    try:
        with open(snapshot.ids_path, "rb") as ids:
            for position, line in enumerate(ids):
                if stale[position]:
                    await writer.delete(orjson.loads(line))
                if position % BATCH == 0:
                    check_in()
        await writer.close()
    except BaseException:
        await writer.abort()
        raise
    return writer.stats.deleted - before
