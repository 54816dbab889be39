"""MongoDB collections, on PyMongo's asyncio client (the maintained successor of Motor)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError

from connectors.source import BaseDataSource, ConfigField, Document, SourceError, content_hash
from connectors.sources.bson_json import document_id, to_json


def without_credentials(uri: str) -> str:
    """The URI with any user:password removed, safe to show in errors and logs."""
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class MongoDataSource(BaseDataSource):
    """One collection; `_timestamp` from `timestamp_field` when set, else a content hash."""

    name = "MongoDB"
    description = "Documents of one MongoDB collection (find filter or aggregation pipeline)."
    CONFIGURATION: ClassVar = {
        "host": ConfigField("Server URI", default="mongodb://127.0.0.1:27017", required=True),
        "database": ConfigField("Database", required=True),
        "collection": ConfigField("Collection", required=True),
        "user": ConfigField("Username"),
        "password": ConfigField("Password", sensitive=True, display="password"),
        "direct_connection": ConfigField("Direct connection", "bool", False, display="toggle"),
        "tls": ConfigField("Use TLS", "bool", False, display="toggle"),
        "tls_ca_file": ConfigField("CA certificate file for TLS"),
        "ssl_ca": ConfigField("CA certificate for TLS (PEM text)", display="textarea"),
        "tls_insecure": ConfigField("Skip TLS certificate checks", "bool", False, display="toggle"),
        "timestamp_field": ConfigField("Field holding each document's last-modified time"),
        "filter": ConfigField("find() filter (JSON)", "json", display="textarea"),
        "projection": ConfigField("find() projection (JSON)", "json", display="textarea"),
        "pipeline": ConfigField("Aggregation pipeline instead of find (JSON list)", "json"),
        "batch_size": ConfigField("Documents per batch from the server", "int", 1000),
        "timeout_ms": ConfigField("Server selection timeout (ms)", "int", 10000),
    }
    ALIASES: ClassVar = {"ssl_enabled": "tls"}  # Elastic's MongoDB connector's name

    def __init__(self, configuration=None):
        super().__init__(configuration)
        self._client: AsyncMongoClient | None = None
        self._ca = None

    @property
    def client(self) -> AsyncMongoClient:
        if self._client is None:
            options = {
                "directConnection": self.config["direct_connection"],
                "tls": self.config["tls"],
                "serverSelectionTimeoutMS": self.config["timeout_ms"],
                "tz_aware": True,
            }
            if self.config["tls_ca_file"] or self.config["ssl_ca"]:
                options["tlsCAFile"] = self.config["tls_ca_file"] or self._ca_file()
            if self.config["tls_insecure"]:
                options["tlsInsecure"] = True
            if self.config["user"]:
                options["username"] = self.config["user"]
                options["password"] = self.config["password"] or ""
            self._client = AsyncMongoClient(self.config["host"], **options)
        return self._client

    def _ca_file(self) -> str:
        """PyMongo reads a CA from a file: keep the PEM text in a private one while open."""
        if self._ca is None:
            self._ca = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=True)
            self._ca.write(self.config["ssl_ca"])
            self._ca.flush()
        return self._ca.name

    @property
    def where(self) -> str:
        return f"{without_credentials(self.config['host'])}"

    async def ping(self) -> None:
        try:
            await self.client.admin.command("ping")
            names = await self.client[self.config["database"]].list_collection_names()
        except OperationFailure as error:
            if error.code == 18 or "auth" in str(error).lower():
                reason = str(error.details.get("errmsg") if error.details else error).splitlines()[
                    0
                ]
                raise SourceError(
                    f"MongoDB at {self.where}: authentication failed for user "
                    f"{self.config['user']!r} ({reason})"
                ) from None
            raise SourceError(f"MongoDB at {self.where}: {error.details or error}") from None
        except PyMongoError as error:
            reason = str(error).split(",")[0].split("(")[0].strip()
            raise SourceError(f"MongoDB at {self.where} is unreachable: {reason}") from None
        if self.config["collection"] not in names:
            raise SourceError(
                f"MongoDB at {self.where}: collection "
                f"{self.config['database']}.{self.config['collection']} does not exist"
            )

    async def get_docs(self) -> AsyncIterator[Document]:
        collection = self.client[self.config["database"]][self.config["collection"]]
        batch_size = self.config["batch_size"]
        if self.config["pipeline"]:
            cursor = await collection.aggregate(self.config["pipeline"], batchSize=batch_size)
        else:
            cursor = collection.find(
                self.config["filter"] or {}, self.config["projection"], batch_size=batch_size
            )
        timestamp_field = self.config["timestamp_field"]
        async with cursor:
            async for raw in cursor:
                document = to_json(raw)
                document["_id"] = document_id(raw.get("_id"))
                stamp = document.get(timestamp_field) if timestamp_field else None
                document["_timestamp"] = str(stamp) if stamp else content_hash(document)
                yield document

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._ca is not None:
            self._ca.close()
            self._ca = None
