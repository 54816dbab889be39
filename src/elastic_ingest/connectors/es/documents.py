"""Protocol documents in Elasticsearch: read with their sequence numbers, create, search, and
update only if unchanged (compare-and-set). The protocol layer uses these, never the client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Self, TypeVar

from elastic_ingest.connectors.es.busy import send_until_not_busy
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.transport import ConflictError, NotFoundError

PAGE = 500
D = TypeVar("D", bound="VersionedDocument")


class VersionConflict(Exception):  # noqa: N818 - an expected outcome of compare-and-set
    """The document changed (or vanished) since it was read; nothing was written."""


@dataclass
class VersionedDocument:
    """A document's id and source, plus what a compare-and-set update needs."""

    id: str
    doc: dict[str, Any]
    seq_no: int
    primary_term: int

    @classmethod
    def from_hit(cls, hit: dict) -> Self:
        return cls(hit["_id"], hit["_source"], hit["_seq_no"], hit["_primary_term"])


class DocumentIndex:
    """One protocol index (connectors or jobs), seen as documents with versions."""

    def __init__(self, es: ESClient, index: str):
        self.es = es.as_connectors_product()
        self.index = index

    async def get(self, document_id: str) -> dict | None:
        """The raw hit (`_id`, `_source`, `_seq_no`, `_primary_term`), or None when absent."""
        try:
            return await self.es.get(index=self.index, id=document_id)
        except NotFoundError:
            return None

    async def create(self, document: dict, document_id: str | None = None) -> str | None:
        """Index a new document; with an id, None when that id already exists."""
        try:
            response = await self.es.index(
                index=self.index,
                id=document_id,
                document=document,
                refresh=True,
                op_type="create" if document_id else "index",
            )
        except ConflictError:
            return None
        return response["_id"]

    async def search(self, query: dict, size: int, sort: list) -> list[dict]:
        response = await self.es.search(
            index=self.index, query=query, size=size, seq_no_primary_term=True, sort=sort
        )
        return response["hits"]["hits"]

    async def aggregate(self, query: dict, aggs: dict) -> dict:
        """The aggregations of `aggs` over the documents matching `query` (no hits)."""
        response = await self.es.search(index=self.index, query=query, size=0, aggs=aggs)
        return response.get("aggregations") or {}

    async def scan(self, query: dict) -> AsyncIterator[dict]:
        """Every matching hit, page by page (no total limit)."""
        search_after = None
        while True:
            response = await self.es.search(
                index=self.index,
                query=query,
                size=PAGE,
                sort=["_doc"],
                seq_no_primary_term=True,
                search_after=search_after,
            )
            hits = response["hits"]["hits"]
            for hit in hits:
                yield hit
            if len(hits) < PAGE:
                return
            search_after = hits[-1]["sort"]

    async def update_if_unchanged(self, document: D, fields: dict) -> D:
        """Write `fields` only if nobody changed `document` since it was read (VersionConflict
        otherwise); return the document as it now is."""
        try:
            response = await self.es.update(
                index=self.index,
                id=document.id,
                doc=fields,
                refresh=True,
                if_seq_no=document.seq_no,
                if_primary_term=document.primary_term,
            )
        except (ConflictError, NotFoundError):
            raise VersionConflict(f"{self.index}/{document.id} changed since it was read") from None
        return replace(
            document,
            doc=merged(document.doc, fields),
            seq_no=response["_seq_no"],
            primary_term=response["_primary_term"],
        )

    async def replace_if_unchanged(self, document: VersionedDocument, source: dict) -> bool:
        """Write `source` as the whole document, only if unchanged since read (False if not)."""
        response = await self.es.options(ignore_status=(404, 409)).index(
            index=self.index,
            id=document.id,
            document=source,
            if_seq_no=document.seq_no,
            if_primary_term=document.primary_term,
            refresh=True,
        )
        return response.status in (200, 201)

    async def delete_if_unchanged(self, document: VersionedDocument) -> bool:
        """Delete the document only if unchanged since it was read (False if not, or gone)."""
        response = await self.es.options(ignore_status=(404, 409)).delete(
            index=self.index,
            id=document.id,
            if_seq_no=document.seq_no,
            if_primary_term=document.primary_term,
            refresh=True,
        )
        return response.status == 200

    async def delete_matching(self, query: dict, batch: int = PAGE) -> int:
        """Delete every document matching `query`, in bulk requests (the integration-test
        distribution of Elasticsearch has no delete-by-query); the count deleted. Raises on the
        first document that could not be deleted."""
        ids = [hit["_id"] async for hit in self.scan(query)]
        return await self._bulk_by_id(ids, "delete", None, batch)

    async def patch(self, document_id: str, fields: dict) -> bool:
        """Write `fields` whatever changed meanwhile; False when the document does not exist."""
        try:
            await self.es.update(
                index=self.index, id=document_id, doc=fields, refresh=True, retry_on_conflict=5
            )
        except NotFoundError:
            return False
        return True

    async def patch_many(self, document_ids: list[str], fields: dict, batch: int = PAGE) -> int:
        """Write the same `fields` into many documents, whatever changed meanwhile, in bulk
        requests (one per `batch`); the count updated (missing documents are skipped)."""
        return await self._bulk_by_id(
            document_ids, "update", {"doc": fields}, batch, retry_on_conflict=5
        )

    async def _bulk_by_id(
        self, ids: list[str], action: str, body: dict | None, batch: int, **options
    ) -> int:
        """One bulk `action` per id (with `body` when it takes one), `batch` ids per request;
        the count done. A missing document is skipped; an item refused as busy is sent again
        (es/busy.py); any other failure raises."""

        async def send(pending: Sequence[str]) -> dict:
            operations: list[dict] = []
            for document_id in pending:
                operations.append({action: {"_index": self.index, "_id": document_id, **options}})
                if body is not None:
                    operations.append(body)
            return await self.es.bulk(operations=operations, refresh=True)

        done = 0
        for start in range(0, len(ids), batch):
            for result in await send_until_not_busy(ids[start:][:batch], send):
                status = result.get("status")
                if status not in (200, 404):
                    raise RuntimeError(
                        f"{self.index}/{result.get('_id')} not {action}d: {result.get('error')}"
                    )
                done += status == 200
        return done


def merged(source: dict, fields: dict) -> dict:
    """What Elasticsearch's partial update makes of `source`: objects merge, the rest replaces."""
    result = dict(source)
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result
