"""Realistic benchmark documents (~1 KB, mixed types), seeded into MongoDB and S3 once."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import random
from collections.abc import Iterator

from bson import Int64, ObjectId
from pymongo import AsyncMongoClient

WORDS = (
    "sync index mongo bucket object stream search cluster shard replica document field "
    "query filter vector token prefect flow task batch retry cursor snapshot"
).split()


def make_document(i: int, version: int = 0) -> dict:
    rng = random.Random(i * 7919 + version)
    return {
        "_id": f"doc-{i:08d}",
        "sku": ObjectId(bytes(rng.getrandbits(8) for _ in range(12))),
        "title": " ".join(rng.choices(WORDS, k=6)),
        "body": " ".join(rng.choices(WORDS, k=110)),
        "price": rng.randint(100, 100_000) / 100,
        "stock": Int64(rng.randint(0, 10**12)),
        "active": rng.random() > 0.3,
        "created": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
        + datetime.timedelta(seconds=rng.randint(0, 10**8)),
        "tags": rng.sample(WORDS, 4),
        "dimensions": {"w": rng.randint(1, 99), "h": rng.randint(1, 99), "unit": "cm"},
        "version": version,
    }


async def seed_mongo(url: str, database: str, collection: str, count: int) -> float:
    """Insert `count` documents unless the collection already holds exactly them; seconds spent."""
    started = asyncio.get_running_loop().time()
    client = AsyncMongoClient(url)
    try:
        target = client[database][collection]
        if await target.count_documents({}) == count:
            return 0.0
        await target.drop()
        for start in range(0, count, 5000):
            batch = [make_document(i) for i in range(start, min(count, start + 5000))]
            await target.insert_many(batch, ordered=False)
    finally:
        await client.close()
    return asyncio.get_running_loop().time() - started


async def change_one_percent_each(url: str, database: str, collection: str, count: int) -> dict:
    """Rewrite the collection with 1% of documents updated, 1% deleted and 1% new; returns the
    expected sync counts.

    The collection is rewritten rather than edited in place: FerretDB 1.24 on SQLite spent
    minutes at 100% CPU on 1,000 single-document updates of a 100k collection (and concurrent
    writers get SQLITE_BUSY), which would measure FerretDB, not the sync."""
    step = 100
    updated = set(range(0, count, step))
    deleted = set(range(1, count, step))
    client = AsyncMongoClient(url)
    try:
        target = client[database][collection]
        await target.drop()
        for start in range(0, count, 5000):
            batch = [
                make_document(i, version=1 if i in updated else 0)
                for i in range(start, min(count, start + 5000))
                if i not in deleted
            ]
            await target.insert_many(batch, ordered=False)
        new = [make_document(count + i, version=2) for i in range(len(updated))]
        await target.insert_many(new, ordered=False)
    finally:
        await client.close()
    return {"updated": len(updated), "deleted": len(deleted), "created": len(new)}


KINDS_BASE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
"""`updated_at` of document i is KINDS_BASE + i seconds: only the newest ~300 fall within an
incremental sync's 5-minute overlap."""


def kinds_documents(
    count: int,
    updated: frozenset[int] = frozenset(),
    updated_at: datetime.datetime | None = None,
    deleted: frozenset[int] = frozenset(),
) -> Iterator[dict]:
    """The sync-kinds collection: `make_document(i)` plus `updated_at`; the `updated` ones get a
    new body (version 1) and `updated_at`, the `deleted` ones are left out."""
    for i in range(count):
        if i in deleted:
            continue
        if i in updated:
            yield {**make_document(i, version=1), "updated_at": updated_at}
        else:
            stamp = KINDS_BASE + datetime.timedelta(seconds=i)
            yield {**make_document(i), "updated_at": stamp}


async def rewrite_collection(url: str, database: str, collection: str, documents) -> float:
    """Drop the collection and insert `documents` in batches; seconds spent. Rewriting is how
    the bench changes FerretDB data (see `change_one_percent_each` for why)."""
    started = asyncio.get_running_loop().time()
    client = AsyncMongoClient(url)
    try:
        target = client[database][collection]
        await target.drop()
        documents = iter(documents)
        while batch := list(itertools.islice(documents, 5000)):
            await target.insert_many(batch, ordered=False)
    finally:
        await client.close()
    return asyncio.get_running_loop().time() - started


async def drop_collection(url: str, database: str, collection: str) -> None:
    client = AsyncMongoClient(url)
    try:
        await client[database][collection].drop()
    finally:
        await client.close()


async def seed_s3(session, endpoint: str, bucket: str, count: int) -> float:
    started = asyncio.get_running_loop().time()
    async with session.client("s3", endpoint_url=endpoint) as s3:
        try:
            listed = 0
            async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                listed += page.get("KeyCount", 0)
            if listed == count:
                return 0.0
        except s3.exceptions.NoSuchBucket:
            await s3.create_bucket(Bucket=bucket)
        limit = asyncio.Semaphore(32)

        async def put(i):
            async with limit:
                body = make_document(i)["body"].encode()
                await s3.put_object(
                    Bucket=bucket, Key=f"objects/{i // 1000:03d}/{i:07d}.txt", Body=body
                )

        await asyncio.gather(*(put(i) for i in range(count)))
    return asyncio.get_running_loop().time() - started
