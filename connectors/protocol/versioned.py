"""Protocol documents read together with their sequence numbers, and updated only if unchanged."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Self

from elasticsearch import AsyncElasticsearch


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


async def update_if_unchanged(
    es: AsyncElasticsearch, index: str, document: VersionedDocument, fields: dict[str, Any]
) -> Any:
    """Write `fields` only if nobody changed `document` since it was read (ConflictError if so);
    return the document as it now is."""
    response = await es.update(
        index=index,
        id=document.id,
        doc=fields,
        refresh=True,
        if_seq_no=document.seq_no,
        if_primary_term=document.primary_term,
    )
    return replace(
        document,
        doc={**document.doc, **fields},
        seq_no=response["_seq_no"],
        primary_term=response["_primary_term"],
    )
