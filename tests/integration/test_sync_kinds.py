"""Sync kinds on the real stack: incremental, deletion, and full syncs that fetch only what
changed (docs/architecture.md), with the counts a user reads on the job."""

import asyncio
import datetime
import os

from tests.integration.test_s3_source import config_for, make_bucket


def documents(n, version="v1", start=0):
    return [{"_id": f"d{i:03d}", "n": i, "_timestamp": version} for i in range(start, start + n)]


async def indexed(es, index):
    await es.indices.refresh(index=index)
    response = await es.search(index=index, size=10_000)
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


def metadata(synced):
    return synced.job.doc.get("metadata") or {}


# -- incremental ------------------------------------------------------------------------------


async def test_incremental_writes_exactly_what_changed_and_deletes_only_what_is_reported(
    es, harness, index_name
):
    connector = await harness.create("memory", index_name, documents=documents(10))
    assert (await harness.sync(connector)).status == "completed"
    assert await harness.cursor(connector) == {"newest": "v1"}

    changed = documents(10)
    changed[3]["_timestamp"] = changed[4]["_timestamp"] = "v2"
    changed[3]["n"] = changed[4]["n"] = -1
    changed += documents(1, "v2", start=10)
    del changed[0]  # gone from the source, but an incremental sync is not told: it stays
    await harness.configure(connector, documents=changed, deleted=["d009"])
    synced = await harness.sync(connector, job_type="incremental")

    assert synced.status == "completed"
    assert synced.job.doc["job_type"] == "incremental"
    assert (synced.created, synced.updated, synced.deleted) == (1, 2, 1)
    assert synced.seen == 3  # only what changed since the cursor was listed
    contents = await indexed(es, index_name)
    assert set(contents) == {f"d{i:03d}" for i in range(0, 11)} - {"d009"}
    assert contents["d003"]["n"] == -1 and contents["d001"]["n"] == 1
    assert await harness.cursor(connector) == {"newest": "v2"}


async def test_a_failed_incremental_does_not_advance_the_cursor(es, harness, index_name):
    connector = await harness.create("memory", index_name, documents=documents(3))
    await harness.sync(connector)
    await harness.configure(connector, documents=documents(3, "v2"), incomplete=True)
    synced = await harness.sync(connector, job_type="incremental")
    assert synced.status == "error" and "listing reported incomplete" in synced.error
    assert await harness.cursor(connector) == {"newest": "v1"}
    connector_doc = (await harness.connectors.get(connector)).doc
    assert connector_doc["last_sync_status"] == "error"


async def test_an_incremental_without_a_cursor_runs_as_a_full_sync_and_says_so(
    es, harness, index_name
):
    connector = await harness.create("memory", index_name, documents=documents(4))
    synced = await harness.sync(connector, job_type="incremental", via="flow")
    assert synced.status == "completed" and synced.job.doc["job_type"] == "incremental"
    assert metadata(synced)["ran_as"] == "full"
    assert "no sync cursor" in metadata(synced)["ran_as_reason"]
    assert len(await indexed(es, index_name)) == 4
    assert await harness.cursor(connector) == {"newest": "v1"}


async def test_incremental_on_a_source_that_cannot_do_it_fails_clearly(es, harness, index_name):
    connector = await harness.create(
        "mongodb", index_name, database="nowhere", collection="nothing"
    )  # no timestamp_field: MongoDB cannot tell what changed
    synced = await harness.sync(connector, job_type="incremental")
    assert synced.status == "error"
    assert "cannot run incremental syncs" in synced.error
    assert "\n" not in synced.error


# -- deletion ---------------------------------------------------------------------------------


async def test_deletion_sync_deletes_exactly_the_removed_ids_and_writes_nothing(
    es, harness, index_name
):
    connector = await harness.create("memory", index_name, documents=documents(10), lazy=True)
    await harness.sync(connector)
    cursor = await harness.cursor(connector)
    remaining = [d for d in documents(10, "v2") if d["_id"] not in ("d002", "d007")]
    await harness.configure(connector, documents=remaining)
    synced = await harness.sync(connector, job_type="deletion", via="flow")

    assert synced.status == "completed"
    assert (synced.created, synced.updated, synced.deleted, synced.fetched) == (0, 0, 2, 0)
    contents = await indexed(es, index_name)
    assert set(contents) == {d["_id"] for d in remaining}
    assert {d["_timestamp"] for d in contents.values()} == {"v1"}  # nothing rewritten
    after = (await harness.connectors.get(connector)).doc
    assert after["last_deletion_sync_status"] == "completed"
    assert after["sync_cursor"] == cursor  # a deletion sync never moves the content cursor


async def test_deletion_sync_refuses_to_delete_after_a_failed_listing(es, harness, index_name):
    connector = await harness.create("memory", index_name, documents=documents(5))
    await harness.sync(connector)
    await harness.configure(connector, documents=documents(2), incomplete=True)
    synced = await harness.sync(connector, job_type="deletion")
    assert synced.status == "error" and synced.deleted == 0
    assert len(await indexed(es, index_name)) == 5


