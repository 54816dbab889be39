"""Full sync on real Elasticsearch: exact reconciliation, batching, rejects, no unsafe deletes."""

import pytest

from connectors.es.bulk import BulkWriter
from connectors.snapshot import snapshot_index
from connectors.sources.memory import MemoryDataSource
from connectors.sync import (
    SyncProgress,
    delete_stale,
    full_sync,
    index_documents,
    prepare_index,
)
from tests.integration.conftest import make_settings


def documents(n, start=0, version="v1"):
    return [
        {"_id": f"doc-{i:05d}", "title": f"title {i}", "n": i, "_timestamp": version}
        for i in range(start, start + n)
    ]


async def index_contents(es, index):
    await es.indices.refresh(index=index)
    response = await es.search(index=index, size=10_000, sort=["n"])
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


async def test_second_sync_reconciles_changes_exactly(es, settings, index_name, tmp_path):
    first = await full_sync(
        es, MemoryDataSource(documents=documents(100)), index_name, settings, str(tmp_path / "1")
    )
    assert first.status == "completed"
    assert (first.progress.created, first.progress.deleted) == (100, 0)

    # 0-9 removed, 10-29 changed, 30-99 unchanged, 100-114 new
    second_docs = documents(20, 10, "v2") + documents(70, 30) + documents(15, 100, "v2")
    second = await full_sync(
        es, MemoryDataSource(documents=second_docs), index_name, settings, str(tmp_path / "2")
    )
    p = second.progress
    assert second.status == "completed"
    assert (p.created, p.updated, p.skipped, p.deleted, p.failed) == (15, 20, 70, 10, 0)
    contents = await index_contents(es, index_name)
    assert set(contents) == {d["_id"] for d in second_docs}
    assert contents["doc-00010"]["_timestamp"] == "v2"
    assert contents["doc-00050"] == {"title": "title 50", "n": 50, "_timestamp": "v1"}


async def test_1200_changes_go_out_in_3_bulk_requests(es, settings, index_name, tmp_path):
    await prepare_index(es, index_name)
    snapshot = await snapshot_index(es, index_name, str(tmp_path))
    writer = BulkWriter.for_index(es, index_name, settings.bulk)
    assert settings.bulk.operations_per_request == 500
    source = MemoryDataSource(documents=documents(1200))
    progress = await index_documents(es, source, index_name, snapshot, settings, writer=writer)
    assert progress.created == 1200
    assert writer.stats.requests == 3


async def test_a_mapping_conflict_is_counted_failed_and_the_others_land(
    es, settings, index_name, tmp_path
):
    await es.indices.create(index=index_name, mappings={"properties": {"n": {"type": "integer"}}})
    docs = documents(5)
    docs[2] = {**docs[2], "n": "not a number"}
    result = await full_sync(
        es, MemoryDataSource(documents=docs), index_name, settings, str(tmp_path)
    )
    assert result.status == "completed"
    assert result.progress.created == 4 and result.progress.failed == 1
    failure = result.progress.failures[0]
    assert failure.id == "doc-00002" and "failed to parse field [n]" in failure.reason
    assert len(await index_contents(es, index_name)) == 4


async def test_rejections_past_the_threshold_fail_the_sync_without_deletes(
    es, index_name, tmp_path
):
    settings = make_settings(service={"max_failed_documents": 2})
    await es.indices.create(index=index_name, mappings={"properties": {"n": {"type": "integer"}}})
    first = await full_sync(
        es, MemoryDataSource(documents=documents(10)), index_name, settings, str(tmp_path / "1")
    )
    assert first.progress.created == 10
    bad = [{**d, "n": "x", "_timestamp": "v2"} for d in documents(5)]
    result = await full_sync(
        es, MemoryDataSource(documents=bad), index_name, settings, str(tmp_path / "2")
    )
    assert result.status == "error" and "rejected by Elasticsearch" in result.error
    assert len(await index_contents(es, index_name)) == 10


async def test_a_source_that_raises_deletes_nothing_and_the_next_sync_converges(
    es, settings, index_name, tmp_path
):
    await full_sync(
        es, MemoryDataSource(documents=documents(50)), index_name, settings, str(tmp_path / "1")
    )
    failing = MemoryDataSource(documents=documents(30, 0, "v2"), fail_after=7)
    result = await full_sync(es, failing, index_name, settings, str(tmp_path / "2"))
    assert result.status == "error"
    assert "source failed after 7 documents" in result.error
    assert result.progress.deleted == 0
    assert len(await index_contents(es, index_name)) == 50

    good = await full_sync(
        es,
        MemoryDataSource(documents=documents(30, 0, "v2")),
        index_name,
        settings,
        str(tmp_path / "3"),
    )
    assert good.status == "completed" and good.progress.deleted == 20
    contents = await index_contents(es, index_name)
    assert len(contents) == 30 and {d["_timestamp"] for d in contents.values()} == {"v2"}


async def test_an_incomplete_listing_deletes_nothing(es, settings, index_name, tmp_path):
    await full_sync(
        es, MemoryDataSource(documents=documents(20)), index_name, settings, str(tmp_path / "1")
    )
    partial = MemoryDataSource(documents=documents(5), incomplete=True)
    result = await full_sync(es, partial, index_name, settings, str(tmp_path / "2"))
    assert result.status == "error" and "IncompleteListing" in result.error
    assert len(await index_contents(es, index_name)) == 20


async def test_a_canceled_sync_deletes_nothing(es, settings, index_name, tmp_path):
    await full_sync(
        es, MemoryDataSource(documents=documents(3000)), index_name, settings, str(tmp_path / "1")
    )
    progress = SyncProgress()
    result = await full_sync(
        es,
        MemoryDataSource(documents=documents(10)),
        index_name,
        settings,
        str(tmp_path / "2"),
        progress=progress,
        canceled=lambda: progress.seen >= 1,
    )
    assert result.status == "canceled" and progress.deleted == 0
    assert len(await index_contents(es, index_name)) == 3000


async def test_delete_stale_refuses_without_a_complete_read(es, settings, index_name, tmp_path):
    await prepare_index(es, index_name)
    snapshot = await snapshot_index(es, index_name, str(tmp_path))
    with pytest.raises(RuntimeError, match="not read to the end"):
        await delete_stale(es, index_name, snapshot, settings)


async def test_unchanged_source_reports_zero_counts(es, settings, index_name, tmp_path):
    class Unchanged(MemoryDataSource):
        async def changed(self, cursor):
            return False

    result = await full_sync(
        es, Unchanged(documents=documents(5)), index_name, settings, str(tmp_path)
    )
    assert result.status == "completed" and not result.changed
    assert result.progress.indexed == 0 and result.progress.seen == 0
