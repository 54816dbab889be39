"""The failures index: every document a sync could not write (Elasticsearch rejected it, or the
source could not read it, or Elasticsearch stayed too busy to take it), one record per
connector and document id, kept until a full sync of that connector no longer fails on it.
Records hold ids, reasons and times; the documents' bodies only when the user asks
(`service.failures_keep_documents`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from elastic_ingest.connectors.es.busy import send_until_not_busy
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.indices import ensure_index
from elastic_ingest.connectors.es.transport import NotFoundError

PAGE = 1000
MAPPINGS = {
    "dynamic": False,
    "properties": {
        "connector_id": {"type": "keyword"},
        "job_id": {"type": "keyword"},
        "index": {"type": "keyword"},
        "document_id": {"type": "keyword"},
        "action": {"type": "keyword"},
        "status": {"type": "integer"},
        "reason": {"type": "text"},
        "failed_at": {"type": "date"},
        "document": {"type": "object", "enabled": False},  # kept as given, never indexed
    },
}


@dataclass(frozen=True)
class FailureRecord:
    connector_id: str
    job_id: str
    index: str
    document_id: str
    action: str  # index, delete, or read (the source could not read it)
    status: int  # Elasticsearch's item status; 0 for a read failure
    reason: str
    failed_at: str
    document: dict | None = None  # the body, only with service.failures_keep_documents

    @property
    def record_id(self) -> str:
        """One record per connector and document: a later failure replaces an earlier one."""
        key = f"{self.connector_id}\0{self.document_id}".encode()
        return hashlib.blake2b(key, digest_size=16).hexdigest()


class FailureIndex:
    def __init__(self, es: ESClient, name: str):
        self.es, self.name = es, name

    async def record(self, records: list[FailureRecord]) -> None:
        """Write the records (created with the index on first use) in bulk; raises on any
        record Elasticsearch refused."""
        if not records:
            return
        await ensure_index(self.es, self.name, MAPPINGS)
        for start in range(0, len(records), PAGE):
            operations = []
            for record in records[start : start + PAGE]:
                kept = {key: value for key, value in record.__dict__.items() if value is not None}
                operations.append(
                    orjson.dumps({"index": {"_id": record.record_id}}) + b"\n" + orjson.dumps(kept)
                )
            await self._bulk(operations)

    async def of_job(self, job_id: str, size: int = 10_000) -> list[dict]:
        """The records a job left (its failures not yet cleared by a later sync)."""
        return await self._search({"term": {"job_id": job_id}}, size)

    async def clear_before(
        self, connector_id: str, job_id: str, written: Callable[[str], bool] | None = None
    ) -> int:
        """Delete the connector's records left by jobs other than `job_id`: a full sync tried
        every listed document again, so those either succeeded or were recorded again. With
        `written` (a sync that tried only some documents), only the records of documents it
        says the job wrote or deleted."""
        query = {
            "bool": {
                "filter": [{"term": {"connector_id": connector_id}}],
                "must_not": [{"term": {"job_id": job_id}}],
            }
        }
        hits = await self._search(query, 10_000, full=True)
        ids = [
            hit["_id"] for hit in hits if written is None or written(hit["_source"]["document_id"])
        ]
        for start in range(0, len(ids), PAGE):
            page = ids[start : start + PAGE]
            await self._bulk([orjson.dumps({"delete": {"_id": record_id}}) for record_id in page])
        return len(ids)

    async def _bulk(self, operations: list[bytes]) -> None:
        """Bulk requests of `operations` (each its action line and body), items refused as busy
        sent again (es/busy.py). Raises on any other item refused (a record already gone is
        not)."""

        async def send(pending: Sequence[bytes]) -> dict:
            body = b"\n".join(pending) + b"\n"
            return await self.es.bulk(index=self.name, operations=body, refresh=True)

        for result in await send_until_not_busy(operations, send):
            if result["status"] > 299 and result["status"] != 404:
                raise RuntimeError(f"failures index {self.name} refused {result}")

    async def _search(self, query: dict, size: int, full: bool = False) -> list[dict]:
        try:
            response = await self.es.search(
                index=self.name, query=query, size=size, sort=["failed_at", "document_id"]
            )
        except NotFoundError:  # no sync has failed a document yet
            return []
        hits = response["hits"]["hits"]
        return hits if full else [hit["_source"] for hit in hits]
