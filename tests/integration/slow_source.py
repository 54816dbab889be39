"""A source that streams slowly, so tests can cancel or stop a sync while it runs."""

import asyncio
from typing import ClassVar

from elastic_ingest.connectors.source import BaseDataSource, ConfigField


class SlowDataSource(BaseDataSource):
    name = "Slow test source"
    description = "Yields `count` documents, pausing `pause` seconds every 10 (tests only)."
    CONFIGURATION: ClassVar = {
        "count": ConfigField("Documents", "int", 100),
        "pause": ConfigField("Pause every 10 documents (s)", "float", 0.05),
        "prefix": ConfigField("Id prefix", default="slow"),
        "version": ConfigField("Every document's version", default="v1"),
    }

    async def get_docs(self):
        for i in range(self.config["count"]):
            if i % 10 == 0:
                await asyncio.sleep(self.config["pause"])
            yield {
                "_id": f"{self.config['prefix']}-{i}",
                "_timestamp": self.config["version"],
                "n": i,
            }
