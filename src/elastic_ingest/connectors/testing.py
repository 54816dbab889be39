"""The source contract as a test suite any source package can run in its own tests.

Subclass `SourceContract` as `Test<YourSource>` and give it a `harness` fixture returning a
`Harness`; pytest then runs every check against your source. A check whose inputs the harness
does not give is skipped with the reason, so a gap shows up in the report instead of passing.
Needs pytest and pytest-asyncio (the checks are coroutines, marked for its strict mode too).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from elastic_ingest.connectors.source import (
    LAZY,
    BaseDataSource,
    ConfigurationError,
    Document,
    SourceError,
)

__all__ = ["Backend", "Harness", "SourceContract", "read_all"]


class Backend(Protocol):
    """The test data behind a source: the suite seeds items `0..n-1`, then changes a few."""

    async def seed(self, n: int) -> None:
        """Create items 0..n-1 in an empty store."""

    def id_of(self, i: int) -> str:
        """The `_id` the source must give item i."""

    async def modify(self, i: int) -> None:
        """Change item i so that its version (`_timestamp`) changes."""

    async def remove(self, i: int) -> None:
        """Delete item i."""


@dataclass
class Harness:
    """How the suite drives one source; leave a failure input at None to skip its check."""

    source_class: type[BaseDataSource]
    config: dict[str, Any]
    backend: Backend
    bad_host: dict[str, Any] | None = None
    """Overrides pointing at an unreachable target; the error must name it."""
    missing_field: str | None = None
    """A required field; dropping it must raise a ConfigurationError naming it."""
    bad_value: tuple[str, Any] | None = None
    """(field, value of the wrong type); must raise a ConfigurationError naming the field."""
    bad_credentials: dict[str, Any] | None = None
    """Overrides the server rejects; ping must say "authentication failed"."""
    target: str | None = None
    """What the wrong-host error must contain; default: the first bad_host value, no scheme."""

    def make(self, **overrides: Any) -> BaseDataSource:
        return self.source_class({**self.config, **overrides})

    def unreachable_target(self) -> str:
        if self.target is not None:
            return self.target
        first = str(next(iter(self.bad_host.values())))
        return first.split("//")[-1].rstrip("/")


async def read_all(source: BaseDataSource) -> list[Document]:
    """Every document of one full read, `lazy` ones fetched as a sync of an empty index would
    fetch them, then close the source."""
    try:
        listed = [document async for document in source.get_docs()]
        stubs = [document for document in listed if LAZY in document]
        fetched = {str(d["_id"]): d for d in await source.fetch(stubs)} if stubs else {}
        documents = []
        for document in listed:
            if LAZY in document:
                document = fetched.get(str(document["_id"]))
                if document is None:
                    continue  # gone between the listing and the fetch
                document.pop(LAZY, None)
            documents.append(document)
        return documents
    finally:
        await source.close()


def _require(harness: Harness, name: str, why: str) -> Any:
    """The harness input `name`, or skip the check saying which input is missing and why."""
    value = getattr(harness, name, None)
    if value is None:
        pytest.skip(f"{harness.source_class.__name__}: harness gives no {name} ({why})")
    return value


def _require_backend(harness: Harness, *methods: str) -> None:
    missing = [m for m in methods if not callable(getattr(harness.backend, m, None))]
    if missing:
        names = ", ".join(missing)
        pytest.skip(f"{harness.source_class.__name__}: backend has no {names} (read-only data)")


async def _changed(harness: Harness, cursor: dict[str, Any] | None) -> bool:
    """A fresh source's answer to changed(cursor), as the service asks it before a sync."""
    source = harness.make()
    try:
        return await source.changed(cursor)
    finally:
        await source.close()


