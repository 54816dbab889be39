"""The stages of a full sync (DESIGN.md §4) as plain functions over small values.

  snapshot_index   -> an on-disk snapshot of the index (connectors/index_snapshot.py)
  index_documents  -> stream the source, skip unchanged, upsert the rest; mark what was seen
  delete_stale     -> delete ids the source did not produce (only after a complete read)
The order, the heartbeat and the job's final status belong to connectors/job_run.py.
Memory is ~17 bytes per indexed document (two hash arrays and a mark), never a dict of ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import orjson

from connectors.es.bulk import BulkStats, BulkWriter
from connectors.index_snapshot import IndexedVersions, IndexSnapshot, hash64
from connectors.protocol.secrets import redact_uris
from connectors.source import READ_ERROR, BaseDataSource, Document

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
    try:
        async for batch in _batches(source.get_docs(), BATCH, check_in):
            await _write_batch(batch, indexed, writer, progress)
        await writer.close()
    except BaseException:
        await writer.abort()
        raise
    check_in()
    indexed.save_stale(snapshot.stale_path)


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


async def _write_batch(
    batch: list[Document], indexed: IndexedVersions, writer: BulkWriter, progress: SyncProgress
) -> None:
    for document in batch:
        if "_id" not in document or "_timestamp" not in document:
            raise ValueError(f"source document without _id or _timestamp: {str(document)[:200]}")
    ids = np.fromiter((hash64(str(d["_id"])) for d in batch), dtype=np.uint64, count=len(batch))
    versions = np.fromiter(
        (hash64(str(d["_timestamp"])) for d in batch), dtype=np.uint64, count=len(batch)
    )
    unchanged = indexed.unchanged(ids, versions)
    progress.seen += len(batch)
    progress.skipped += int(unchanged.sum())
    for document, same in zip(batch, unchanged.tolist(), strict=True):
        if same:
            continue
        if READ_ERROR in document:  # kept as it is in the index; retried next sync
            writer.reject(str(document["_id"]), document[READ_ERROR])
            continue
        document_id, body = _encode(document)
        progress.volume += len(body)
        await writer.index(document_id, body)
    await asyncio.sleep(0)  # let heartbeats and in-flight requests run


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
