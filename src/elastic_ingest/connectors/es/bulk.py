"""Bulk writer: batches by count and bytes, bounds requests in flight, retries transient errors,
and is fenced: every operation carries the job's generation as an external version, ownership
is checked before every request and confirmed after its answer (a request that may have landed
after a takeover is undone), so a writer whose job was taken over cannot win."""

from __future__ import annotations

import asyncio
import logging
import random
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from elastic_ingest.connectors.config import BulkSettings
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.errors import RETRIABLE_STATUS, is_transient

logger = logging.getLogger(__name__)

MAX_KEPT_FAILURES = 1000

SendBulk = Callable[[bytes], Awaitable[dict]]
# What `_record` reads of each item: a fifth of the full response to send and decode.
RESPONSE_FIELDS = "errors,items.*.status,items.*.result,items.*.error"


class OwnershipCheck(Protocol):
    """Whether the writer's job is still its own (job/ownership.py)."""

    async def __call__(self) -> None:
        """Return while the job is ours; raise once it is not (before a request)."""

    async def lost_before_landing(self) -> BaseException | None:
        """After a request's answer: None if the job was still ours when the request landed,
        else why not (the process froze between the check and the send, and was taken over)."""


class BulkError(RuntimeError):
    """A bulk request kept failing after every retry; nothing after it can be trusted."""


class TooManyRejections(RuntimeError):
    """Elasticsearch rejected more documents than the configured limit."""


class Fenced(RuntimeError):  # noqa: N818 - an outcome: the job now belongs to someone else
    """A newer job owns the index's documents; this writer must stop at once."""


@dataclass(frozen=True)
class ItemFailure:
    id: str
    action: str
    status: int
    reason: str
    body: bytes | None = None  # the document as sent, only when the writer keeps bodies

    def summary(self) -> dict:
        """Everything but the body, for reports."""
        return {"id": self.id, "action": self.action, "status": self.status, "reason": self.reason}


@dataclass
class BulkStats:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    failed: int = 0
    requests: int = 0
    retried_items: int = 0
    bytes_sent: int = 0
    failures: list[ItemFailure] = field(default_factory=list)
    # items Elasticsearch kept refusing as busy (429, 502-504) after every retry: not bad
    # documents (they never count against the rejection limit), but not written either
    throttled: int = 0
    throttled_items: list[ItemFailure] = field(default_factory=list)
    # operations of a request that may have landed after the job was taken over, and the
    # documents among them deleted again (`BulkWriter._undo_if_late`)
    landed_late: int = 0
    undone: int = 0
    # when set: hash() of each id written or deleted (8 bytes each), for a sync that reads only
    # some documents to clear their earlier failure records
    done_id_hashes: array | None = None

    def remember_done_ids(self) -> None:
        self.done_id_hashes = array("q")

    def done_ids(self) -> Callable[[str], bool]:
        """Whether an id was written or deleted (False for all unless remembered)."""
        done = set(self.done_id_hashes or ())
        return lambda document_id: hash(document_id) in done


@dataclass(frozen=True)
class _Operation:
    id: str
    action: str
    lines: bytes


def bulk_sender(es: ESClient, index: str, pipeline: str | None = None) -> SendBulk:
    """Send one NDJSON body to `index` (through the ingest `pipeline`, if one is named);
    retries are the writer's job, so the client's are off."""
    client = es.options(max_retries=0, retry_on_timeout=False)
    options = {"pipeline": pipeline} if pipeline else {}

    async def send(body: bytes) -> dict:
        response = await client.bulk(
            index=index, operations=body, filter_path=RESPONSE_FIELDS, **options
        )
        return response

    return send


def _result(item: dict) -> dict:
    """A bulk response item's result, whatever its action (`{"index": {...}}`)."""
    return next(iter(item.values()))


def _reason(result: dict) -> str:
    error = result.get("error")
    if isinstance(error, dict):
        return f"{error.get('type')}: {error.get('reason')}"
    return str(error or result.get("result"))


