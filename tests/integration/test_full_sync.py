"""Full sync on real Elasticsearch, through the job lifecycle the `sync` flow runs: exact
reconciliation, batching, rejects, and no delete unless the source was read to the end."""

import asyncio

import pytest

from elastic_ingest.connectors.engine.progress import SyncProgress
from elastic_ingest.connectors.engine.reconcile import delete_stale
from elastic_ingest.connectors.engine.reconcile import index_documents as stream_and_index
from elastic_ingest.connectors.engine.snapshot import snapshot_index
from elastic_ingest.connectors.es.bulk import BulkWriter
from elastic_ingest.connectors.es.indices import ensure_content_index
from elastic_ingest.connectors.sources.memory import MemoryDataSource
from tests.integration.conftest import make_settings
from tests.integration.jobs import ConnectorHarness

BOTH_WAYS = pytest.mark.parametrize("via", ["plain", "flow"])


def documents(n, start=0, version="v1"):
    return [
        {"_id": f"doc-{i:05d}", "title": f"title {i}", "n": i, "_timestamp": version}
        for i in range(start, start + n)
    ]


async def index_contents(es, index):
    await es.indices.refresh(index=index)
    response = await es.search(index=index, size=10_000, sort=["n"])
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


@BOTH_WAYS
async def test_second_sync_reconciles_changes_exactly(es, harness, index_name, via):
    connector = await harness.create("memory", index_name, documents=documents(100))
    first = await harness.sync(connector, via)
    assert first.status == "completed"
    assert (first.job.doc["indexed_document_count"], first.job.doc["deleted_document_count"]) == (
        100,
        0,
    )

    # 0-9 removed, 10-29 changed, 30-99 unchanged, 100-114 new
    second_docs = documents(20, 10, "v2") + documents(70, 30) + documents(15, 100, "v2")
    await harness.configure(connector, documents=second_docs)
    second = await harness.sync(connector, via)
    assert second.status == "completed"
    assert (second.job.doc["indexed_document_count"], second.job.doc["deleted_document_count"]) == (
        35,
        10,
    )
    assert second.job.doc["total_document_count"] == 105
    if via == "plain":
        assert (second.created, second.updated, second.skipped, second.failed) == (15, 20, 70, 0)
    contents = await index_contents(es, index_name)
    assert set(contents) == {d["_id"] for d in second_docs}
    assert contents["doc-00010"]["_timestamp"] == "v2"
    assert contents["doc-00050"] == {"title": "title 50", "n": 50, "_timestamp": "v1"}


async def test_1200_changes_go_out_in_3_bulk_requests(es, settings, index_name, tmp_path):
    await ensure_content_index(es, index_name)
    snapshot = await snapshot_index(es, index_name, str(tmp_path))
    writer = BulkWriter.for_index(es, index_name, settings.bulk)
    assert settings.bulk.operations_per_request == 500
    source = MemoryDataSource({"documents": documents(1200)})
    progress = SyncProgress(writes=writer.stats)
    await stream_and_index(source, snapshot, writer, progress)
    assert progress.created == 1200
    assert writer.stats.requests == 3


async def test_a_mapping_conflict_is_counted_failed_on_the_job_and_the_others_land(
    es, harness, index_name
):
    await es.indices.create(index=index_name, mappings={"properties": {"n": {"type": "integer"}}})
    docs = documents(5)
    docs[2] = {**docs[2], "n": "not a number"}
    connector = await harness.create("memory", index_name, documents=docs)
    result = await harness.sync(connector)
    assert result.status == "completed"
    assert result.created == 4 and result.failed == 1
    assert result.failures[0]["id"] == "doc-00002"
    assert "failed to parse field [n]" in result.failures[0]["reason"]
    metadata = result.job.doc["metadata"]
    assert metadata["rejected_document_count"] == 1
    assert metadata["rejected_documents"][0].startswith("doc-00002: ")
    assert len(await index_contents(es, index_name)) == 4


