"""The write path shared by full and incremental syncs: listed documents are checked against
the sync rules, diffed against the index, fetched when new or changed (with text extracted from
binary files), and written in bulk. Listing reads ahead in a background task."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from elastic_ingest.connectors.access_control import ACCESS_CONTROL, identities
from elastic_ingest.connectors.engine.progress import SyncProgress
from elastic_ingest.connectors.engine.receipt import ListedPairs
from elastic_ingest.connectors.es.bulk import BulkWriter
from elastic_ingest.connectors.extraction import reduce_whitespace
from elastic_ingest.connectors.source import (
    BINARY,
    DELETED,
    LAZY,
    READ_ERROR,
    BaseDataSource,
    Document,
)
from elastic_ingest.connectors.sync_rules import UNDECIDED, SyncRules

if TYPE_CHECKING:
    from elastic_ingest.connectors.extraction import Extractor

BATCH = 1000
READ_AHEAD_BATCHES = 4
# A batch goes on after this long however small: a slow source's documents move as they come.
BATCH_SECONDS = 1.0

CheckIn = Callable[[], None]
"""Called every few documents: raises SyncCanceled (or another error) when the job must stop."""

Unchanged = Callable[[list[Document]], Awaitable[list[bool]]]
"""For a batch of listed documents: True where the index already holds that `_timestamp`."""


def keep_going() -> None:
    return None


@dataclass
class SyncOptions:
    """What a job does with listed documents beyond comparing versions."""

    rules: SyncRules = field(default_factory=SyncRules)
    rules_changed: bool = False  # re-decide what the listing alone could not (fetch it again)
    refetch: bool = False  # read every lazy document again (content settings changed)
    extractor: Extractor | None = None  # text from binary files; None: metadata only
    reduce_whitespace: bool = False  # collapse whitespace runs in extracted text
    # document-level security: every written document carries `_allow_access_control` (an
    # empty list when the source gave none: visible to nobody); off: never carries it
    access_control: bool = False


class DocumentStream:
    """Listed documents -> sync rules -> skip unchanged -> fetch changed lazy ones -> writes.

    Basic rules decide on the listed document when it holds the rules' fields, else after it
    is fetched. `delete_excluded`: an excluded document is deleted at once (for a sync without
    a stale-deletion step)."""

    def __init__(
        self,
        source: BaseDataSource,
        unchanged: Unchanged,
        writer: BulkWriter,
        progress: SyncProgress,
        options: SyncOptions | None = None,
        delete_excluded: bool = False,
        pairs: ListedPairs | None = None,
    ):
        self.source = source
        self.unchanged = unchanged
        self.writer = writer
        self.progress = progress
        self.options = options or SyncOptions()
        self.delete_excluded = delete_excluded
        self.pairs = pairs  # a full listing's (id, version) pairs, for its parity receipt
        self.pending: list[Document] = []

    async def write(self, documents: AsyncIterator[Document], check_in: CheckIn) -> None:
        """Diff each batch, fetch the changed lazy documents (`source.FETCH_BATCH` at a time),
        write the rest; the writer is closed on success and aborted on any failure."""
        try:
            async for batch in _batches(documents, BATCH, check_in):
                await self.add(batch)
                check_in()
            await self.fetch_pending()
            await self.writer.close()
        except BaseException:
            await self.writer.abort()
            raise

    async def add(self, batch: list[Document]) -> None:
        rules, listed, undecided = self.options.rules, [], set()
        for document in batch:
            _check_shape(document)
            if document.get(DELETED):
                await self.writer.delete(str(document["_id"]))
                continue
            rule = rules.first_match(document, LAZY not in document)
            if rule is UNDECIDED:
                undecided.add(id(document))
            elif rule is not None and rule.policy == "exclude":
                await self._exclude(document, rule.id, self.delete_excluded)
                continue
            listed.append(document)
        self.progress.seen += len(listed)
        for document, same in zip(listed, await self.unchanged(listed), strict=True):
            if same and self._read_again(id(document) in undecided):
                same = False
            if same:
                self.progress.skipped += 1
                self.progress.not_fetched += LAZY in document
                self._listed(document)
            elif LAZY in document:
                self.pending.append(document)
            else:
                await self._write(document)
        if len(self.pending) >= self.source.FETCH_BATCH:
            await self.fetch_pending()
        await asyncio.sleep(0)  # let heartbeats and in-flight requests run

    def _read_again(self, undecided: bool) -> bool:
        """An unchanged document is read (and written) again when what the sync makes of
        content changed, or when new rules need its content to decide."""
        return self.options.refetch or (undecided and self.options.rules_changed)

    async def fetch_pending(self) -> None:
        """Fetch the pending lazy documents; those listed without a version are diffed again
        now that they have one."""
        if not self.pending:
            return
        stubs, self.pending = self.pending, []
        unversioned = {str(d["_id"]) for d in stubs if d.get("_timestamp") is None}
        fetched = await self.source.fetch(stubs)
        self.progress.fetched += len(stubs)
        await self._extract([document for document in fetched if BINARY in document])
        recheck = [d for d in fetched if str(d.get("_id")) in unversioned]
        same = dict(zip(map(id, recheck), await self.unchanged(recheck), strict=True))
        for document in fetched:
            document.pop(LAZY, None)
            _check_shape(document)
            rule = self.options.rules.first_match(document)
            if rule is not None and rule.policy == "exclude":
                await self._exclude(document, rule.id, delete=True)  # an older version may be held
                continue
            if same.get(id(document)) and not self.options.refetch:
                self.progress.skipped += 1
                self._listed(document)
                continue
            await self._write(document)

    async def _extract(self, documents: list[Document]) -> None:
        """Text of fetched binary files into `body` (or the reason into `extraction_error`);
        the extractor runs them in parallel, off the event loop."""
        extractor = self.options.extractor

        async def extract(document: Document) -> None:
            data, name = document.pop(BINARY)
            if extractor is None:
                return
            extracted = await extractor.extract(data, name)
            if extracted.text is None:
                document["extraction_error"] = extracted.error
            elif self.options.reduce_whitespace:
                document["body"] = reduce_whitespace(extracted.text)
            else:
                document["body"] = extracted.text

        await asyncio.gather(*(extract(document) for document in documents))

    async def _exclude(self, document: Document, rule_id: str, delete: bool) -> None:
        self.progress.filtered[rule_id] = self.progress.filtered.get(rule_id, 0) + 1
        if delete:
            await self.writer.delete(str(document["_id"]))

    def _listed(self, document: Document) -> None:
        """Count the document, in the version the index will hold, into the listing's pairs."""
        if self.pairs is not None:
            self.pairs.add(str(document["_id"]), document.get("_timestamp"))

    async def _write(self, document: Document) -> None:
        self._listed(document)
        if READ_ERROR in document:  # kept as it is in the index; retried next sync
            self.writer.reject(str(document["_id"]), document[READ_ERROR])
            return
        if self.options.access_control:
            document[ACCESS_CONTROL] = identities(document.get(ACCESS_CONTROL))
        else:
            document.pop(ACCESS_CONTROL, None)
        document_id, body = _encode(document)
        self.progress.volume += len(body)
        await self.writer.index(document_id, body)