@pytest.mark.asyncio
class SourceContract:
    """The checks every source passes. Not collected itself: pytest collects `Test*` subclasses."""

    @pytest.fixture
    def harness(self) -> Harness:
        """Override in the subclass: return (or yield, to clean up) the source's Harness."""
        raise NotImplementedError(f"{type(self).__name__} must define a `harness` fixture")

    async def test_a_missing_required_field_is_named(self, harness: Harness) -> None:
        field = _require(harness, "missing_field", "the source has no required field")
        config = {key: value for key, value in harness.config.items() if key != field}
        with pytest.raises(ConfigurationError, match=re.escape(field)):
            harness.source_class(config)

    async def test_a_bad_value_is_named(self, harness: Harness) -> None:
        field, value = _require(harness, "bad_value", "no field to give a wrong type")
        with pytest.raises(ConfigurationError, match=re.escape(field)):
            harness.make(**{field: value})

    async def test_documents_have_unique_stable_ids_and_serialise_to_json(
        self, harness: Harness
    ) -> None:
        await harness.backend.seed(12)
        first, second = await read_all(harness.make()), await read_all(harness.make())
        ids = [document["_id"] for document in first]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        assert not duplicates, f"duplicate ids: {duplicates}"
        assert set(ids) == {harness.backend.id_of(i) for i in range(12)}
        assert sorted(ids) == sorted(document["_id"] for document in second), "ids not stable"
        for document in first:
            assert isinstance(document["_id"], str), f"_id is not a str: {document['_id']!r}"
            stamp = document.get("_timestamp")
            assert stamp and isinstance(stamp, str), f"no str _timestamp: {document['_id']}"
            json.dumps(document)  # stricter than orjson: no datetime, bytes, Decimal, ObjectId

    async def test_ping_succeeds(self, harness: Harness) -> None:
        await harness.backend.seed(1)
        source = harness.make()
        try:
            await source.ping()
        finally:
            await source.close()

    async def test_ping_fails_clearly_on_a_wrong_host(self, harness: Harness) -> None:
        overrides = _require(harness, "bad_host", "the source has no host or path to get wrong")
        broken = harness.make(**overrides)
        try:
            with pytest.raises(SourceError) as raised:
                await broken.ping()
        finally:
            await broken.close()
        message = str(raised.value)
        assert len(message.splitlines()) == 1, f"not one line: {message!r}"
        assert harness.unreachable_target() in message, f"target not named: {message!r}"

    async def test_ping_fails_clearly_on_wrong_credentials(self, harness: Harness) -> None:
        overrides = _require(
            harness, "bad_credentials", "no credentials, or a test server that accepts any"
        )
        await harness.backend.seed(1)
        source = harness.make(**overrides)
        try:
            with pytest.raises(SourceError, match="authentication failed") as raised:
                await source.ping()
        finally:
            await source.close()
        schema = harness.source_class.CONFIGURATION
        secrets = [str(v) for k, v in overrides.items() if k in schema and schema[k].sensitive]
        assert not any(secret in str(raised.value) for secret in secrets), "error shows a secret"

    async def test_a_second_read_reflects_a_change_and_a_delete(self, harness: Harness) -> None:
        _require_backend(harness, "modify", "remove")
        await harness.backend.seed(6)
        before = {d["_id"]: d["_timestamp"] for d in await read_all(harness.make())}
        await harness.backend.modify(1)
        await harness.backend.remove(2)
        after = {d["_id"]: d["_timestamp"] for d in await read_all(harness.make())}
        assert harness.backend.id_of(2) not in after, "a removed item is still listed"
        assert len(after) == 5
        changed = harness.backend.id_of(1)
        assert after[changed] != before[changed], "a modified item kept its _timestamp"
        assert all(after[i] == before[i] for i in after if i != changed), "untouched items moved"

    async def test_changed_is_never_wrongly_false(self, harness: Harness) -> None:
        _require_backend(harness, "modify", "remove")
        await harness.backend.seed(4)
        source = harness.make()
        assert await source.changed(None) is True, "changed(None) must be True"
        await read_all(source)
        await harness.backend.modify(0)
        assert await _changed(harness, source.sync_cursor()) is True, "missed a modification"
        again = harness.make()
        await again.changed(None)
        await read_all(again)
        await harness.backend.remove(3)
        assert await _changed(harness, again.sync_cursor()) is True, "missed a delete"

    async def test_the_id_listing_matches_the_documents(self, harness: Harness) -> None:
        await harness.backend.seed(5)
        documents = {str(d["_id"]) for d in await read_all(harness.make())}
        source = harness.make()
        try:
            ids = [str(document_id) async for document_id in source.get_ids()]
        finally:
            await source.close()
        assert sorted(ids) == sorted(documents), "get_ids() and get_docs() disagree"

    async def test_an_incremental_listing_includes_a_modification(self, harness: Harness) -> None:
        _require_backend(harness, "modify")
        if not harness.source_class.supports_incremental(harness.make().config):
            pytest.skip(f"{harness.source_class.__name__}: no incremental syncs with this config")
        await harness.backend.seed(4)
        full = harness.make()
        await full.changed(None)  # what a full sync asks first
        await read_all(full)
        cursor = full.sync_cursor()
        await harness.backend.modify(1)
        source = harness.make()
        try:
            assert source.can_sync_since(cursor), f"cannot resume from its own cursor {cursor}"
            listed = [str(d["_id"]) async for d in source.get_docs_since(cursor)]
            assert source.sync_cursor(), "no cursor for the next incremental sync"
        finally:
            await source.close()
        assert harness.backend.id_of(1) in listed, "an incremental listing missed a change"
