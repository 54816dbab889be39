"""The contract every source passes, on the real stack. A new source gets these tests by adding
one harness fixture to SOURCES below."""

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
import orjson
import pytest
from pymongo import AsyncMongoClient

from connectors.source import BaseDataSource, ConfigurationError, SourceError
from connectors.sources.directory import DirectoryDataSource
from connectors.sources.mongo import MongoDataSource
from connectors.sources.s3 import S3DataSource
from examples.notes_source import NotesDataSource


@dataclass
class Harness:
    """How the contract drives one source: make it, seed items, change one, remove one."""

    source_class: type[BaseDataSource]
    config: dict[str, Any]
    backend: Any
    bad_host: dict[str, Any]
    missing_field: str
    bad_value: tuple[str, Any]
    bad_credentials: dict[str, Any] | None = None

    def make(self, **overrides) -> BaseDataSource:
        return self.source_class({**self.config, **overrides})


class DirectoryBackend:
    def __init__(self, root: Path):
        self.root = root

    async def seed(self, n):
        for i in range(n):
            folder = self.root / f"group{i % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"item{i}.txt").write_text(f"item {i}")

    def id_of(self, i):
        return f"group{i % 3}/item{i}.txt"

    async def modify(self, i):
        path = self.root / self.id_of(i)
        path.write_text(f"item {i} modified")
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    async def remove(self, i):
        (self.root / self.id_of(i)).unlink()


class MongoBackend:
    def __init__(self, collection_name):
        self.client = AsyncMongoClient(os.environ["MONGODB_URL"])
        self.collection = self.client["contract"][collection_name]

    async def seed(self, n):
        await self.collection.insert_many(
            [{"_id": f"m{i}", "n": i, "text": f"t{i}"} for i in range(n)]
        )

    def id_of(self, i):
        return f"m{i}"

    async def modify(self, i):
        await self.collection.update_one({"_id": f"m{i}"}, {"$set": {"text": "changed"}})

    async def remove(self, i):
        await self.collection.delete_one({"_id": f"m{i}"})

    async def close(self):
        await self.collection.drop()
        await self.client.close()


class S3Backend:
    def __init__(self, bucket):
        self.bucket = bucket
        self.session = aioboto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )

    def client(self):
        return self.session.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"])

    async def seed(self, n):
        async with self.client() as s3:
            await s3.create_bucket(Bucket=self.bucket)
            for i in range(n):
                await s3.put_object(
                    Bucket=self.bucket, Key=f"dir{i % 3}/obj{i}.txt", Body=f"object {i}".encode()
                )

    def id_of(self, i):
        return f"{self.bucket}/dir{i % 3}/obj{i}.txt"

    async def modify(self, i):
        async with self.client() as s3:
            await s3.put_object(Bucket=self.bucket, Key=f"dir{i % 3}/obj{i}.txt", Body=b"new")

    async def remove(self, i):
        async with self.client() as s3:
            await s3.delete_object(Bucket=self.bucket, Key=f"dir{i % 3}/obj{i}.txt")


@pytest.fixture
def directory_harness(tmp_path):
    return Harness(
        DirectoryDataSource,
        {"path": str(tmp_path)},
        DirectoryBackend(tmp_path),
        bad_host={"path": str(tmp_path / "missing-folder")},
        missing_field="path",
        bad_value=("max_content_bytes", "lots"),
    )


@pytest.fixture
async def mongodb_harness():
    name = f"c{uuid.uuid4().hex[:10]}"
    backend = MongoBackend(name)
    yield Harness(
        MongoDataSource,
        {"host": os.environ["MONGODB_URL"], "database": "contract", "collection": name},
        backend,
        bad_host={"host": "mongodb://127.0.0.1:1/", "timeout_ms": 1500},
        missing_field="database",
        bad_value=("batch_size", "big"),
        bad_credentials={"user": "alice", "password": "wrong"},
    )
    await backend.close()


@pytest.fixture
def s3_harness():
    bucket = f"contract-{uuid.uuid4().hex[:10]}"
    config = {
        "buckets": [bucket],
        "endpoint_url": os.environ["S3_ENDPOINT_URL"],
        "access_key_id": "test",
        "secret_access_key": "test",
    }
    return Harness(
        S3DataSource,
        config,
        S3Backend(bucket),
        bad_host={"endpoint_url": "http://127.0.0.1:1"},
        missing_field="buckets",
        bad_value=("page_size", "many"),
    )


