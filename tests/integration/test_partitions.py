"""A full sync read in parts at once (`sync_partitions`): the same index as a sync read as one,
and nothing deleted unless every part was read to its end."""

import os

from bson import ObjectId

from tests.integration.test_s3_source import config_for, make_bucket


async def indexed(es, index):
    await es.indices.refresh(index=index)
    response = await es.search(index=index, size=1000, query={"match_all": {}})
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


def make_tree(root):
    for folder in ("alpha", "beta", "delta", "gamma", "omega", "zeta"):
        for n in range(4):
            path = root / folder / f"sub{n % 2}" / f"{folder}-{n}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{folder} {n}\n")
    (root / "top.txt").write_text("at the top\n")


async def test_a_folder_read_in_three_parts_gives_the_same_index_as_one_read(
    es, harness, index_name, tmp_path
):
    make_tree(tmp_path / "files")
    whole = await harness.create("directory", f"{index_name}-whole", path=str(tmp_path / "files"))
    parted = await harness.create(
        "directory", index_name, path=str(tmp_path / "files"), sync_partitions=3
    )
    es.created_indices.append(f"{index_name}-whole")
    assert (await harness.sync(whole)).status == "completed"
    synced = await harness.sync(parted, via="flow")
    assert synced.status == "completed", synced.error
    assert synced.job.doc["indexed_document_count"] == 25
    assert synced.job.doc["metadata"]["partitions"] == [
        "alpha/ .. beta/ and top-level files",
        "delta/ .. gamma/",
        "omega/ .. zeta/",
    ]
    expected = await indexed(es, f"{index_name}-whole")
    assert len(expected) == 25
    assert await indexed(es, index_name) == expected

    (tmp_path / "files" / "gamma" / "sub1" / "gamma-3.txt").unlink()
    (tmp_path / "files" / "top.txt").unlink()
    synced = await harness.sync(parted, via="flow")
    assert synced.status == "completed" and synced.deleted == 2
    assert set(await indexed(es, index_name)) == set(expected) - {
        "gamma/sub1/gamma-3.txt",
        "top.txt",
    }


async def test_a_failed_part_deletes_nothing_and_the_job_names_it(es, harness, index_name):
    documents = [{"_id": f"d{i}", "n": i} for i in range(9)]
    connector = await harness.create("memory", index_name, documents=documents)
    assert (await harness.sync(connector)).created == 9
    # d8 leaves the source; the second of three parts fails: d8 must stay, nothing deleted
    await harness.configure(connector, documents=documents[:8], sync_partitions=3, fail_part=2)
    synced = await harness.sync(connector)
    assert synced.status == "error"
    assert synced.error == (
        "PartitionFailed: part 2 of 3 (documents 4-6): RuntimeError: part 2 failed"
    )
    assert synced.deleted == 0
    assert set(await indexed(es, index_name)) == {f"d{i}" for i in range(9)}

    await harness.configure(connector, fail_part=None)
    synced = await harness.sync(connector)
    assert synced.status == "completed" and synced.deleted == 1
    assert set(await indexed(es, index_name)) == {f"d{i}" for i in range(8)}


async def test_a_collection_read_in_id_ranges_gives_the_same_index_as_one_read(
    es, harness, index_name, mongo_collection
):
    await mongo_collection.insert_many([{"_id": ObjectId(), "n": i} for i in range(300)])
    values = {
        "host": os.environ["MONGODB_URL"],
        "database": mongo_collection.database.name,
        "collection": mongo_collection.name,
    }
    whole = await harness.create("mongodb", f"{index_name}-whole", **values)
    parted = await harness.create("mongodb", index_name, **values, sync_partitions=4)
    es.created_indices.append(f"{index_name}-whole")
    assert (await harness.sync(whole)).status == "completed"
    synced = await harness.sync(parted)
    assert synced.status == "completed", synced.error
    assert len(synced.job.doc["metadata"]["partitions"]) == 4
    expected = await indexed(es, f"{index_name}-whole")
    assert len(expected) == 300
    assert await indexed(es, index_name) == expected


async def test_a_collection_with_ids_of_several_types_is_read_as_one(
    es, harness, index_name, mongo_collection
):
    await mongo_collection.insert_many(
        [{"_id": i, "n": i} for i in range(20)] + [{"_id": f"s{i}", "n": i} for i in range(20)]
    )
    connector = await harness.create(
        "mongodb",
        index_name,
        host=os.environ["MONGODB_URL"],
        database=mongo_collection.database.name,
        collection=mongo_collection.name,
        sync_partitions=4,
    )
    synced = await harness.sync(connector)
    assert synced.status == "completed" and synced.created == 40
    assert "partitions" not in synced.job.doc["metadata"]  # a range would miss the other type


async def test_a_bucket_read_in_folder_groups_gives_the_same_index_as_one_read(
    es, harness, index_name, s3
):
    keys = ["a/1.txt", "a/2.txt", "b/x/3.txt", "c/4.txt", "d/5.txt", "e/6.txt", "top.txt"]
    bucket = await make_bucket(s3, {key: f"body of {key}".encode() for key in keys})
    whole = await harness.create("s3", f"{index_name}-whole", **config_for(bucket))
    parted = await harness.create("s3", index_name, **config_for(bucket), sync_partitions=3)
    es.created_indices.append(f"{index_name}-whole")
    assert (await harness.sync(whole)).status == "completed"
    synced = await harness.sync(parted)
    assert synced.status == "completed", synced.error
    assert synced.job.doc["metadata"]["partitions"] == [
        f"{bucket}/a/ .. {bucket}/b/",
        f"{bucket}/c/ .. {bucket}/d/",
        f"{bucket}/e/ .. {bucket}/e/",
    ]
    expected = await indexed(es, f"{index_name}-whole")
    assert len(expected) == len(keys)
    assert await indexed(es, index_name) == expected
