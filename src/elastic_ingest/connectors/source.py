"""The source contract: what a data source class provides, and the Document it yields. A plugin
author reads the whole contract in this one file (docs/writing-a-source.md walks through it)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from elastic_ingest.connectors.access_control import User, dls_enabled

logger = logging.getLogger(__name__)

Document = dict[str, Any]
"""One JSON-safe mapping per source item; `_id` (str) and `_timestamp` (str) are required."""

LAZY = "_lazy"
DELETED = "_deleted"
BINARY = "_binary"


def lazy(document: Document, handle: Any = True) -> Document:
    """Mark a listed document whose expensive part (a body, a file's text, the rest of a record)
    is not read yet: the sync calls `fetch` for it only if its `_timestamp` is new or changed.
    `handle` is whatever the source needs to fetch it (e.g. the raw key)."""
    document[LAZY] = handle
    return document


def binary(document: Document, data: bytes, name: str) -> Document:
    """Attach a fetched file's bytes for the framework to extract text from (into `body`);
    only done when the job asked for it (`extract_binary_up_to`)."""
    document[BINARY] = (data, name)
    return document


def listing_started() -> datetime:
    """Now, for a cursor's `since`: taken before a listing starts, so nothing slips between."""
    return datetime.now(UTC)


def cursor_since(cursor: dict[str, Any] | None) -> datetime | None:
    """The `since` moment a listing source stored in its cursor (None if absent or unreadable)."""
    try:
        return datetime.fromisoformat(cursor["since"]) if cursor else None
    except (KeyError, TypeError, ValueError):
        return None


def deletion(document_id: str) -> Document:
    """What an incremental listing yields for an item the source positively reports deleted."""
    return {"_id": document_id, DELETED: True}


class SourceError(RuntimeError):
    """The source cannot be read (unreachable, bad credentials, failed mid-listing)."""


class IncompleteListing(SourceError):
    """The source could not list everything; a sync must not delete anything after this."""


class ConfigurationError(ValueError):
    """Connector configuration values that a source cannot use; names every bad field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


_SCALARS = {"str": str, "int": int, "float": float}


@dataclass(frozen=True)
class ConfigField:
    """One configuration field, published to the connector document in the protocol's shape."""

    label: str
    type: str = "str"  # str | int | float | bool | list | json
    default: Any = None
    required: bool = False
    sensitive: bool = False
    tooltip: str = ""
    display: str = "text"
    options: list = field(default_factory=list)

    def to_protocol(self, order: int) -> dict[str, Any]:
        shape = asdict(self)
        default = shape.pop("default")
        return {
            **shape,
            "value": default,
            "default_value": default,
            "order": order,
            "depends_on": [],
            "validations": [],
            "ui_restrictions": [],
        }

    def convert(self, name: str, value: Any) -> Any:
        """The value as this field's type; raise ValueError with a readable reason."""
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        if self.type == "json":
            if isinstance(value, dict | list):
                return value
            try:
                return orjson.loads(value)
            except (orjson.JSONDecodeError, TypeError):
                raise ValueError(f"{name}: expected JSON, got {value!r}") from None
        if self.type == "list":
            if isinstance(value, list):
                return [str(item) for item in value]
            if isinstance(value, str):
                return [item.strip() for item in value.split(",") if item.strip()]
            raise ValueError(f"{name}: expected a list or a comma-separated string, got {value!r}")
        if isinstance(value, dict | list | bool) and self.type != "bool":
            raise ValueError(f"{name}: expected {self.type}, got {value!r}")
        try:
            return _SCALARS[self.type](value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected {self.type}, got {value!r}") from None


DLS_FIELD = ConfigField(
    "Enable document level security",
    "bool",
    False,
    display="toggle",
    tooltip="Each document carries the identities allowed to see it, and an access-control "
    "sync writes each user's identities: search with `elastic-ingest connector api-key` keys.",
)
"""The configuration toggle of a source that supports document-level security, as
`use_document_level_security` (the name Kibana shows)."""

PARTITIONS_SETTING = "sync_partitions"
PARTITIONS_FIELD = ConfigField(
    "Parts a full sync reads at once",
    "int",
    1,
    tooltip="A big source read in this many parts in parallel (each its own task run); "
    "documents the source no longer has are deleted once every part was read to its end.",
)
"""The configuration field of a source that can split its full listing (`partitions`)."""

READ_ERROR = "_read_error"


def unreadable(document: Document, reason: str) -> Document:
    """Mark a listed document whose content could not be read: the sync counts it as a failed
    document on the job, writes nothing for it, deletes nothing because of it, and retries it
    next time."""
    document[READ_ERROR] = reason
    return document


def _plain(value: Any) -> Any:
    return value.get("value") if isinstance(value, dict) and "value" in value else value


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != []


def content_hash(document: Document) -> str:
    """A stable version for sources without a natural one: unchanged bytes, unchanged hash."""
    body = document
    if "_timestamp" in document:
        body = {key: value for key, value in document.items() if key != "_timestamp"}
    return hashlib.blake2b(
        orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


@dataclass(frozen=True)
class ReadContext:
    """What the sync asks of a source's reads, one value given at construction (a source never
    finds settings poked into it later). The framework amends it once, when its index snapshot
    tells how many documents the target holds (`index_holds`)."""

    # The part of the listing `get_docs` reads, one of `partitions()`; None: all of it.
    partition: dict[str, Any] | None = None
    # The job's advanced sync rules (validated by `advanced_rules_problems`), which a source
    # that supports them pushes down into its listing; None: no advanced rules.
    advanced_rules: Any = None
    # The largest binary file the job extracts text from (its pipeline's
    # `extract_binary_content`; 0: none): a file source fetches those too, see `binary`.
    extract_binary_up_to: int = 0
    # How many documents the target index held when this sync started (None: unknown);
    # a source that lists versions before fetching may read everything at once when 0.
    index_holds: int | None = None

    def but(self, **changes: Any) -> ReadContext:
        return replace(self, **changes)


class BaseDataSource:
    """Subclass this: declare CONFIGURATION, implement ping() and get_docs(); the rest is optional.

    `self.config` holds the validated values (defaults filled in, types converted), and
    `self.context` what the sync asks of this read (`ReadContext`).
    Optional: `fetch` (with `lazy` documents), `get_docs_since` (incremental syncs), `get_ids`
    (deletion syncs; by default the ids of `get_docs`, never fetched).
    """

    name: ClassVar[str] = "Unnamed source"
    description: ClassVar[str] = ""
    CONFIGURATION: ClassVar[dict[str, ConfigField]] = {}
    # Other names for fields, e.g. those Elastic's connector of the same kind writes: a
    # connector created in Kibana keeps working here.
    ALIASES: ClassVar[dict[str, str]] = {}
    # The fields its documents can have, so that a sync rule on any other field is flagged
    # (it would never match); None: any field (a MongoDB collection has no fixed schema).
    DOCUMENT_FIELDS: ClassVar[frozenset[str] | None] = None
    # Lazy documents are fetched this many at a time (a source whose every query scans the
    # collection wants few, large calls).
    FETCH_BATCH: ClassVar[int] = 500
    # An incremental sync re-lists this far before its cursor (clock skew between writers and
    # this service, uploads that finish late); re-listed unchanged items are not re-written.
    INCREMENTAL_OVERLAP: ClassVar[timedelta] = timedelta(minutes=5)

    def __init__(
        self, configuration: dict[str, Any] | None = None, context: ReadContext | None = None
    ):
        self.config = self.validate_configuration(configuration or {})
        self.context = context or ReadContext()

    @classmethod
    def configuration_schema(cls) -> dict[str, dict[str, Any]]:
        """The fields in the connector protocol's shape, for publishing to a connector."""
        return {
            name: spec.to_protocol(order)
            for order, (name, spec) in enumerate(cls.CONFIGURATION.items(), start=1)
        }

    @classmethod
    def sensitive_fields(cls) -> frozenset[str]:
        """Fields never shown, logged or copied into a job, whatever a document's flags say."""
        names = {name for name, spec in cls.CONFIGURATION.items() if spec.sensitive}
        return frozenset(names | {alias for alias, name in cls.ALIASES.items() if name in names})

    @classmethod
    def validate_configuration(
        cls, configuration: dict[str, Any], strict: bool = False
    ) -> dict[str, Any]:
        """Accept plain values or protocol-shaped `{name: {value: ...}}`; report every bad field.
        A field the source does not know is a problem when `strict` (what a user just typed),
        and otherwise kept in the document but ignored with a warning (another tool wrote it)."""
        values, problems = {}, []
        configuration = dict(configuration)
        for alias, name in cls.ALIASES.items():
            if alias in configuration and not _present(_plain(configuration.get(name))):
                configuration[name] = configuration[alias]
        for name in configuration:
            if name in cls.CONFIGURATION or name in cls.ALIASES:
                continue
            if strict:
                problems.append(f"{name}: unknown field for {cls.name}")
            elif _present(_plain(configuration[name])):
                logger.warning("%s ignores configuration field %r", cls.name, name)
        for name, spec in cls.CONFIGURATION.items():
            value = configuration.get(name)
            if isinstance(value, dict) and "value" in value and spec.type != "json":
                value = value["value"]
            if not _present(value):
                if spec.required and not _present(spec.default):
                    problems.append(f"{name}: missing value ({spec.label})")
                values[name] = spec.default
                continue
            try:
                values[name] = spec.convert(name, value)
            except ValueError as error:  # the reason quotes the value: never a secret's
                problems.append(f"{name}: expected {spec.type}" if spec.sensitive else str(error))
        if problems:
            raise ConfigurationError(problems)
        return values

    @classmethod
    def is_configured(cls, configuration: dict[str, Any]) -> bool:
        """True when every required field has a value."""
        try:
            cls.validate_configuration(configuration)
        except ConfigurationError:
            return False
        return True

    async def ping(self) -> None:
        """Raise SourceError with a plain reason when the source cannot be reached."""

    async def changed(self, cursor: dict[str, Any] | None) -> bool:
        """Anything new since the sync that stored `cursor`? Answer True when unsure."""
        return True

    def sync_cursor(self) -> dict[str, Any] | None:
        """What to remember after a listing (`get_docs` or `get_docs_since`) ended: passed back
        to `changed` and `get_docs_since` by the next sync. None: nothing."""
        return None

    def get_docs(self) -> AsyncIterator[Document]:
        """Yield every document; raise if the listing is partial (IncompleteListing or other).
        A document may be `lazy`: then `fetch` completes it, only if the index lacks it."""
        raise NotImplementedError

    async def fetch(self, documents: list[Document]) -> list[Document]:
        """The complete documents for these `lazy` ones (any order; an item gone since it was
        listed is left out; one that cannot be read is marked `unreadable`)."""
        return documents

    async def confirm_complete(self, listed: int) -> None:
        """Called after a listing ended without an error and before anything is deleted: raise
        IncompleteListing when the source can tell it ended early all the same (its collection
        or bucket is gone, it holds far more than the `listed` items read)."""

    @classmethod
    def incremental_problem(cls, values: dict[str, Any]) -> str | None:
        """Why a connector with these configuration values cannot run incremental syncs, said
        as what to change (None: it can). Override when it depends on the values."""
        if cls.get_docs_since is BaseDataSource.get_docs_since:
            return f"{cls.name} cannot list what changed since a sync"
        return None

    @classmethod
    def supports_incremental(cls, values: dict[str, Any]) -> bool:
        return cls.incremental_problem(values) is None

    def can_sync_since(self, cursor: dict[str, Any] | None) -> bool:
        """Whether `cursor` (stored by an earlier successful sync) is one `get_docs_since` can
        start from; if not, an incremental job runs as a full sync."""
        return bool(cursor) and self.supports_incremental(self.config)

    def get_docs_since(self, cursor: dict[str, Any]) -> AsyncIterator[Document]:
        """Yield what changed since the sync that stored `cursor` (documents, possibly `lazy`,
        and `deletion`s the source can prove); `sync_cursor` then returns the next one."""
        raise NotImplementedError

    async def get_ids(self) -> AsyncIterator[str]:
        """Every id the source holds, for a deletion sync; raise if the listing is partial."""
        async for document in self.get_docs():
            yield str(document["_id"])

    async def partitions(self, count: int) -> list[dict[str, Any]]:
        """Up to `count` disjoint parts (JSON-safe descriptions) that together hold every
        document, for a full sync read in parallel: `get_docs` then lists `self.context.partition`
        only. [] when this source, or its configuration, cannot be split."""
        return []

    def get_access_control(self) -> AsyncIterator[User]:
        """Every user and the identities they hold, for an access-control sync; raise if the
        listing is partial. A source that implements it declares `DLS_FIELD` in CONFIGURATION
        and, when `self.dls_enabled`, puts `_allow_access_control` on every document."""
        raise NotImplementedError

    @classmethod
    def supports_dls(cls) -> bool:
        return cls.get_access_control is not BaseDataSource.get_access_control

    @property
    def dls_enabled(self) -> bool:
        """Whether this connector's documents carry the identities allowed to see them."""
        return self.supports_dls() and dls_enabled(self.config)

    @classmethod
    def advanced_rules_problems(cls, rules: Any) -> list[str]:
        """What is wrong with an advanced sync rules snippet for this source (empty: valid).
        A source that overrides this honours `self.context.advanced_rules` in every listing."""
        return ["this source does not support advanced sync rules"]

    @classmethod
    def supports_advanced_rules(cls) -> bool:
        return (
            cls.advanced_rules_problems.__func__  # type: ignore[attr-defined]
            is not BaseDataSource.advanced_rules_problems.__func__  # type: ignore[attr-defined]
        )

    @classmethod
    def features(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The connector's `features` in the protocol's nested form (what Kibana reads). Basic
        sync rules are the framework's, so every source has them."""
        return {
            "incremental_sync": {"enabled": cls.supports_incremental(values)},
            "sync_rules": {
                "basic": {"enabled": True},
                "advanced": {"enabled": cls.supports_advanced_rules()},
            },
            "document_level_security": {"enabled": cls.supports_dls()},
        }

    async def close(self) -> None:
        """Release clients and connections."""
