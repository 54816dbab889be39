"""The full sync (DESIGN.md §4): reconcile an index with its source, never deleting on doubt.

Stages exchange small values (paths, counts) so a Prefect task can wrap each one:
  snapshot_index   -> an on-disk snapshot of the index (connectors/snapshot.py)
  index_documents  -> stream the source, skip unchanged, upsert the rest; mark what was seen
  delete_stale     -> delete ids the source did not produce (only after a complete read)
Memory is ~17 bytes per indexed document (two hash arrays and a mark), never a dict of ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import orjson
from elasticsearch import AsyncElasticsearch

from connectors.config import Settings
from connectors.es.bulk import BulkStats, BulkWriter, ItemFailure
from connectors.es.indices import ensure_index
from connectors.snapshot import IndexedVersions, IndexSnapshot, hash64, snapshot_index
from connectors.source import BaseDataSource, Document

logger = logging.getLogger(__name__)

BATCH = 1000
READ_AHEAD_BATCHES = 4


class SyncCanceled(Exception):  # noqa: N818 - it is an outcome, not a bug
    """The job was asked to stop; nothing is deleted."""


class TooManyFailures(RuntimeError):
    """Elasticsearch rejected more documents than the configured threshold."""


@dataclass
class SyncProgress:
    """Live counters, read by the job heartbeat while documents stream."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    deleted: int = 0
    failed: int = 0
    volume: int = 0
    seen: int = 0
    failures: list[ItemFailure] = field(default_factory=list)

    @property
    def indexed(self) -> int:
        return self.created + self.updated

    def job_counters(self) -> dict[str, int]:
        return {
            "indexed_document_count": self.indexed,
            "indexed_document_volume": self.volume,
            "deleted_document_count": self.deleted,
            "total_document_count": self.seen,
        }

    @classmethod
    def from_dict(cls, counts: dict) -> SyncProgress:
        names = ("created", "updated", "skipped", "deleted", "failed", "volume", "seen")
        return cls(**{name: counts.get(name, 0) for name in names})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["failures"] = [asdict(failure) for failure in self.failures[:100]]
        data["indexed"] = self.indexed
        return data


CancelCheck = Callable[[], bool]


def _never() -> bool:
    return False


def _encode(document: Document) -> tuple[str, bytes]:
    body = {key: value for key, value in document.items() if key != "_id"}
    return str(document["_id"]), orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


async def index_documents(
    es: AsyncElasticsearch,
    source: BaseDataSource,
    index: str,
    snapshot: IndexSnapshot,
    settings: Settings,
    progress: SyncProgress | None = None,
    canceled: CancelCheck = _never,
    writer: BulkWriter | None = None,
) -> SyncProgress:
    """Stream the source, upsert what is new or changed, and record which indexed ids were seen.

    Raises (and writes no stale mask) if the source fails, the job is canceled, or too many
    documents are rejected; in every such case `delete_stale` refuses to run.
    """
    progress = progress or SyncProgress()
    snapshot.stale_path.unlink(missing_ok=True)
    indexed = IndexedVersions(snapshot)
    writer = writer or BulkWriter.for_index(es, index, settings.bulk)
    limit = settings.service.max_failed_documents
    try:
        async for batch in _batches(source.get_docs(), BATCH, canceled):
            await _write_batch(batch, indexed, writer, progress)
            _absorb(progress, writer.stats)
            if writer.stats.failed > limit:
                raise TooManyFailures(_failure_summary(writer.stats, limit))
        await writer.close()
    except BaseException:
        await writer.abort()
        _absorb(progress, writer.stats)
        raise
    _absorb(progress, writer.stats)
    if writer.stats.failed > limit:
        raise TooManyFailures(_failure_summary(writer.stats, limit))
    if canceled():
        raise SyncCanceled("the job was canceled")
    indexed.save_stale(snapshot.stale_path)
    return progress