def _encode(document: Document) -> tuple[str, bytes]:
    """The id, and the body without it (taken out for the dump rather than copying the rest)."""
    document_id = document.pop("_id")
    try:
        return str(document_id), orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)
    finally:
        document["_id"] = document_id


def _check_shape(document: Document) -> None:
    if "_id" not in document or not (
        "_timestamp" in document or LAZY in document or document.get(DELETED)
    ):
        raise ValueError(f"source document without _id or _timestamp: {str(document)[:200]}")


async def _batches(
    documents: AsyncIterator[Document], size: int, check_in: CheckIn
) -> AsyncIterator[list[Document]]:
    """Group documents for vectorised lookups, reading ahead in a background task so the source
    fetches its next page while the previous one is diffed and written. A slow source's batch
    goes on after BATCH_SECONDS however small, so its documents are written (and counted on the
    job) as they come. Checks in every 100 documents; any source error is raised here, in
    order."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=READ_AHEAD_BATCHES)
    done = object()

    async def read() -> None:
        batch: list[Document] = []
        started = time.monotonic()
        try:
            async for document in documents:
                if not batch:
                    started = time.monotonic()
                batch.append(document)
                if len(batch) % 100 == 0:
                    check_in()
                if len(batch) >= size or time.monotonic() - started >= BATCH_SECONDS:
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