# -- fetch only what changed ------------------------------------------------------------------


async def test_a_full_resync_fetches_only_new_and_changed_documents(es, harness, index_name):
    connector = await harness.create("memory", index_name, documents=documents(20), lazy=True)
    first = await harness.sync(connector)
    assert (first.fetched, first.not_fetched, first.created) == (20, 0, 20)
    changed = documents(20)
    changed[5] = {**changed[5], "n": 500, "_timestamp": "v2"}
    await harness.configure(connector, documents=changed)
    second = await harness.sync(connector, via="flow")
    assert (second.fetched, second.not_fetched, second.updated) == (1, 19, 1)
    assert metadata(second)["fetched_document_count"] == 1
    assert metadata(second)["not_fetched_document_count"] == 19
    assert (await indexed(es, index_name))["d005"]["n"] == 500


async def test_s3_resyncs_fetch_no_unchanged_body_and_incremental_writes_the_changes(
    s3, es, harness, index_name
):
    objects = {f"notes/{i:02d}.txt": f"note {i}".encode() for i in range(30)}
    objects["image.png"] = b"\x89PNG binary"
    bucket = await make_bucket(s3, objects)
    connector = await harness.create("s3", index_name, **config_for(bucket))
    first = await harness.sync(connector)
    assert (first.created, first.fetched) == (31, 30)  # the image's body is never read

    await s3.put_object(Bucket=bucket, Key="notes/05.txt", Body=b"note 5, edited")
    await s3.put_object(Bucket=bucket, Key="notes/new.txt", Body=b"a new note")
    await s3.delete_object(Bucket=bucket, Key="notes/09.txt")
    incremental = await harness.sync(connector, job_type="incremental")
    assert incremental.status == "completed"
    # everything is inside the 5-minute overlap, so all is listed; only the two are fetched
    assert (incremental.created, incremental.updated, incremental.deleted) == (1, 1, 0)
    assert incremental.fetched == 2
    contents = await indexed(es, index_name)
    assert contents[f"{bucket}/notes/05.txt"]["body"] == "note 5, edited"
    assert f"{bucket}/notes/09.txt" in contents  # incremental deletes nothing it is not told

    await s3.put_object(Bucket=bucket, Key="notes/07.txt", Body=b"note 7, edited")
    full = await harness.sync(connector)
    assert (full.updated, full.created, full.deleted) == (1, 0, 1)
    assert (full.fetched, full.not_fetched) == (1, 29)
    assert f"{bucket}/notes/09.txt" not in await indexed(es, index_name)


