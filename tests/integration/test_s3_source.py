"""S3 source on the moto server, synced into real Elasticsearch."""

import asyncio
import os
import uuid

import pytest

from elastic_ingest.connectors.sources.s3 import S3DataSource
from elastic_ingest.connectors.testing import read_all


async def make_bucket(s3, objects: dict[str, bytes]) -> str:
    bucket = f"s3test-{uuid.uuid4().hex[:10]}"
    await s3.create_bucket(Bucket=bucket)
    limit = asyncio.Semaphore(16)

    async def put(key, body):
        async with limit:
            await s3.put_object(Bucket=bucket, Key=key, Body=body)

    await asyncio.gather(*(put(key, body) for key, body in objects.items()))
    return bucket


@pytest.fixture
async def source_for():
    """Make S3 sources for a test; close them (and their clients) afterwards."""
    made = []

    def make(*buckets, **options):
        made.append(_source(*buckets, **options))
        return made[-1]

    yield make
    for source in made:
        await source.close()


def config_for(*buckets, **options):
    return {
        "buckets": list(buckets),
        "endpoint_url": os.environ["S3_ENDPOINT_URL"],
        "access_key_id": "test",
        "secret_access_key": "test",
        **options,
    }


def _source(*buckets, **options):
    return S3DataSource(config_for(*buckets, **options))


async def indexed(es, index):
    await es.indices.refresh(index=index)
    response = await es.search(index=index, size=10_000)
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


async def test_two_buckets_nested_prefixes_pagination_text_and_binary(s3, es, harness, index_name):
    many = {
        f"logs/2024/{i // 100:02d}/entry-{i:04d}.txt": f"entry {i}".encode() for i in range(1050)
    }
    first = await make_bucket(s3, many)
    second = await make_bucket(
        s3,
        {
            "docs/readme.md": b"# Title\nSome *markdown*",
            "docs/page.html": b"<html><script>x()</script><body><h1>Hi</h1><p>there</p></body>",
            "data/table.csv": b"a,b\n1,2\n",
            "images/photo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary",
        },
    )
    result = await harness.sync_source("s3", index_name, **config_for(first, second))
    assert result.status == "completed" and result.created == 1054
    documents = await indexed(es, index_name)
    assert len(documents) == 1054
    entry = documents[f"{first}/logs/2024/10/entry-1049.txt"]
    assert entry["body"] == "entry 1049" and entry["bucket"] == first and entry["size"] == 10
    assert {"etag", "last_modified", "content_type", "storage_class", "key"} <= set(entry)
    assert documents[f"{second}/docs/page.html"]["body"] == "Hi there"
    assert documents[f"{second}/docs/readme.md"]["body"].startswith("# Title")
    assert documents[f"{second}/data/table.csv"]["body"] == "a,b\n1,2\n"
    photo = documents[f"{second}/images/photo.png"]
    assert "body" not in photo and photo["content_type"] == "image/png"


async def test_delete_and_overwrite_between_syncs_reconcile_exactly(s3, es, harness, index_name):
    bucket = await make_bucket(s3, {f"k{i}.txt": f"v{i}".encode() for i in range(10)})
    await harness.sync_source("s3", index_name, **config_for(bucket))
    await s3.delete_object(Bucket=bucket, Key="k0.txt")
    await s3.put_object(Bucket=bucket, Key="k1.txt", Body=b"overwritten")
    second = await harness.sync_source("s3", index_name, **config_for(bucket))
    p = second
    assert (p.created, p.updated, p.skipped, p.deleted) == (0, 1, 8, 1)
    documents = await indexed(es, index_name)
    assert f"{bucket}/k0.txt" not in documents and len(documents) == 9
    assert documents[f"{bucket}/k1.txt"]["body"] == "overwritten"


async def test_a_bucket_that_fails_to_list_fails_the_sync_with_no_deletes(
    s3, es, harness, index_name
):
    kept = await make_bucket(s3, {f"a{i}.txt": b"a" for i in range(5)})
    doomed = await make_bucket(s3, {f"b{i}.txt": b"b" for i in range(5)})
    first = await harness.sync_source("s3", index_name, **config_for(kept, doomed))
    assert first.created == 10
    for i in range(5):
        await s3.delete_object(Bucket=doomed, Key=f"b{i}.txt")
    await s3.delete_bucket(Bucket=doomed)
    await s3.delete_object(Bucket=kept, Key="a0.txt")
    second = await harness.sync_source("s3", index_name, **config_for(kept, doomed))
    assert second.status == "error"
    assert f"S3 bucket {doomed!r} does not exist" in second.error
    assert second.job.doc["deleted_document_count"] == 0
    assert len(await indexed(es, index_name)) == 10  # not even a0, read from a complete bucket


async def test_changed_is_false_only_when_nothing_changed(s3, source_for):
    bucket = await make_bucket(s3, {"x.txt": b"1", "y.txt": b"2"})
    source = source_for(bucket)
    assert await source.changed(None)
    await read_all(source)  # a sync's listing leaves the cursor
    cursor = source.sync_cursor()
    assert not await source_for(bucket).changed(cursor)
    await s3.put_object(Bucket=bucket, Key="z.txt", Body=b"3")
    assert await source_for(bucket).changed(cursor)
    await source.close()
