"""The source contract (connectors.testing) run over every built-in source, on the real stack.

Each source is one SourceContract subclass with a harness fixture; the backends below are how
these tests seed, change and remove items in each store.
"""

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aioboto3
import orjson
import pytest
from pymongo import AsyncMongoClient

from elastic_ingest.connectors.sources.directory import DirectoryDataSource
from elastic_ingest.connectors.sources.mongo import MongoDataSource
from elastic_ingest.connectors.sources.s3 import S3DataSource
from elastic_ingest.connectors.testing import Harness, SourceContract
from examples.notes_source import NotesDataSource


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
    """With `timestamps`, every document has an `updated_at` that each change moves forward."""

    def __init__(self, collection_name, timestamps=False):
        self.client = AsyncMongoClient(os.environ["MONGODB_URL"])
        self.collection = self.client["contract"][collection_name]
        self.timestamps = timestamps

    def _stamp(self, offset_seconds=0):
        if not self.timestamps:
            return {}
        return {"updated_at": datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=offset_seconds)}

    async def seed(self, n):
        await self.collection.insert_many(
            [{"_id": f"m{i}", "n": i, "text": f"t{i}", **self._stamp(i)} for i in range(n)]
        )

    def id_of(self, i):
        return f"m{i}"

    async def modify(self, i):
        changes = {"text": "changed", **self._stamp(86_400 * 365)}
        await self.collection.update_one({"_id": f"m{i}"}, {"$set": changes})

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


class TestDirectorySource(SourceContract):
    @pytest.fixture
    def harness(self, tmp_path):
        return Harness(
            DirectoryDataSource,
            {"path": str(tmp_path)},
            DirectoryBackend(tmp_path),
            bad_host={"path": str(tmp_path / "missing-folder")},
            missing_field="path",
            bad_value=("max_content_bytes", "lots"),
        )


class TestMongoSource(SourceContract):
    @pytest.fixture
    async def harness(self):
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


class TestMongoSourceWithTimestampField(SourceContract):
    """The same source where it lists versions first and runs incremental syncs."""

    @pytest.fixture
    async def harness(self):
        name = f"c{uuid.uuid4().hex[:10]}"
        backend = MongoBackend(name, timestamps=True)
        config = {
            "host": os.environ["MONGODB_URL"],
            "database": "contract",
            "collection": name,
            "timestamp_field": "updated_at",
        }
        yield Harness(
            MongoDataSource,
            config,
            backend,
            bad_host={"host": "mongodb://127.0.0.1:1/", "timeout_ms": 1500},
            missing_field="database",
            bad_value=("batch_size", "big"),
            bad_credentials={"user": "alice", "password": "wrong"},
        )
        await backend.close()


class TestS3Source(SourceContract):
    # No bad_credentials: moto accepts any key, so the wrong-credentials check is skipped.
    @pytest.fixture
    def harness(self):
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


class TestNotesExampleSource(SourceContract):
    @pytest.fixture
    def harness(self, tmp_path):
        return Harness(
            NotesDataSource,
            {"path": str(tmp_path / "notes.jsonl")},
            NotesBackend(tmp_path / "notes.jsonl"),
            bad_host={"path": str(tmp_path / "nowhere" / "notes.jsonl")},
            missing_field="path",
            bad_value=("path", ["not", "a", "path"]),
        )