async def test_directory_incremental_and_deletion_syncs(es, harness, index_name, tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    for i in range(12):
        (root / f"f{i:02d}.txt").write_text(f"file {i}")
    connector = await harness.create("directory", index_name, path=str(root))
    first = await harness.sync(connector)
    assert (first.created, first.fetched) == (12, 12)

    (root / "f03.txt").write_text("file 3, edited")
    (root / "new.txt").write_text("new")
    (root / "f08.txt").unlink()
    incremental = await harness.sync(connector, job_type="incremental", via="flow")
    assert incremental.status == "completed"
    assert (incremental.created, incremental.updated, incremental.deleted) == (1, 1, 0)
    assert incremental.fetched == 2
    contents = await indexed(es, index_name)
    assert contents["f03.txt"]["body"] == "file 3, edited" and "f08.txt" in contents

    deletion = await harness.sync(connector, job_type="deletion")
    assert (deletion.deleted, deletion.created, deletion.updated) == (1, 0, 0)
    assert "f08.txt" not in await indexed(es, index_name)


async def test_mongodb_incremental_by_timestamp_field_and_versions_first_resync(
    es, harness, index_name, mongo_collection
):
    base = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    await mongo_collection.insert_many(
        [
            {"_id": i, "v": "one", "updated_at": base + datetime.timedelta(hours=i)}
            for i in range(20)
        ]
    )
    connector = await harness.create(
        "mongodb",
        index_name,
        host=os.environ["MONGODB_URL"],
        database=mongo_collection.database.name,
        collection=mongo_collection.name,
        timestamp_field="updated_at",
    )
    first = await harness.sync(connector)
    assert first.created == 20
    cursor = await harness.cursor(connector)
    assert cursor["timestamp_field"] == "updated_at" and cursor["type"] == "date"
    assert datetime.datetime.fromisoformat(cursor["newest"]) == base + datetime.timedelta(hours=19)

    later = base + datetime.timedelta(days=30)
    await mongo_collection.update_one({"_id": 3}, {"$set": {"v": "two", "updated_at": later}})
    await mongo_collection.insert_one({"_id": 100, "v": "new", "updated_at": later})
    await mongo_collection.delete_one({"_id": 7})
    incremental = await harness.sync(connector, job_type="incremental")
    assert incremental.status == "completed"
    assert (incremental.created, incremental.updated, incremental.deleted) == (1, 1, 0)
    # the range query reads what changed, plus the overlap (the last sync's newest document,
    # which the index holds in that version: looked up, not rewritten)
    assert (incremental.seen, incremental.skipped) == (3, 1)
    contents = await indexed(es, index_name)
    assert contents["3"]["v"] == "two" and "7" in contents
    assert datetime.datetime.fromisoformat((await harness.cursor(connector))["newest"]) == later

    await mongo_collection.update_one({"_id": 5}, {"$set": {"v": "three", "updated_at": later}})
    full = await harness.sync(connector)  # the index holds the collection: versions first
    assert (full.updated, full.created, full.deleted) == (1, 0, 1)
    assert (full.fetched, full.not_fetched) == (1, 19)
    contents = await indexed(es, index_name)
    assert contents["5"]["v"] == "three" and "7" not in contents


async def test_mongodb_deletion_sync_lists_ids_only(es, harness, index_name, mongo_collection):
    await mongo_collection.insert_many([{"_id": f"k{i}", "v": i} for i in range(8)])
    connector = await harness.create(
        "mongodb",
        index_name,
        host=os.environ["MONGODB_URL"],
        database=mongo_collection.database.name,
        collection=mongo_collection.name,
    )
    await harness.sync(connector)
    await mongo_collection.delete_many({"_id": {"$in": ["k1", "k2"]}})
    await mongo_collection.update_one({"_id": "k3"}, {"$set": {"v": -3}})
    deletion = await harness.sync(connector, job_type="deletion")
    assert (deletion.deleted, deletion.updated, deletion.created, deletion.seen) == (2, 0, 0, 6)
    contents = await indexed(es, index_name)
    assert set(contents) == {f"k{i}" for i in range(8)} - {"k1", "k2"}
    assert contents["k3"]["v"] == 3  # a deletion sync writes nothing


# -- scheduling per kind ----------------------------------------------------------------------


async def test_two_due_kinds_give_one_job_each_with_three_pollers_and_run_one_at_a_time(
    es, harness, index_name
):
    from elastic_ingest.connectors.poll import claim_jobs, create_due_jobs, heartbeat_and_publish
    from elastic_ingest.connectors.protocol import JobStatus

    connector_id = await harness.create("memory", index_name, documents=documents(3))
    connectors, jobs = harness.connectors, harness.jobs
    await heartbeat_and_publish(harness.settings, connectors)  # publishes the features
    connector = await connectors.get(connector_id)
    assert connector.doc["features"]["incremental_sync"] == {"enabled": True}
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)).isoformat()
    await connectors.patch(  # written the way Kibana 8.x writes per-kind schedules
        connector_id,
        {
            "scheduling": {
                "full": {"enabled": True, "interval": "0 0 * * * ?"},
                "incremental": {"enabled": True, "interval": "0 */10 * * * ?"},
                "access_control": {"enabled": False, "interval": "0 0 0 * * ?"},
            },
            "last_sync_scheduled_at": past,
            "last_incremental_sync_scheduled_at": past,
        },
    )
    outcomes = await asyncio.gather(*(create_due_jobs(connectors, jobs) for _ in range(3)))
    created = sorted(job for outcome in outcomes for job in outcome.scheduled)
    assert len(created) == 2
    kinds = sorted([(await jobs.get(job_id)).doc["job_type"] for job_id in created])
    assert kinds == ["full", "incremental"]
    assert (await create_due_jobs(connectors, jobs)).scheduled == []

    claims = await asyncio.gather(*(claim_jobs(jobs, 10) for _ in range(3)))
    claimed = [job for batch in claims for job in batch]
    assert len(claimed) == 1  # never two jobs running for one connector, whatever their kinds
    await harness.run(claimed[0].id)
    [second] = await claim_jobs(jobs, 10)
    assert second.id != claimed[0].id
    await harness.run(second.id)
    finished = [await jobs.get(job_id) for job_id in created]
    assert {job.status for job in finished} == {JobStatus.COMPLETED}


async def test_no_incremental_job_is_scheduled_for_a_source_that_cannot_do_one(
    es, harness, index_name
):
    from elastic_ingest.connectors.poll import create_due_jobs, heartbeat_and_publish

    connector_id = await harness.create(
        "mongodb", index_name, database="nowhere", collection="nothing"
    )
    connectors, jobs = harness.connectors, harness.jobs
    await heartbeat_and_publish(harness.settings, connectors)
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)).isoformat()
    await connectors.patch(
        connector_id,
        {
            "status": "connected",
            "scheduling": {"incremental": {"enabled": True, "interval": "0 */10 * * * ?"}},
            "last_incremental_sync_scheduled_at": past,
        },
    )
    connector = await connectors.get(connector_id)
    assert connector.doc["features"]["incremental_sync"] == {"enabled": False}
    assert (await create_due_jobs(connectors, jobs)).scheduled == []
