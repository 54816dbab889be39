"""connectors.testing run the way a source package runs it: a sound source passes, a source
without some inputs gets skips with reasons, and broken sources fail the check they break."""

import uuid
from dataclasses import dataclass, field

import pytest

from elastic_ingest.connectors.source import BaseDataSource, ConfigField, SourceError
from elastic_ingest.connectors.testing import Harness

pytest_plugins = ["pytester"]


@dataclass
class Shelf:
    """An in-memory store: items `{id: (version, text)}` and a revision bumped on every change."""

    token: str = "open"
    items: dict[str, tuple[int, str]] = field(default_factory=dict)
    revision: int = 0
    changed_at: dict[str, int] = field(default_factory=dict)  # item -> revision of its change


SHELVES: dict[str, Shelf] = {}


class ShelfDataSource(BaseDataSource):
    """A tiny source that keeps the contract."""

    name = "Shelf"
    CONFIGURATION = {
        "shelf": ConfigField("Shelf name", required=True),
        "token": ConfigField("Token", sensitive=True, default="open"),
        "page_size": ConfigField("Page size", type="int", default=10),
    }

    def shelf(self) -> Shelf:
        name = self.config["shelf"]
        if name not in SHELVES:
            raise SourceError(f"shelf {name!r} does not exist")
        if self.config["token"] != SHELVES[name].token:
            raise SourceError(f"shelf {name!r}: authentication failed")
        return SHELVES[name]

    async def ping(self):
        self.shelf()

    revision: int | None = None

    def sync_cursor(self):
        return {"revision": self.revision}

    async def changed(self, cursor):
        return cursor != {"revision": self.shelf().revision}

    async def get_docs(self):
        shelf = self.shelf()
        self.revision = shelf.revision
        for item_id, (version, text) in sorted(shelf.items.items()):
            yield {"_id": item_id, "_timestamp": str(version), "text": text}

    async def get_docs_since(self, cursor):
        shelf = self.shelf()
        for item_id, (version, text) in sorted(shelf.items.items()):
            if shelf.changed_at[item_id] > cursor["revision"]:
                yield {"_id": item_id, "_timestamp": str(version), "text": text}
        self.revision = shelf.revision


class DuplicateIds(ShelfDataSource):
    """Broken: ids built from a prefix of the key, so b1 and b10 collide."""

    async def get_docs(self):
        async for document in super().get_docs():
            yield {**document, "_id": document["_id"][:2]}


class NeverChanged(ShelfDataSource):
    """Broken: claims nothing changed, which silently loses updates."""

    async def changed(self, cursor):
        return False


class MissesChanges(ShelfDataSource):
    """Broken: its incremental listing looks at the wrong revision and sees nothing new."""

    async def get_docs_since(self, cursor):
        async for document in super().get_docs_since({"revision": self.shelf().revision}):
            yield document


class SecretInError(ShelfDataSource):
    """Broken: the authentication error repeats the token it was given."""

    async def ping(self):
        try:
            await super().ping()
        except SourceError as error:
            raise SourceError(f"{error} (token {self.config['token']!r})") from None


class ShelfBackend:
    def __init__(self, name: str, token: str):
        self.shelf = SHELVES[name] = Shelf(token)

    async def seed(self, n):
        self.shelf.revision += 1
        self.shelf.items.update({f"b{i}": (1, f"book {i}") for i in range(n)})
        self.shelf.changed_at.update({f"b{i}": self.shelf.revision for i in range(n)})

    def id_of(self, i):
        return f"b{i}"

    async def modify(self, i):
        version, _ = self.shelf.items[f"b{i}"]
        self.shelf.revision += 1
        self.shelf.items[f"b{i}"] = (version + 1, "rewritten")
        self.shelf.changed_at[f"b{i}"] = self.shelf.revision

    async def remove(self, i):
        del self.shelf.items[f"b{i}"]
        self.shelf.revision += 1


def shelf_harness(source_class: type[BaseDataSource], *, complete: bool = True) -> Harness:
    """A harness over a fresh shelf; `complete=False` leaves out every failure input."""
    name = f"shelf-{uuid.uuid4().hex[:8]}"
    harness = Harness(
        source_class, {"shelf": name, "token": "s3cret"}, ShelfBackend(name, "s3cret")
    )
    if complete:
        harness.bad_host = {"shelf": "nowhere"}
        harness.missing_field = "shelf"
        harness.bad_value = ("page_size", "many")
        harness.bad_credentials = {"token": "guess"}
    return harness


SUITE = """
import pytest
from elastic_ingest.connectors.testing import SourceContract
from tests.unit.test_contract_suite import {source}, shelf_harness

class TestShelf(SourceContract):
    @pytest.fixture
    def harness(self):
        return shelf_harness({source}, complete={complete})
"""


def run_suite(pytester, source: str, complete: bool = True):
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(SUITE.format(source=source, complete=complete))
    return pytester.runpytest("-rfs")


def test_a_sound_source_passes_every_check(pytester):
    run_suite(pytester, "ShelfDataSource").assert_outcomes(passed=10)


def test_checks_without_inputs_are_skipped_with_the_reason(pytester):
    result = run_suite(pytester, "ShelfDataSource", complete=False)
    result.assert_outcomes(passed=6, skipped=4)
    for missing in ("missing_field", "bad_value", "bad_host", "bad_credentials"):
        result.stdout.fnmatch_lines([f"SKIPPED *ShelfDataSource: harness gives no {missing} (*"])


@pytest.mark.parametrize(
    ("source", "failing_check", "reason"),
    [
        (
            "DuplicateIds",
            "test_documents_have_unique_stable_ids_and_serialise_to_json",
            "duplicate ids",
        ),
        ("NeverChanged", "test_changed_is_never_wrongly_false", "changed(None) must be True"),
        ("SecretInError", "test_ping_fails_clearly_on_wrong_credentials", "error shows a secret"),
        (
            "MissesChanges",
            "test_an_incremental_listing_includes_a_modification",
            "an incremental listing missed a change",
        ),
    ],
)
def test_a_broken_source_fails_the_check_it_breaks(pytester, source, failing_check, reason):
    result = run_suite(pytester, source)
    result.assert_outcomes(passed=9, failed=1)
    result.stdout.fnmatch_lines([f"E *AssertionError: {reason}*", f"FAILED *::{failing_check}*"])
