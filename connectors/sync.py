"""The stages of the sync kinds (DESIGN.md §4) as plain functions over small values.

  snapshot_index   -> an on-disk snapshot of the index (connectors/index_snapshot.py)
  index_documents  -> full: stream the source, skip unchanged, fetch and upsert the rest;
                      mark what was seen
  index_changes    -> incremental: what the source lists since its cursor, diffed against the
                      index by id, fetched and upserted; deletions the source reports applied
  mark_listed      -> deletion: stream the source's ids only; mark what was seen
  delete_stale     -> delete ids the source did not produce (only after a complete listing)
The order, the heartbeat and the job's final status belong to connectors/job_run.py.
Memory is ~17 bytes per indexed document (two hash arrays and a mark), never a dict of ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import orjson

from connectors.es.bulk import BulkStats, BulkWriter
from connectors.index_snapshot import IndexedVersions, IndexSnapshot, hash64
from connectors.protocol.secrets import redact_uris
from connectors.source import DELETED, LAZY, READ_ERROR, BaseDataSource, Document

BATCH = 1000
READ_AHEAD_BATCHES = 4
MIB = 1024 * 1024


class SyncCanceled(Exception):  # noqa: N818 - it is an outcome, not a bug
    """The job was asked to stop; nothing is deleted."""


@dataclass
class SyncProgress:
    """Live counters of one job, read by its heartbeat while documents stream. Write outcomes
    live in `writes`, which the job's bulk writers update directly."""

    seen: int = 0
    skipped: int = 0
    fetched: int = 0
    not_fetched: int = 0
    volume: int = 0
    writes: BulkStats = field(default_factory=BulkStats)

    @property
    def created(self) -> int:
        return self.writes.created

    @property
    def updated(self) -> int:
        return self.writes.updated

    @property
    def indexed(self) -> int:
        return self.writes.created + self.writes.updated

    @property
    def deleted(self) -> int:
        return self.writes.deleted

    @property
    def failed(self) -> int:
        return self.writes.failed

    def job_counters(self) -> dict[str, int]:
        """The counters as the protocol's job document holds them (volume in MiB)."""
        return {
            "indexed_document_count": self.indexed,
            "indexed_document_volume": round(self.volume / MIB),
            "deleted_document_count": self.deleted,
            "total_document_count": self.seen,
        }

    def report(self) -> dict:
        """Every count, plus the first rejected documents, for the run's report."""
        return {
            "seen": self.seen,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "fetched": self.fetched,
            "not_fetched": self.not_fetched,
            "deleted": self.deleted,
            "failed": self.failed,
            "volume": self.volume,
            "failures": [asdict(failure) for failure in self.writes.failures[:100]],
        }


CheckIn = Callable[[], None]
"""Called every few documents: raises SyncCanceled (or another error) when the job must stop."""


def _keep_going() -> None:
    return None


def _encode(document: Document) -> tuple[str, bytes]:
    body = {key: value for key, value in document.items() if key != "_id"}
    return str(document["_id"]), orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


Unchanged = Callable[[list[Document]], Awaitable[list[bool]]]
"""For a batch of listed documents: True where the index already holds that `_timestamp`."""


async def index_documents(
    source: BaseDataSource,
    snapshot: IndexSnapshot,
    writer: BulkWriter,
    progress: SyncProgress,
    check_in: CheckIn = _keep_going,
) -> None:
    """Stream the source, upsert what is new or changed, and record which indexed ids were seen.

    Raises (and writes no stale mask) if the source fails, the job must stop, or the writer
    fails; in every such case `delete_stale` refuses to run.
    """
    snapshot.stale_path.unlink(missing_ok=True)
    indexed = IndexedVersions(snapshot)

    async def unchanged(batch: list[Document]) -> list[bool]:
        return _versions_match(batch, indexed)

    await _write_stream(source.get_docs(), unchanged, source, writer, progress, check_in)
    check_in()
    indexed.save_stale(snapshot.stale_path)


async def index_changes(
    source: BaseDataSource,
    cursor: dict,
    indexed_versions: Callable[[list[str]], Awaitable[dict[str, str | None]]],
    writer: BulkWriter,
    progress: SyncProgress,
    check_in: CheckIn = _keep_going,
) -> None:
    """Upsert what the source lists as changed since `cursor` (re-listed items the index holds
    in that version are skipped, looked up by id) and delete what it reports deleted."""

    async def unchanged(batch: list[Document]) -> list[bool]:
        held = await indexed_versions([str(d["_id"]) for d in batch])
        return [
            d.get("_timestamp") is not None and held.get(str(d["_id"])) == str(d["_timestamp"])
            for d in batch
        ]

    await _write_stream(
        source.get_docs_since(cursor), unchanged, source, writer, progress, check_in
    )


async def mark_listed(
    source: BaseDataSource,
    snapshot: IndexSnapshot,
    progress: SyncProgress,
    check_in: CheckIn = _keep_going,
) -> None:
    """A deletion sync's listing: the source's ids only, marked in the snapshot; nothing is
    fetched or written. Writes the stale mask only after the listing ended without error."""
    snapshot.stale_path.unlink(missing_ok=True)
    indexed = IndexedVersions(snapshot)
    ids: list[int] = []
    async for document_id in source.get_ids():
        ids.append(hash64(str(document_id)))
        if len(ids) >= BATCH:
            indexed.mark_seen(np.array(ids, dtype=np.uint64))
            progress.seen += len(ids)
            ids.clear()
            check_in()
            await asyncio.sleep(0)
    indexed.mark_seen(np.array(ids, dtype=np.uint64))
    progress.seen += len(ids)
    check_in()
    indexed.save_stale(snapshot.stale_path)


