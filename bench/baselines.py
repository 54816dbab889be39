"""The machine's limits: a raw scan of the source and a raw bulk load of the same documents."""

from __future__ import annotations

import datetime
import time

import orjson
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_streaming_bulk
from elasticsearch.serializer import OrjsonSerializer
from pymongo import AsyncMongoClient

from elastic_ingest.connectors.sources.bson_json import to_json

BATCH_SIZE = 1000  # the MongoDB source's default


async def raw_mongo_scan(url: str, database: str, collection: str) -> tuple[float, int]:
    """PyMongo async cursor over the collection, decode + JSON-serialise each document."""
    client = AsyncMongoClient(url, tz_aware=True)
    count = 0
    started = time.perf_counter()
    try:
        async for document in client[database][collection].find({}, batch_size=BATCH_SIZE):
            orjson.dumps(to_json(document))
            count += 1
    finally:
        await client.close()
    return time.perf_counter() - started, count


def reference_client(settings) -> AsyncElasticsearch:
    """Elastic's own Python client (orjson, the service's credentials), for the raw baseline."""
    credentials = {}
    if settings.api_key:
        credentials["api_key"] = settings.api_key.get_secret_value()
    elif settings.username and settings.password:
        credentials["basic_auth"] = (settings.username, settings.password.get_secret_value())
    return AsyncElasticsearch(settings.hosts, serializer=OrjsonSerializer(), **credentials)


async def raw_bulk_load(
    es: AsyncElasticsearch,
    index: str,
    url: str,
    database: str,
    collection: str,
    chunk: int = 50_000,
) -> tuple[float, int]:
    """Bulk-load the same documents, pre-serialised, into an empty index with the async helper.

    Documents are serialised in chunks outside the timed part, so memory stays bounded."""
    client = AsyncMongoClient(url, tz_aware=True)
    await es.options(ignore_status=404).indices.delete(index=index)
    await es.indices.create(index=index)
    elapsed, count = 0.0, 0
    try:
        cursor = client[database][collection].find({}, batch_size=BATCH_SIZE)
        pending: list[dict] = []
        async for document in cursor:
            converted = to_json(document)
            identifier = converted.pop("_id")
            pending.append({"_id": identifier, "_source": orjson.dumps(converted).decode()})
            if len(pending) >= chunk:
                elapsed += await _timed_bulk(es, index, pending)
                count += len(pending)
                pending = []
        if pending:
            elapsed += await _timed_bulk(es, index, pending)
            count += len(pending)
    finally:
        await client.close()
    started = time.perf_counter()
    await es.indices.refresh(index=index)
    return elapsed + time.perf_counter() - started, count


async def _timed_bulk(es: AsyncElasticsearch, index: str, actions: list[dict]) -> float:
    started = time.perf_counter()
    async for ok, item in async_streaming_bulk(
        es,
        actions,
        index=index,
        chunk_size=1000,
        max_chunk_bytes=10 * 1024 * 1024,
        raise_on_error=True,
    ):
        assert ok, item
    return time.perf_counter() - started


async def raw_s3_scan(session, endpoint: str, bucket: str) -> tuple[float, int]:
    """List every object and read each body (8 at a time, as the source does)."""
    import asyncio

    started = time.perf_counter()
    count = 0
    limit = asyncio.Semaphore(8)
    async with session.client("s3", endpoint_url=endpoint) as s3:

        async def read(key):
            async with limit:
                response = await s3.get_object(Bucket=bucket, Key=key)
                async with response["Body"] as body:
                    return await body.read()

        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [item["Key"] for item in page.get("Contents", [])]
            await asyncio.gather(*(read(key) for key in keys))
            count += len(keys)
    return time.perf_counter() - started, count


async def raw_range_query(
    url: str, database: str, collection: str, field: str, since: datetime.datetime
) -> tuple[float, int]:
    """`find({field: {$gte: since}})` read to the end: what an incremental sync's query costs
    the server before the sync does anything with the answer."""
    client = AsyncMongoClient(url, tz_aware=True)
    count = 0
    started = time.perf_counter()
    try:
        query = {field: {"$gte": since}}
        async for _ in client[database][collection].find(query, batch_size=BATCH_SIZE):
            count += 1
    finally:
        await client.close()
    return time.perf_counter() - started, count
