"""The mass-delete guard and the sources' own completeness checks, on the real stack: a read
that succeeds but lists too little deletes nothing until a person lets the deletes through."""

import os
import shutil

import pytest

from elastic_ingest.connectors.engine.guard import DeleteGuard
from elastic_ingest.connectors.source import IncompleteListing
from elastic_ingest.connectors.sources.mongo import MongoDataSource
from tests.integration.conftest import make_settings
from tests.integration.jobs import ConnectorHarness
from tests.integration.test_cli import cli


@pytest.fixture
def guarded(es, tmp_path):
    """A harness whose service holds deletes above 50% of the index and above 10 documents."""
    settings = make_settings(service={"delete_guard_minimum": 10})
    es.created_indices += [settings.protocol.connectors_index, settings.protocol.jobs_index]
    return ConnectorHarness(es, settings, tmp_path)


def folder_of(path, count):
    path.mkdir()
    for n in range(count):
        (path / f"doc{n:02}.md").write_text(f"document {n}")
    return path


async def indexed_count(es, index):
    await es.indices.refresh(index=index)
    return (await es.count(index=index))["count"]


async def test_a_listing_cut_to_a_tenth_is_held_until_released(es, guarded, index_name, tmp_path):
    folder = folder_of(tmp_path / "docs", 40)
    connector = await guarded.create("directory", index_name, path=str(folder))
    first = await guarded.sync(connector)
    assert first.status == "completed", first.error
    moved = tmp_path / "moved"
    moved.mkdir()
    for n in range(4, 40):  # a mount that came back with a tenth of its files
        shutil.move(folder / f"doc{n:02}.md", moved)

    held = await guarded.sync(connector)
    assert held.status == "error" and held.deleted == 0
    assert "held 36 deletes of the 40 documents" in held.error
    assert f"elastic-ingest job release-deletes -- {held.job.id}" in held.error
    assert held.job.doc["metadata"]["held_deletes"]["count"] == 36
    assert len(held.job.doc["metadata"]["held_deletes"]["sample"]) == 10
    assert await indexed_count(es, index_name) == 40  # nothing deleted

    released = cli(str(guarded.config_file), "job", "release-deletes", "--", held.job.id)
    assert "deletion job" in released.stdout and "held 36 of 40" in released.stdout
    synced = await guarded.run(await guarded.claim_pending(connector))
    assert synced.status == "completed" and synced.job.doc["job_type"] == "deletion"
    assert synced.job.doc["metadata"]["releases_deletes_of"] == held.job.id
    assert synced.deleted == 36 and await indexed_count(es, index_name) == 4


async def test_a_real_deletion_passes_a_guard_the_connector_raised(
    es, guarded, index_name, tmp_path
):
    folder = folder_of(tmp_path / "docs", 30)
    connector = await guarded.create("directory", index_name, path=str(folder))
    await guarded.connectors.patch(connector, {"delete_guard": {"fraction": 0.7}})
    first = await guarded.sync(connector)
    assert first.status == "completed", first.error
    for n in range(18):  # 60% really deleted at the source
        (folder / f"doc{n:02}.md").unlink()
    synced = await guarded.sync(connector)
    assert synced.status == "completed" and synced.deleted == 18
    assert await indexed_count(es, index_name) == 12


async def test_a_release_is_refused_for_a_job_that_held_nothing(guarded, index_name, tmp_path):
    connector = await guarded.create(
        "directory", index_name, path=str(folder_of(tmp_path / "d", 2))
    )
    synced = await guarded.sync(connector)
    release = ("job", "release-deletes", "--", synced.job.id)
    refused = cli(str(guarded.config_file), *release, check=False)
    assert refused.returncode == 2 and "held no deletes" in refused.stderr


async def test_a_mongodb_collection_gone_or_bigger_than_read_is_an_incomplete_listing(
    mongo_collection,
):
    await mongo_collection.insert_many([{"_id": n, "n": n} for n in range(300)])
    source = MongoDataSource(
        {
            "host": os.environ["MONGODB_URL"],
            "database": mongo_collection.database.name,
            "collection": mongo_collection.name,
        }
    )
    try:
        listed = [document async for document in source.get_docs()]
        await source.confirm_complete(len(listed))  # all of it: complete
        with pytest.raises(IncompleteListing, match="holds about 300 documents"):
            await source.confirm_complete(40)  # a cursor that ended after 40
        await mongo_collection.drop()
        with pytest.raises(IncompleteListing, match="no longer exists"):
            await source.confirm_complete(len(listed))
    finally:
        await source.close()


def test_the_guard_holds_only_above_both_thresholds_and_lets_a_release_through():
    guard = DeleteGuard(fraction=0.5, minimum=1000)
    assert guard.holds(1001, 1500) and not guard.holds(1000, 1500)  # the count: above 1,000
    assert not guard.holds(1400, 3000)  # under half the index
    assert not DeleteGuard(0.5, 1000, released=True).holds(1500, 1500)
    assert not guard.holds(5, 0)