async def _write_stream(
    documents: AsyncIterator[Document],
    unchanged: Unchanged,
    source: BaseDataSource,
    writer: BulkWriter,
    progress: SyncProgress,
    check_in: CheckIn,
) -> None:
    """Diff each batch, fetch the changed lazy documents (`source.FETCH_BATCH` at a time),
    write the rest; the writer is closed on success and aborted on any failure."""
    pipeline = _Pipeline(source, unchanged, writer, progress)
    try:
        async for batch in _batches(documents, BATCH, check_in):
            await pipeline.add(batch)
            check_in()
        await pipeline.fetch_pending()
        await writer.close()
    except BaseException:
        await writer.abort()
        raise


class _Pipeline:
    """Listed documents -> skip unchanged -> fetch changed lazy ones -> bulk writes."""

    def __init__(self, source: BaseDataSource, unchanged: Unchanged, writer: BulkWriter, progress):
        self.source = source
        self.unchanged = unchanged
        self.writer = writer
        self.progress = progress
        self.pending: list[Document] = []

    async def add(self, batch: list[Document]) -> None:
        listed = []
        for document in batch:
            _check_shape(document)
            if document.get(DELETED):
                await self.writer.delete(str(document["_id"]))
            else:
                listed.append(document)
        self.progress.seen += len(listed)
        for document, same in zip(listed, await self.unchanged(listed), strict=True):
            if same:
                self.progress.skipped += 1
                self.progress.not_fetched += LAZY in document
            elif LAZY in document:
                self.pending.append(document)
            else:
                await self._write(document)
        if len(self.pending) >= self.source.FETCH_BATCH:
            await self.fetch_pending()
        await asyncio.sleep(0)  # let heartbeats and in-flight requests run

    async def fetch_pending(self) -> None:
        """Fetch the pending lazy documents; those listed without a version are diffed again
        now that they have one."""
        if not self.pending:
            return
        stubs, self.pending = self.pending, []
        unversioned = {str(d["_id"]) for d in stubs if d.get("_timestamp") is None}
        fetched = await self.source.fetch(stubs)
        self.progress.fetched += len(stubs)
        recheck = [d for d in fetched if str(d.get("_id")) in unversioned]
        same = dict(zip(map(id, recheck), await self.unchanged(recheck), strict=True))
        for document in fetched:
            document.pop(LAZY, None)
            _check_shape(document)
            if same.get(id(document)):
                self.progress.skipped += 1
                continue
            await self._write(document)

    async def _write(self, document: Document) -> None:
        if READ_ERROR in document:  # kept as it is in the index; retried next sync
            self.writer.reject(str(document["_id"]), document[READ_ERROR])
            return
        document_id, body = _encode(document)
        self.progress.volume += len(body)
        await self.writer.index(document_id, body)


def _check_shape(document: Document) -> None:
    if "_id" not in document or not (
        "_timestamp" in document or LAZY in document or document.get(DELETED)
    ):
        raise ValueError(f"source document without _id or _timestamp: {str(document)[:200]}")


def _versions_match(batch: list[Document], indexed: IndexedVersions) -> list[bool]:
    """Vectorised lookup in the snapshot; marks every listed id seen."""
    if not batch:
        return []
    ids = np.fromiter((hash64(str(d["_id"])) for d in batch), dtype=np.uint64, count=len(batch))
    versions = np.fromiter(
        (hash64(str(d.get("_timestamp"))) for d in batch), dtype=np.uint64, count=len(batch)
    )
    known = np.fromiter((d.get("_timestamp") is not None for d in batch), bool, len(batch))
    return (indexed.unchanged(ids, versions) & known).tolist()


async def _batches(
    documents: AsyncIterator[Document], size: int, check_in: CheckIn
) -> AsyncIterator[list[Document]]:
    """Group documents for vectorised lookups, reading ahead in a background task so the source
    fetches its next page while the previous one is diffed and written. Checks in every 100
    documents; any source error is raised here, in order."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=READ_AHEAD_BATCHES)
    done = object()

    async def read() -> None:
        batch: list[Document] = []
        try:
            async for document in documents:
                batch.append(document)
                if len(batch) % 100 == 0:
                    check_in()
                if len(batch) >= size:
                    await queue.put(batch)
                    batch = []
            if batch:
                await queue.put(batch)
            await queue.put(done)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            await queue.put(error)
            raise

    reader = asyncio.create_task(read())
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not reader.done():
            reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        aclose = getattr(documents, "aclose", None)
        if aclose is not None:
            await aclose()


async def delete_stale(
    snapshot: IndexSnapshot, writer: BulkWriter, check_in: CheckIn = _keep_going
) -> int:
    """Delete the indexed ids the source did not produce. Runs only after `index_documents`
    finished a complete read (it alone writes the stale mask)."""
    if not snapshot.stale_path.exists():
        raise RuntimeError("refusing to delete: the source was not read to the end")
    stale = np.load(snapshot.stale_path, mmap_mode="r")
    if not stale.any():
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


def describe_error(error: BaseException) -> str:
    """One line for the job document: the error's type and message, no traceback, no URI
    password (client errors like to quote the connection string)."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    message = redact_uris(message)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
