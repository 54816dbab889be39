"""MongoDB source on FerretDB, synced into real Elasticsearch."""

import datetime
import os
import tracemalloc
import uuid

import pytest
from bson import Binary, Int64, ObjectId, Regex, Timestamp
from bson.binary import UuidRepresentation
from pymongo import AsyncMongoClient

from elastic_ingest.connectors.sources.mongo import MongoDataSource


@pytest.fixture
async def collection():
    client = AsyncMongoClient(os.environ["MONGODB_URL"])
    coll = client["sourcetests"][f"c{uuid.uuid4().hex[:10]}"]
    yield coll
    await coll.drop()
    await client.close()


def config_for(collection, **options):
    return {
        "host": os.environ["MONGODB_URL"],
        "database": "sourcetests",
        "collection": collection.name,
        **options,
    }


def source_for(collection, **options):
    return MongoDataSource(config_for(collection, **options))


async def indexed(es, index):
    await es.indices.refresh(index=index)
    response = await es.search(index=index, size=10_000)
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


async def test_bson_types_reach_elasticsearch_with_values_and_precision_intact(
    collection, es, harness, index_name
):
    # FerretDB 1.24 cannot store Decimal128, Code, DBRef, MinKey or MaxKey (it drops the
    # connection); their conversion is pinned in tests/unit/test_bson_json.py.
    oid, first, second = ObjectId(), uuid.uuid4(), uuid.uuid4()
    await collection.insert_one(
        {
            "_id": oid,
            "when": datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.UTC),
            "big": Int64(2**62 + 3),
            "ratio": 0.1,
            "blob": Binary(b"\x00\xffbinary", 0),
            "uuid": Binary.from_uuid(first),
            "legacy_uuid": Binary.from_uuid(second, UuidRepresentation.PYTHON_LEGACY),
            "pattern": Regex("^ab+c", "i"),
            "ts": Timestamp(1700000000, 9),
            "nested": {"tags": ["a", "b"], "points": [{"x": 1}, {"x": 2}], "none": None},
        }
    )
    await collection.insert_one({"_id": 17, "note": "an integer id"})
    result = await harness.sync_source("mongodb", index_name, **config_for(collection))
    assert result.status == "completed" and result.created == 2
    documents = await indexed(es, index_name)
    stored = documents[str(oid)]
    assert stored["when"] == "2024-05-06T07:08:09.123+00:00"
    assert stored["big"] == 2**62 + 3
    assert stored["ratio"] == 0.1
    assert stored["blob"] == "AP9iaW5hcnk="
    assert stored["uuid"] == str(first) and stored["legacy_uuid"] == str(second)
    assert stored["pattern"] == {"$regex": "^ab+c", "$options": "i"}
    assert stored["ts"] == {"$timestamp": {"t": 1700000000, "i": 9}}
    assert stored["nested"] == {"tags": ["a", "b"], "points": [{"x": 1}, {"x": 2}], "none": None}
    assert documents["17"]["note"] == "an integer id"


async def test_updates_and_deletes_between_syncs_reconcile_exactly(
    collection, es, harness, index_name
):
    await collection.insert_many([{"_id": f"d{i}", "n": i} for i in range(30)])
    first = await harness.sync_source("mongodb", index_name, **config_for(collection))
    assert first.created == 30
    await collection.update_many({"n": {"$lt": 5}}, {"$set": {"changed": True}})
    await collection.delete_many({"n": {"$gte": 25}})
    await collection.insert_one({"_id": "new", "n": 100})
    second = await harness.sync_source("mongodb", index_name, **config_for(collection))
    p = second
    assert (p.created, p.updated, p.skipped, p.deleted) == (1, 5, 20, 5)
    documents = await indexed(es, index_name)
    assert set(documents) == {f"d{i}" for i in range(25)} | {"new"}
    assert documents["d3"]["changed"] is True


async def test_timestamp_field_is_the_version(collection, es, harness, index_name):
    await collection.insert_many(
        [{"_id": i, "v": "one", "updated": f"2024-01-0{i + 1}"} for i in range(3)]
    )
    options = {"timestamp_field": "updated"}
    await harness.sync_source("mongodb", index_name, **config_for(collection, **options))
    await collection.update_one({"_id": 0}, {"$set": {"v": "two", "updated": "2024-02-01"}})
    await collection.update_one({"_id": 1}, {"$set": {"v": "two"}})  # version untouched
    result = await harness.sync_source("mongodb", index_name, **config_for(collection, **options))
    assert (result.updated, result.skipped) == (1, 2)
    documents = await indexed(es, index_name)
    assert documents["0"]["_timestamp"] == "2024-02-01" and documents["0"]["v"] == "two"


async def test_filter_projection_and_pipeline_options(collection):
    await collection.insert_many(
        [{"_id": i, "kind": "a" if i % 2 else "b", "secret": "x", "n": i} for i in range(10)]
    )
    found = [
        d
        async for d in source_for(
            collection, filter='{"kind": "a"}', projection='{"secret": 0}'
        ).get_docs()
    ]
    assert sorted(d["_id"] for d in found) == ["1", "3", "5", "7", "9"]
    assert all("secret" not in d for d in found)
    pipeline = [{"$match": {"n": {"$gte": 7}}}, {"$project": {"n": 1}}]
    aggregated = [d async for d in source_for(collection, pipeline=pipeline).get_docs()]
    assert sorted(d["_id"] for d in aggregated) == ["7", "8", "9"]


async def test_20k_documents_stream_in_bounded_memory(collection):
    padding = "x" * 1000
    for start in range(0, 20_000, 5000):
        await collection.insert_many(
            [{"_id": i, "pad": padding} for i in range(start, start + 5000)]
        )
    source = source_for(collection, batch_size=500)
    tracemalloc.start()
    count = 0
    try:
        async for _ in source.get_docs():
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await source.close()
    assert count == 20_000
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for ~20 MB of documents"
