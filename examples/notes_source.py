"""An example source: notes kept as JSON lines in a file, one `{"id", "text", "updated"}` each."""

from collections.abc import AsyncIterator
from pathlib import Path

import orjson

from elastic_ingest.connectors.source import BaseDataSource, ConfigField, Document, SourceError


class NotesDataSource(BaseDataSource):
    """Each line of a JSON-lines file is a note; `updated` is its version."""

    name = "Notes file"
    description = "Notes stored as JSON lines in a local file."
    CONFIGURATION = {
        "path": ConfigField("Notes file (JSON lines)", required=True),
    }

    @property
    def path(self) -> Path:
        return Path(self.config["path"])

    async def ping(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"notes file {self.config['path']} does not exist")

    async def get_docs(self) -> AsyncIterator[Document]:
        await self.ping()
        with self.path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    note = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise SourceError(f"{self.path}:{number}: not valid JSON") from None
                yield {
                    "_id": str(note["id"]),
                    "_timestamp": note["updated"],
                    "text": note.get("text", ""),
                }
