"""MongoDB collections, on PyMongo's asyncio client (the maintained successor of Motor). Longer
than a module here should be: it is every part of the source contract for one source (TLS,
advanced rules, parts, versions first, incremental, identities), each short, read together."""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import orjson
from bson import json_util
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError

from elastic_ingest.connectors.access_control import (
    ACCESS_CONTROL,
    DLS_SETTING,
    EVERYONE,
    User,
    dls_enabled,
    group_identity,
    identities,
    user_identity,
)
from elastic_ingest.connectors.rule_shapes import object_problems
from elastic_ingest.connectors.source import (
    DLS_FIELD,
    LAZY,
    PARTITIONS_FIELD,
    PARTITIONS_SETTING,
    BaseDataSource,
    ConfigField,
    ConfigurationError,
    Document,
    IncompleteListing,
    SourceError,
    content_hash,
    lazy,
)
from elastic_ingest.connectors.sources.bson_json import document_id, to_json


def without_credentials(uri: str) -> str:
    """The URI with any user:password removed, safe to show in errors and logs."""
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class MongoDataSource(BaseDataSource):
    """One collection; `_timestamp` from `timestamp_field` when set, else a content hash.

    With `timestamp_field`, a resync of a collection the index already holds lists `_id` and
    the timestamp first and fetches only the changed documents by `_id` (`list_versions_first`),
    and incremental syncs read `timestamp_field >= last seen - INCREMENTAL_OVERLAP`."""

    FETCH_BATCH = 5000  # changed documents per `_id $in` query

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
        "list_versions_first": ConfigField(
            "With a timestamp field: list versions, then fetch changed documents by _id",
            "bool",
            True,
            display="toggle",
            tooltip="Turn off for servers that scan the whole collection for every query "
            "(FerretDB on SQLite): one full read is then cheaper.",
        ),
        "filter": ConfigField("find() filter (JSON)", "json", display="textarea"),
        "projection": ConfigField("find() projection (JSON)", "json", display="textarea"),
        "pipeline": ConfigField("Aggregation pipeline instead of find (JSON list)", "json"),
        "batch_size": ConfigField("Documents per batch from the server", "int", 1000),
        "timeout_ms": ConfigField("Server selection timeout (ms)", "int", 10000),
        PARTITIONS_SETTING: PARTITIONS_FIELD,
        DLS_SETTING: DLS_FIELD,
        "access_control_field": ConfigField(
            "Field listing who may see each document",
            default=ACCESS_CONTROL,
            tooltip="User names, group:NAME or everyone; a document without it is visible to "
            "nobody (with document level security on).",
        ),
        "users_collection": ConfigField(
            "Collection of users (document level security)",
            tooltip="One document per user: _id is the user name, groups_field their groups.",
        ),
        "groups_field": ConfigField("Field of a user's groups", default="groups"),
    }

    @classmethod
    def validate_configuration(cls, configuration, strict: bool = False):
        values = super().validate_configuration(configuration, strict)
        if dls_enabled(values) and not values["users_collection"]:
            raise ConfigurationError(
                ["users_collection: missing value (needed with document level security)"]
            )
        return values

    ALIASES: ClassVar = {"ssl_enabled": "tls"}  # Elastic's MongoDB connector's name

    def __init__(self, configuration=None, context=None):
        super().__init__(configuration, context)
        self._client: AsyncMongoClient | None = None
        self._ca = None
        self._newest: Newest | None = None

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

    @property
    def collection(self):
        return self.client[self.config["database"]][self.config["collection"]]

    @classmethod
    def advanced_rules_problems(cls, rules) -> list[str]:
        """Elastic's MongoDB shape: `{"find": {"filter", "projection"}}` or
        `{"aggregate": {"pipeline": [...]}}` (MongoDB extended JSON, e.g. `{"$date": ...}`)."""
        problems = object_problems(rules, "advanced rules", {"find": dict, "aggregate": dict})
        if problems:
            return problems
        if len(rules) != 1:
            return ["advanced rules need exactly one of find or aggregate"]
        if "find" in rules:
            return object_problems(
                rules["find"], "advanced rules.find", {"filter": dict, "projection": dict}
            )
        stages = rules["aggregate"]
        problems = object_problems(
            stages, "advanced rules.aggregate", {"pipeline": list}, required=("pipeline",)
        )
        if not problems and not (
            stages["pipeline"] and all(isinstance(stage, dict) for stage in stages["pipeline"])
        ):
            problems.append("advanced rules.aggregate.pipeline must be a non-empty list of stages")
        return problems

    def _rule(self, kind: str, part: str) -> Any:
        """One part of the advanced rules, read as MongoDB extended JSON (None if absent)."""
        value = ((self.context.advanced_rules or {}).get(kind) or {}).get(part)
        return json_util.loads(orjson.dumps(value)) if value else None

    @property
    def _pipeline(self) -> list | None:
        """The configured pipeline (or filter, as a $match) followed by the rules' stages."""
        stages = self._rule("aggregate", "pipeline")
        if not stages:
            return self.config["pipeline"]
        where = self.config["filter"]
        return (self.config["pipeline"] or ([{"$match": where}] if where else [])) + stages

    def _find(self, query: dict | None = None, projection: dict | None = None, pipeline=None):
        """A cursor over the configured filter (or pipeline) and the advanced rules, narrowed
        by `query`."""
        batch_size = self.config["batch_size"]
        if self._pipeline:
            stages = ([{"$match": query}] if query else []) + self._pipeline
            return self.collection.aggregate(stages + (pipeline or []), batchSize=batch_size)
        parts = (self.config["filter"], self._rule("find", "filter"), query)
        where = [part for part in parts if part]
        projection = projection or self._rule("find", "projection") or self.config["projection"]
        where_all = {"$and": where} if len(where) > 1 else (where[0] if where else {})
        return self.collection.find(where_all, projection, batch_size=batch_size)

    async def _rows(self, cursor) -> AsyncIterator[dict]:
        if not hasattr(cursor, "__aiter__"):
            cursor = await cursor  # aggregate() is a coroutine that returns the cursor
        async with cursor:
            async for raw in cursor:
                yield raw

    async def get_docs(self) -> AsyncIterator[Document]:
        field = self.config["timestamp_field"]
        self._newest = Newest(field) if field else None
        versions_first = (
            field
            and self.config["list_versions_first"]
            and not self._pipeline
            and self.context.index_holds != 0  # an empty index: everything is new, read it once
        )
        part = self._part_query()
        if versions_first:
            async for raw in self._rows(self._find(part, projection={"_id": 1, field: 1})):
                yield self._stub(raw)
        else:
            async for raw in self._rows(self._find(part)):
                yield self._document(raw)

    async def confirm_complete(self, listed: int) -> None:
        """FerretDB ends the cursor of a collection dropped mid-read without an error: a
        collection that is gone, or that holds far more than was read (when no filter narrows
        the read), makes the listing incomplete."""
        name = f"{self.config['database']}.{self.config['collection']}"
        database = self.client[self.config["database"]]
        found = await database.list_collection_names(filter={"name": self.config["collection"]})
        if not found:
            raise IncompleteListing(f"MongoDB collection {name} no longer exists after the read")
        if self._pipeline or self.config["filter"] or self._rule("find", "filter"):
            return  # a narrowed read: the collection's count says nothing about it
        # the collection's metadata count ($collStats): 0.4 s for 100k documents on FerretDB,
        # where a count command scans them (13 s)
        stats = await self.collection.aggregate([{"$collStats": {"count": {}}}])
        holds = next(iter([row async for row in stats]), {}).get("count", 0)
        if holds > listed + max(100, listed // 10):
            raise IncompleteListing(
                f"MongoDB collection {name} holds about {holds:,} documents, the read listed "
                f"{listed:,}: it ended early"
            )

    async def partitions(self, count: int) -> list[dict]:
        """`_id` ranges of about equal size, from the `_id`s at evenly spaced ranks. Only when
        every `_id` has one type (a range matches one type: the smallest and largest `_id`,
        in MongoDB's order, tell) and no aggregation pipeline reshapes documents."""
        if self._pipeline or count < 2:
            return []
        ends = [await self._id_at(direction, 0) for direction in (1, -1)]
        if None in ends or type(ends[0]) is not type(ends[1]):
            return []
        total = await self.collection.estimated_document_count()
        bounds = []
        for n in range(1, count):
            bound = await self._id_at(1, n * total // count)
            if bound is not None and bound not in bounds and bound != ends[0]:
                bounds.append(bound)
        if not bounds:
            return []
        edges = [None, *bounds, None]
        return [_id_range(low, high) for low, high in zip(edges, edges[1:], strict=False)]

    async def _id_at(self, direction: int, rank: int) -> Any:
        cursor = self.collection.find({}, {"_id": 1}).sort("_id", direction).skip(rank).limit(1)
        rows = [row async for row in self._rows(cursor)]
        return rows[0]["_id"] if rows else None

    def _part_query(self) -> dict | None:
        """The `_id` range of the part this source reads (None: all of it)."""
        part = self.context.partition
        if part is None:
            return None
        bounds = {}
        if part.get("from"):
            bounds["$gte"] = json_util.loads(part["from"])
        if part.get("to"):
            bounds["$lt"] = json_util.loads(part["to"])
        return {"_id": bounds} if bounds else None

    def _document(self, raw: dict) -> Document:
        document = to_json(raw)
        document["_id"] = document_id(raw.get("_id"))
        field = self.config["timestamp_field"]
        stamp = document.get(field) if field else None
        document["_timestamp"] = str(stamp) if stamp else content_hash(document)
        if self.dls_enabled:
            document[ACCESS_CONTROL] = identities(document.get(self.config["access_control_field"]))
        if self._newest is not None:
            self._newest.see(raw.get(field))
        return document

    def _stub(self, raw: dict) -> Document:
        """`_id` and version only; a document without the timestamp gets its version (a
        content hash) when fetched."""
        field = self.config["timestamp_field"]
        stamp = to_json(raw.get(field))
        self._newest.see(raw.get(field))
        stub = {"_id": document_id(raw.get("_id")), "_timestamp": str(stamp) if stamp else None}
        return lazy(stub, raw.get("_id"))

    async def fetch(self, documents: list[Document]) -> list[Document]:
        raw_ids = [document[LAZY] for document in documents]
        cursor = self._find({"_id": {"$in": raw_ids}})
        return [self._document(raw) async for raw in self._rows(cursor)]

    @classmethod
    def incremental_problem(cls, values: dict[str, Any]) -> str | None:
        if values.get("timestamp_field"):
            return None
        return "set timestamp_field (the field that holds each document's last change time)"

    def can_sync_since(self, cursor: dict | None) -> bool:
        return Newest.resumes(cursor, self.config["timestamp_field"])

    async def get_docs_since(self, cursor: dict) -> AsyncIterator[Document]:
        """Documents whose timestamp is at or after the newest one the last sync saw, less the
        overlap (dates only): writers' clocks are not this service's. Deletes are not seen."""
        field = self.config["timestamp_field"]
        self._newest = Newest(field)
        self._newest.see(Newest.start(cursor))
        since = Newest.start(cursor, self.INCREMENTAL_OVERLAP)
        query = {field: {"$gte": since}} if since is not None else None
        async for raw in self._rows(self._find(query)):
            yield self._document(raw)

    def sync_cursor(self) -> dict | None:
        """The newest timestamp the listing saw (None without a timestamp field)."""
        return self._newest.cursor() if self._newest is not None else None

    async def get_ids(self) -> AsyncIterator[str]:
        if self._pipeline:
            rows = self._rows(self._find(pipeline=[{"$project": {"_id": 1}}]))
        else:
            rows = self._rows(self._find(projection={"_id": 1}))
        async for raw in rows:
            yield document_id(raw.get("_id"))

    async def get_access_control(self) -> AsyncIterator[User]:
        """One user per document of `users_collection`, with their groups."""
        users = self.client[self.config["database"]][self.config["users_collection"]]
        groups_field = self.config["groups_field"]
        async for raw in self._rows(users.find({}, projection={groups_field: 1})):
            name = document_id(raw.get("_id"))
            groups = raw.get(groups_field)
            groups = [groups] if isinstance(groups, str) else groups
            held = [
                group_identity(g.removeprefix("group:")) for g in groups or [] if isinstance(g, str)
            ]
            yield User(name, {"username": name}, [user_identity(name), *held, EVERYONE])

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._ca is not None:
            self._ca.close()
            self._ca = None


class Newest:
    """The newest `timestamp_field` value a sync saw, kept in the cursor as
    `{"timestamp_field", "type", "newest"}` (type: date, number or string)."""

    def __init__(self, field: str):
        self.field = field
        self.value: Any = None

    def see(self, value: Any) -> None:
        if value is None or isinstance(value, bool) or _kind(value) is None:
            return
        if self.value is None or (_kind(value) == _kind(self.value) and value > self.value):
            self.value = value

    def cursor(self) -> dict:
        value = self.value
        kind = _kind(value)
        shown = value.isoformat() if kind == "date" else value
        return {"timestamp_field": self.field, "type": kind, "newest": shown}

    @staticmethod
    def resumes(cursor: dict | None, field: str | None) -> bool:
        return bool(field and cursor and cursor.get("timestamp_field") == field)

    @staticmethod
    def start(cursor: dict, overlap: datetime.timedelta | None = None) -> Any:
        """The cursor's newest value as the server compares it (less `overlap` for dates)."""
        value, kind = cursor.get("newest"), cursor.get("type")
        if value is None:
            return None
        if kind == "date":
            moment = datetime.datetime.fromisoformat(value)
            return moment - overlap if overlap else moment
        return value


def _id_range(low: Any, high: Any) -> dict:
    """A part of the collection: `low <= _id < high` (None: open), as extended JSON."""
    return {
        "label": f"_id from {low if low is not None else 'the first'} "
        f"to {'before ' + str(high) if high is not None else 'the last'}",
        "from": json_util.dumps(low) if low is not None else None,
        "to": json_util.dumps(high) if high is not None else None,
    }


def _kind(value: Any) -> str | None:
    if isinstance(value, datetime.datetime):
        return "date"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    if isinstance(value, str):
        return "string"
    return None
