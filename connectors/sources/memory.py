"""A source over an in-process list of documents: lets the engine be tested without a database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import ClassVar

from connectors.source import (
    BaseDataSource,
    ConfigField,
    Document,
    IncompleteListing,
    content_hash,
)


class MemoryDataSource(BaseDataSource):
    """Documents from a Python list (ids required; `_timestamp` derived from content if absent)."""

    name = "In-memory list"
    description = "Documents from a Python list; for tests and examples."
    CONFIGURATION: ClassVar = {"label": ConfigField("Label", default="memory")}

    def __init__(
        self,
        configuration=None,
        documents: Iterable[Document] = (),
        *,
        fail_after: int | None = None,
        incomplete: bool = False,
    ):
        super().__init__(configuration)
        self.documents = list(documents)
        self.fail_after = fail_after
        self.incomplete = incomplete

    async def get_docs(self) -> AsyncIterator[Document]:
        for position, document in enumerate(self.documents):
            if self.fail_after is not None and position == self.fail_after:
                raise RuntimeError(f"source failed after {position} documents")
            yield {**document, "_timestamp": document.get("_timestamp") or content_hash(document)}
        if self.incomplete:
            raise IncompleteListing("listing reported incomplete")
