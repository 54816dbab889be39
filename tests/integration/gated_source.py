"""A source that opens only with the right token: tests that secrets reach a source intact."""

from typing import ClassVar

from elastic_ingest.connectors.source import BaseDataSource, ConfigField, SourceError


class GatedDataSource(BaseDataSource):
    name = "Gated test source"
    description = "Three documents, for a caller with the token `open-sesame` (tests only)."
    CONFIGURATION: ClassVar = {
        "token": ConfigField("Token", required=True, sensitive=True, display="password"),
    }

    async def ping(self) -> None:
        if self.config["token"] != "open-sesame":
            raise SourceError("gated source: authentication failed (wrong token)")

    async def get_docs(self):
        await self.ping()
        for i in range(3):
            yield {"_id": f"g{i}", "_timestamp": "v1", "n": i}