async def _batches(
    documents: AsyncIterator[Document], size: int, canceled: CancelCheck
) -> AsyncIterator[list[Document]]:
    """Group documents for vectorised lookups, reading ahead in a background task so the source
    fetches its next page while the previous one is diffed and written. Looks for a cancel
    request every 100 documents; any source error is raised here, in order."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=READ_AHEAD_BATCHES)
    done = object()

    async def read() -> None:
        batch: list[Document] = []
        try:
            async for document in documents:
                batch.append(document)
                if len(batch) % 100 == 0 and canceled():
                    raise SyncCanceled("the job was canceled")
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
        document_id, body = _encode(document)
        progress.volume += len(body)
        await writer.index(document_id, body)
    await asyncio.sleep(0)  # let heartbeats and in-flight requests run


def _absorb(progress: SyncProgress, stats: BulkStats) -> None:
    progress.created, progress.updated = stats.created, stats.updated
    progress.failed = stats.failed
    progress.failures = stats.failures


def _failure_summary(stats: BulkStats, limit: int) -> str:
    first = "; ".join(f"{f.id}: {f.reason}" for f in stats.failures[:3])
    return f"{stats.failed} documents rejected by Elasticsearch (limit {limit}); first: {first}"


async def delete_stale(
    es: AsyncElasticsearch,
    index: str,
    snapshot: IndexSnapshot,
    settings: Settings,
    progress: SyncProgress | None = None,
    canceled: CancelCheck = _never,
) -> int:
    """Delete the indexed ids the source did not produce. Runs only after `index_documents`
    finished a complete read (it alone writes the stale mask)."""
    progress = progress or SyncProgress()
    if not snapshot.stale_path.exists():
        raise RuntimeError("refusing to delete: the source was not read to the end")
    stale = np.load(snapshot.stale_path, mmap_mode="r")
    if not stale.any():
        return 0
    writer = BulkWriter.for_index(es, index, settings.bulk)
    try:
        with open(snapshot.ids_path, "rb") as ids:
            for position, line in enumerate(ids):
                if stale[position]:
                    await writer.delete(orjson.loads(line))
                if position % BATCH == 0 and canceled():
                    raise SyncCanceled("the job was canceled during deletion")
        stats = await writer.close()
    except BaseException:
        await writer.abort()
        progress.deleted = writer.stats.deleted
        raise
    progress.deleted = stats.deleted
    progress.failed += stats.failed
    progress.failures = progress.failures + stats.failures
    snapshot.stale_path.unlink()
    return stats.deleted


async def prepare_index(es: AsyncElasticsearch, index: str) -> bool:
    """Create the content index with Elasticsearch defaults unless it (or an alias) exists."""
    return await ensure_index(es, index)


async def refresh(es: AsyncElasticsearch, index: str) -> None:
    await es.indices.refresh(index=index)


@dataclass
class SyncResult:
    status: str  # completed | error | canceled
    progress: SyncProgress
    changed: bool = True
    error: str | None = None
    seconds: float = 0.0


async def full_sync(
    es: AsyncElasticsearch,
    source: BaseDataSource,
    index: str,
    settings: Settings,
    workdir: str,
    cursor: dict | None = None,
    progress: SyncProgress | None = None,
    canceled: CancelCheck = _never,
) -> SyncResult:
    """All stages in order, in one process: what the `sync` flow does with one task per stage."""
    started = time.monotonic()
    progress = progress or SyncProgress()
    try:
        if not await source.changed(cursor):
            return SyncResult("completed", progress, changed=False)
        await prepare_index(es, index)
        snapshot = await snapshot_index(es, index, workdir)
        try:
            await index_documents(es, source, index, snapshot, settings, progress, canceled)
            await delete_stale(es, index, snapshot, settings, progress, canceled)
        finally:
            await refresh(es, index)
    except SyncCanceled as stop:
        return SyncResult("canceled", progress, error=str(stop))
    except Exception as error:
        logger.warning("sync of %s failed: %s", index, error)
        return SyncResult("error", progress, error=describe_error(error))
    return SyncResult("completed", progress, seconds=time.monotonic() - started)


def describe_error(error: BaseException) -> str:
    """One line for the job document: the error's type and message, no traceback."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