class BulkWriter:
    """Queue index/delete operations; `close()` flushes, waits, and returns the stats."""

    def __init__(
        self,
        send: SendBulk,
        settings: BulkSettings,
        *,
        stats: BulkStats | None = None,
        version: int | None = None,
        check_owner: OwnershipCheck | None = None,
        max_rejected: int | None = None,
        keep_bodies: bool = False,
    ):
        """`version`: the job's generation, sent as an external_gte version so that Elasticsearch
        rejects this writer's operations once a newer job wrote the same ids. `check_owner`
        raises (e.g. Fenced) when the job is no longer this worker's; it runs before each send,
        and is asked after each answer whether the request landed while the job was ours."""
        self.send = send
        self.settings = settings
        self.stats = stats if stats is not None else BulkStats()
        self.version = version
        self.check_owner = check_owner
        self.max_rejected = max_rejected
        self.keep_bodies = keep_bodies  # failures carry the document sent (failures index)
        self._fence = b""  # the action line's version fields
        if version is not None:
            self._fence = b',"version":%d,"version_type":"external_gte"' % version
        self._buffer: list[_Operation] = []
        self._buffer_bytes = 0
        self._slots = asyncio.Semaphore(settings.requests_in_flight)
        self._in_flight: set[asyncio.Task] = set()
        self._error: BaseException | None = None

    @classmethod
    def for_index(
        cls,
        es: ESClient,
        index: str,
        settings: BulkSettings,
        pipeline: str | None = None,
        **options,
    ) -> BulkWriter:
        return cls(bulk_sender(es, index, pipeline), settings, **options)

    def _action(self, kind: str, document_id: str) -> bytes:
        return b'{"%s":{"_id":%s%s}}' % (kind.encode(), orjson.dumps(document_id), self._fence)

    async def index(self, document_id: str, source: bytes) -> None:
        action = self._action("index", document_id)
        await self._add(_Operation(document_id, "index", action + b"\n" + source + b"\n"))

    async def delete(self, document_id: str) -> None:
        action = self._action("delete", document_id)
        await self._add(_Operation(document_id, "delete", action + b"\n"))

    def reject(self, document_id: str, reason: str) -> None:
        """Count a document that never reached Elasticsearch (e.g. unreadable at the source)."""
        self._fail(ItemFailure(document_id, "read", 0, reason))
        if self._error:
            raise self._error

    async def _add(self, operation: _Operation) -> None:
        if self._error:
            raise self._error
        size = len(operation.lines)
        if self._buffer and self._buffer_bytes + size > self.settings.max_bytes_per_request:
            await self.flush()
        self._buffer.append(operation)
        self._buffer_bytes += size
        if len(self._buffer) >= self.settings.operations_per_request:
            await self.flush()

    async def flush(self) -> None:
        """Send what is buffered; waits for a free slot when the in-flight limit is reached."""
        if not self._buffer:
            return
        batch, self._buffer, self._buffer_bytes = self._buffer, [], 0
        await self._slots.acquire()
        if self._error:  # a request that was in flight failed for good: send nothing more
            self._slots.release()
            raise self._error
        task = asyncio.create_task(self._send_with_retries(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() and not self._error:
            self._error = task.exception()

    async def close(self) -> BulkStats:
        """Flush, wait for every request, and raise the first unrecoverable error if any."""
        if not self._error:
            await self.flush()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._error:
            raise self._error
        return self.stats

    async def abort(self) -> None:
        """Wait for requests already sent (so counts are true) and drop what is buffered."""
        self._buffer, self._buffer_bytes = [], 0
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _backoff(self, attempt: int) -> float:
        base = self.settings.retry_backoff_seconds * (2**attempt)
        return min(30.0, base * (0.5 + random.random()))

    async def _send_with_retries(self, batch: list[_Operation]) -> None:
        pending = batch
        for attempt in range(self.settings.max_retries + 1):
            body = b"".join(operation.lines for operation in pending)
            if self.check_owner is not None:
                await self.check_owner()
            try:
                response = await self.send(body)
            except Exception as error:
                if not is_transient(error):
                    raise BulkError(f"bulk request refused: {error}") from error
                if attempt == self.settings.max_retries:
                    raise BulkError(
                        f"bulk request failed after {attempt + 1} attempts: {error}"
                    ) from error
                logger.warning("bulk request failed (%s); retrying", error)
                await asyncio.sleep(self._backoff(attempt))
                continue
            self.stats.requests += 1
            self.stats.bytes_sent += len(body)
            items = response.get("items", [])
            if self.check_owner is not None:
                await self._undo_if_late(pending, items)
            last_attempt = attempt == self.settings.max_retries
            pending = self._record(pending, items, last_attempt)
            if not pending:
                return
            self.stats.retried_items += len(pending)
            await asyncio.sleep(self._backoff(attempt))

    async def _undo_if_late(self, sent: list[_Operation], items: list[dict]) -> None:
        """A request that may have landed after the job was taken over (the process froze
        after its check) is undone as far as it can be: the documents it indexed are deleted
        again, fenced by the same version, so only those no newer job wrote since go (a delete
        cannot be undone). `landed_late` tells the job to have the connector read in full."""
        lost = await self.check_owner.lost_before_landing()
        if lost is None:
            return
        landed = [
            operation
            for operation, item in zip(sent, items, strict=True)
            if _result(item).get("status", 500) < 300
        ]
        self.stats.landed_late += len(landed)
        indexed = [operation for operation in landed if operation.action == "index"]
        if indexed and self.version is not None:
            body = b"".join(self._action("delete", op.id) + b"\n" for op in indexed)
            try:
                response = await self.send(body)
            except Exception as error:
                logger.error("%s; undoing its last request failed: %s", lost, error)
                raise lost from None
            undone = sum(
                _result(item).get("result") == "deleted" for item in response.get("items", [])
            )
            self.stats.undone += undone
            logger.warning(
                "%s after this writer's last request was sent; %d of the %d documents it "
                "indexed were deleted again (the rest a newer job had written since)",
                lost, undone, len(indexed),
            )  # fmt: skip
        raise lost

    def _record(self, sent: list[_Operation], items: list[dict], last: bool) -> list[_Operation]:
        """Count each item's outcome; return the transient failures to send again."""
        retry = []
        for operation, item in zip(sent, items, strict=True):
            result = _result(item)
            status = result.get("status", 500)
            if status == 409 and self.version is not None:
                self._error = self._error or Fenced(
                    f"document {operation.id} was written by a newer job (version conflict); "
                    "this sync no longer owns the index"
                )
            elif status in RETRIABLE_STATUS and not last:
                retry.append(operation)
            elif status in RETRIABLE_STATUS:
                self._throttled(self._failure(operation, status, result))
            elif status < 300 or (operation.action == "delete" and status == 404):
                if self.stats.done_id_hashes is not None:
                    self.stats.done_id_hashes.append(hash(operation.id))
                outcome = result.get("result")
                if operation.action == "delete":
                    self.stats.deleted += outcome == "deleted"
                elif outcome == "created":
                    self.stats.created += 1
                else:
                    self.stats.updated += 1
            else:
                self._fail(self._failure(operation, status, result))
        return retry

    def _failure(self, operation: _Operation, status: int, result: dict) -> ItemFailure:
        body = None
        if self.keep_bodies and operation.action == "index":
            body = operation.lines.split(b"\n", 1)[1].rstrip(b"\n")  # after the action line
        return ItemFailure(operation.id, operation.action, status, _reason(result), body)

    def _throttled(self, failure: ItemFailure) -> None:
        """Count one item still refused as busy after the last retry (the job says so)."""
        self.stats.throttled += 1
        if len(self.stats.throttled_items) < MAX_KEPT_FAILURES:
            self.stats.throttled_items.append(failure)
        logger.warning(
            "document %s not written, Elasticsearch busy: %s", failure.id, failure.reason
        )

    def _fail(self, failure: ItemFailure) -> None:
        """Count one failed document; past the limit, the writer stops taking operations."""
        self.stats.failed += 1
        if len(self.stats.failures) < MAX_KEPT_FAILURES:
            self.stats.failures.append(failure)
        logger.warning("document %s failed: %s", failure.id, failure.reason)
        if self.max_rejected is not None and self.stats.failed > self.max_rejected:
            first = "; ".join(f"{f.id}: {f.reason}" for f in self.stats.failures[:3])
            self._error = self._error or TooManyRejections(
                f"{self.stats.failed} documents failed (limit {self.max_rejected}); first: {first}"
            )
