"""A source over documents listed in its configuration: tests the engine without a database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from elastic_ingest.connectors.source import (
    LAZY,
    PARTITIONS_FIELD,
    PARTITIONS_SETTING,
    BaseDataSource,
    ConfigField,
    Document,
    IncompleteListing,
    content_hash,
    deletion,
    lazy,
)


class MemoryDataSource(BaseDataSource):
    """Documents from a JSON list (ids required; `_timestamp` derived from content if absent).
    Incremental syncs list documents whose `_timestamp` sorts after the cursor's newest one,
    and report the ids in `deleted` as deleted."""

    name = "In-memory list"
    description = "Documents listed in the configuration; for tests and examples."
    CONFIGURATION: ClassVar = {
        "documents": ConfigField("Documents (JSON list)", "json", default=[]),
        "deleted": ConfigField("Ids an incremental sync reports deleted", "list", default=[]),
        "lazy": ConfigField("List versions first, fetch changed documents", "bool", False),
        "fail_after": ConfigField("Raise after this many documents (tests)", "int"),
        "incomplete": ConfigField("Report the listing incomplete (tests)", "bool", False),
        PARTITIONS_SETTING: PARTITIONS_FIELD,
        "fail_part": ConfigField("Raise while reading this part, from 1 (tests)", "int"),
    }
    _next_cursor: dict | None = None  # the newest `_timestamp` the last listing saw

    def sync_cursor(self) -> dict | None:
        return self._next_cursor

    async def partitions(self, count: int) -> list[dict]:
        """Consecutive slices of the list."""
        total = len(self.config["documents"])
        size = -(-total // count) if total else 0
        if total < 2 or count < 2:
            return []
        starts = range(0, total, size)
        return [
            {
                "label": f"documents {start + 1}-{min(start + size, total)}",
                "start": start,
                "stop": start + size,
                "number": n + 1,
            }
            for n, start in enumerate(starts)
        ]

    def _versioned(self) -> list[Document]:
        return [
            {**d, "_timestamp": d.get("_timestamp") or content_hash(d)}
            for d in self.config["documents"]
        ]

    async def get_docs(self) -> AsyncIterator[Document]:
        fail_after = self.config["fail_after"]
        documents = self._versioned()
        part = self.context.partition or {"start": 0, "stop": len(documents), "number": None}
        for position, document in enumerate(documents):
            if not part["start"] <= position < part["stop"]:
                continue
            if fail_after is not None and position == fail_after:
                raise RuntimeError(f"source failed after {position} documents")
            if part["number"] is not None and part["number"] == self.config["fail_part"]:
                raise RuntimeError(f"part {part['number']} failed")
            if self.config["lazy"]:
                document = lazy(
                    {"_id": document["_id"], "_timestamp": document["_timestamp"]}, position
                )
            yield document
        if self.config["incomplete"]:
            raise IncompleteListing("listing reported incomplete")
        self._next_cursor = self._newest(documents, None)

    async def fetch(self, documents: list[Document]) -> list[Document]:
        listed = self._versioned()
        return [listed[stub[LAZY]] for stub in documents]

    def can_sync_since(self, cursor: dict | None) -> bool:
        return bool(cursor) and "newest" in cursor

    async def get_docs_since(self, cursor: dict) -> AsyncIterator[Document]:
        documents = self._versioned()
        for document in documents:
            if document["_timestamp"] > (cursor.get("newest") or ""):
                yield document
        for document_id in self.config["deleted"]:
            yield deletion(document_id)
        if self.config["incomplete"]:
            raise IncompleteListing("listing reported incomplete")
        self._next_cursor = self._newest(documents, cursor)

    @staticmethod
    def _newest(documents: list[Document], cursor: dict | None) -> dict:
        stamps = [str(d["_timestamp"]) for d in documents] + [(cursor or {}).get("newest") or ""]
        return {"newest": max(stamps)}
