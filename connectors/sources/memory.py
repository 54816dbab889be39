"""A source over documents listed in its configuration: tests the engine without a database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from connectors.source import (
    BaseDataSource,
    ConfigField,
    Document,
    IncompleteListing,
    content_hash,
)


class MemoryDataSource(BaseDataSource):
    """Documents from a JSON list (ids required; `_timestamp` derived from content if absent)."""

    name = "In-memory list"
    description = "Documents listed in the configuration; for tests and examples."
    CONFIGURATION: ClassVar = {
        "documents": ConfigField("Documents (JSON list)", "json", default=[]),
        "fail_after": ConfigField("Raise after this many documents (tests)", "int"),
        "incomplete": ConfigField("Report the listing incomplete (tests)", "bool", False),
    }

    async def get_docs(self) -> AsyncIterator[Document]:
        fail_after = self.config["fail_after"]
        for position, document in enumerate(self.config["documents"]):
            if fail_after is not None and position == fail_after:
                raise RuntimeError(f"source failed after {position} documents")
            yield {**document, "_timestamp": document.get("_timestamp") or content_hash(document)}
        if self.config["incomplete"]:
            raise IncompleteListing("listing reported incomplete")