async def test_rejections_past_the_limit_fail_the_sync_without_deletes(es, index_name, tmp_path):
    settings = make_settings(service={"max_failed_documents": 2})
    harness = ConnectorHarness(es, settings, tmp_path)
    es.created_indices += [settings.protocol.connectors_index, settings.protocol.jobs_index]
    await es.indices.create(index=index_name, mappings={"properties": {"n": {"type": "integer"}}})
    connector = await harness.create("memory", index_name, documents=documents(10))
    assert (await harness.sync(connector)).created == 10
    bad = [{**d, "n": "x", "_timestamp": "v2"} for d in documents(5)]
    await harness.configure(connector, documents=bad)
    result = await harness.sync(connector)
    assert result.status == "error" and "3 documents failed (limit 2)" in result.error
    assert result.job.doc["deleted_document_count"] == 0
    assert len(await index_contents(es, index_name)) == 10


@BOTH_WAYS
async def test_a_source_that_raises_deletes_nothing_and_the_next_sync_converges(
    es, harness, index_name, via
):
    connector = await harness.create("memory", index_name, documents=documents(50))
    await harness.sync(connector, via)
    await harness.configure(connector, documents=documents(30, 0, "v2"), fail_after=7)
    result = await harness.sync(connector, via)
    assert result.status == "error"
    assert "source failed after 7 documents" in result.error
    assert result.job.doc["deleted_document_count"] == 0
    assert len(await index_contents(es, index_name)) == 50
    failed_connector = await harness.connectors.get(connector)
    assert failed_connector.status == "error"
    assert "source failed after 7" in failed_connector.doc["last_sync_error"]

    await harness.configure(connector, fail_after=None)
    good = await harness.sync(connector, via)
    assert good.status == "completed" and good.job.doc["deleted_document_count"] == 20
    contents = await index_contents(es, index_name)
    assert len(contents) == 30 and {d["_timestamp"] for d in contents.values()} == {"v2"}
    assert (await harness.connectors.get(connector)).status == "connected"


async def test_an_incomplete_listing_deletes_nothing(es, harness, index_name):
    connector = await harness.create("memory", index_name, documents=documents(20))
    await harness.sync(connector)
    await harness.configure(connector, documents=documents(5), incomplete=True)
    result = await harness.sync(connector)
    assert result.status == "error" and "IncompleteListing" in result.error
    assert len(await index_contents(es, index_name)) == 20


@BOTH_WAYS
async def test_a_job_canceled_through_its_document_deletes_nothing(es, harness, index_name, via):
    connector = await harness.create("slow", index_name, count=40, pause=0, prefix="old")
    await harness.sync(connector)
    await harness.configure(connector, count=3000, pause=0.05, prefix="new")
    job_id = await harness.claim(connector)
    running = asyncio.create_task(harness.run(job_id, via))
    while (await harness.jobs.get(job_id)).doc["indexed_document_count"] == 0:
        await asyncio.sleep(0.2)
    await harness.jobs.request_cancel(job_id)
    result = await asyncio.wait_for(running, 60)
    assert result.status == "canceled" and result.job.doc["deleted_document_count"] == 0
    contents = await index_contents(es, index_name)
    assert {f"old-{i}" for i in range(40)} <= set(contents) and len(contents) < 40 + 3000


async def test_delete_stale_refuses_without_a_complete_read(es, settings, index_name, tmp_path):
    await ensure_content_index(es, index_name)
    snapshot = await snapshot_index(es, index_name, str(tmp_path))
    with pytest.raises(RuntimeError, match="not read to the end"):
        await delete_stale(snapshot, BulkWriter.for_index(es, index_name, settings.bulk))


async def test_a_job_of_a_kind_its_source_cannot_run_ends_error_and_unlocks_its_connector(
    es, harness, index_name
):
    connector = await harness.create("memory", index_name, documents=documents(3))
    job_id = await harness.claim(connector, "access_control")
    result = await harness.run(job_id)
    assert result.status == "error"
    assert result.error == (
        f"JobSetupError: connector {connector}: In-memory list does not support document level "
        "security, so it has no access-control sync"
    )
    after = await harness.connectors.get(connector)
    assert after.doc["last_access_control_sync_status"] == "error"
    assert after.doc.get("last_sync_status") != "in_progress"
    assert (await harness.sync(connector)).status == "completed"  # not blocked


async def test_a_job_whose_connector_was_deleted_ends_error(es, harness, index_name):
    connector = await harness.create("memory", index_name, documents=documents(3))
    job_id = await harness.claim(connector)
    await es.delete(index=harness.connectors.index, id=connector, refresh=True)
    result = await harness.run(job_id)
    assert result.status == "error" and f"connector {connector} was deleted" in result.error
