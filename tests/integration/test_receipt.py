"""The parity receipt of a full sync, on the real stack: on the job (`metadata.receipt`, with
the time of each stage), matching after a sync in one part or several, and naming the document
whose new version Elasticsearch rejected. (tests/integration/jobs.py also checks the receipt of
every full sync the other tests run.)"""

import json

import pytest

from tests.integration.test_cli import cli
from tests.integration.test_full_sync import documents


@pytest.mark.parametrize("via", ["plain", "flow"])
async def test_a_full_sync_leaves_a_matching_receipt_on_the_job(harness, index_name, via):
    connector = await harness.create("memory", index_name, documents=documents(100))
    await harness.sync(connector, via)
    changed = documents(20, 10, "v2") + documents(70, 30) + documents(15, 100, "v2")
    await harness.configure(connector, documents=changed)
    synced = await harness.sync(connector, via)

    assert synced.status == "completed", synced.error
    metadata = synced.job.doc["metadata"]
    receipt = metadata["receipt"]
    assert receipt["matches"] is True and receipt["warning"] is None
    assert receipt["source_count"] == receipt["index_count"] == 105
    assert receipt["source_digest"] == receipt["index_digest"]
    assert {"check_changed", "snapshot_index", "write_documents", "delete_stale", "receipt"} <= set(
        metadata["stage_seconds"]
    )
    shown = json.loads(
        cli(str(harness.config_file), "job", "show", synced.job.id, "-o", "json").stdout
    )
    assert shown["metadata"]["receipt"]["index_digest"] == receipt["index_digest"]


async def test_a_sync_in_parts_adds_up_to_one_receipt(harness, index_name):
    connector = await harness.create(
        "memory", index_name, documents=documents(90), sync_partitions=3
    )
    synced = await harness.sync(connector)
    assert synced.status == "completed", synced.error
    assert len(synced.job.doc["metadata"]["partitions"]) == 3
    receipt = synced.job.doc["metadata"]["receipt"]
    assert receipt["matches"] and receipt["source_count"] == 90


async def test_a_rejected_new_version_is_named_by_the_receipt(es, harness, index_name):
    await es.indices.create(index=index_name, mappings={"properties": {"n": {"type": "integer"}}})
    connector = await harness.create("memory", index_name, documents=documents(10))
    await harness.sync(connector)
    changed = documents(10)
    changed[3] = {**changed[3], "n": "not a number", "_timestamp": "v2"}
    await harness.configure(connector, documents=changed)

    synced = await harness.sync(connector)
    assert synced.status == "completed" and synced.failed == 1
    receipt = synced.job.doc["metadata"]["receipt"]
    assert receipt["matches"] is False
    assert receipt["differing"] == ["doc-00003"]  # the index still holds its first version
    assert "first indexed ids that differ: doc-00003" in receipt["warning"]
    assert "rejected by Elasticsearch" in receipt["warning"]