@pytest.fixture
def example_harness(tmp_path):
    return Harness(
        NotesDataSource,
        {"path": str(tmp_path / "notes.jsonl")},
        NotesBackend(tmp_path / "notes.jsonl"),
        bad_host={"path": str(tmp_path / "nowhere" / "notes.jsonl")},
        missing_field="path",
        bad_value=("path", ["not", "a", "path"]),
    )


class NotesBackend:
    def __init__(self, path: Path):
        self.path = path

    def _write(self, notes):
        self.path.write_text("".join(orjson.dumps(n).decode() + "\n" for n in notes))

    def _read(self):
        return [orjson.loads(line) for line in self.path.read_text().splitlines()]

    async def seed(self, n):
        self._write(
            [
                {"id": f"n{i}", "text": f"note {i}", "updated": f"2026-01-01T00:00:{i:02d}"}
                for i in range(n)
            ]
        )

    def id_of(self, i):
        return f"n{i}"

    async def modify(self, i):
        self._write(
            [
                {**n, "updated": "2026-02-02T00:00:00"} if n["id"] == f"n{i}" else n
                for n in self._read()
            ]
        )

    async def remove(self, i):
        self._write([n for n in self._read() if n["id"] != f"n{i}"])


SOURCES = ["directory_harness", "mongodb_harness", "s3_harness", "example_harness"]


@pytest.fixture(params=SOURCES)
def harness(request):
    return request.getfixturevalue(request.param)


async def read_all(source):
    try:
        return [document async for document in source.get_docs()]
    finally:
        await source.close()


async def test_configuration_errors_name_the_field(harness):
    with pytest.raises(ConfigurationError, match=harness.missing_field):
        harness.source_class(
            {k: v for k, v in harness.config.items() if k != harness.missing_field}
        )
    field, value = harness.bad_value
    with pytest.raises(ConfigurationError, match=field):
        harness.make(**{field: value})


async def test_documents_have_unique_stable_ids_and_serialise_to_json(harness):
    await harness.backend.seed(12)
    first, second = await read_all(harness.make()), await read_all(harness.make())
    ids = [document["_id"] for document in first]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert sorted(ids) == sorted(document["_id"] for document in second)
    assert {harness.backend.id_of(i) for i in range(12)} == set(ids)
    for document in first:
        assert isinstance(document["_id"], str) and document["_timestamp"]
        orjson.dumps(document)


async def test_ping_succeeds_and_fails_clearly_on_a_wrong_host(harness):
    await harness.backend.seed(1)
    source = harness.make()
    await source.ping()
    await source.close()
    broken = harness.make(**harness.bad_host)
    started = time.monotonic()
    with pytest.raises(SourceError) as raised:
        await broken.ping()
    await broken.close()
    assert len(str(raised.value).splitlines()) == 1
    assert time.monotonic() - started < 30
    target = next(iter(harness.bad_host.values()))
    assert str(target).split("//")[-1].rstrip("/") in str(raised.value)


# Sources whose stack server checks credentials (moto accepts any key, so S3 is not listed).
CREDENTIAL_SOURCES = ["mongodb_harness"]


@pytest.fixture(params=CREDENTIAL_SOURCES)
def credentials_harness(request):
    return request.getfixturevalue(request.param)


async def test_ping_fails_clearly_on_wrong_credentials(credentials_harness):
    harness = credentials_harness
    await harness.backend.seed(1)
    source = harness.make(**harness.bad_credentials)
    with pytest.raises(SourceError, match="authentication failed"):
        await source.ping()
    await source.close()
    assert "wrong" not in str(source.config.get("host"))


async def test_a_second_read_reflects_a_change_and_a_delete(harness):
    await harness.backend.seed(6)
    before = {d["_id"]: d["_timestamp"] for d in await read_all(harness.make())}
    await harness.backend.modify(1)
    await harness.backend.remove(2)
    after = {d["_id"]: d["_timestamp"] for d in await read_all(harness.make())}
    assert harness.backend.id_of(2) not in after and len(after) == 5
    changed = harness.backend.id_of(1)
    assert after[changed] != before[changed]
    assert all(after[i] == before[i] for i in after if i != changed)


async def test_changed_is_never_wrongly_false(harness):
    await harness.backend.seed(4)
    source = harness.make()
    assert await source.changed(None) is True
    await read_all(source)
    cursor = source.sync_cursor()
    await harness.backend.modify(0)
    assert await harness.make().changed(cursor) is True
    again = harness.make()
    await again.changed(None)
    await read_all(again)
    await harness.backend.remove(3)
    assert await harness.make().changed(again.sync_cursor()) is True
