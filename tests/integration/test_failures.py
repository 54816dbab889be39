"""Every document a sync could not write is kept in the failures index, on the real stack: with
its id, connector, job, reason and time, listed by `job failures`, and cleared once a later full
sync wrote it."""

import json

from elastic_ingest.connectors.es.failures import FailureIndex
from tests.integration.conftest import make_settings
from tests.integration.jobs import ConnectorHarness
from tests.integration.test_cli import cli
from tests.integration.test_full_sync import documents


async def test_rejected_documents_are_kept_until_a_later_sync_writes_them(es, harness, index_name):
    await es.indices.create(index=index_name, mappings={"properties": {"n": {"type": "integer"}}})
    bad = {7, 70, 300, 512, 999}
    listed = [
        {**document, "n": "not a number"} if number in bad else document
        for number, document in enumerate(documents(1000))
    ]
    connector = await harness.create("memory", index_name, documents=listed)
    synced = await harness.sync(connector)
    assert synced.status == "completed" and synced.failed == 5 and synced.created == 995
    assert synced.job.doc["metadata"]["failures_index"] == harness.settings.service.failures_index

    shown = cli(str(harness.config_file), "job", "failures", synced.job.id, "-o", "json")
    records = json.loads(shown.stdout)
    assert sorted(r["document_id"] for r in records) == [f"doc-{n:05d}" for n in sorted(bad)]
    for record in records:
        assert record["connector_id"] == connector and record["job_id"] == synced.job.id
        assert record["index"] == index_name and record["action"] == "index"
        assert record["status"] == 400 and "failed to parse field [n]" in record["reason"]
        assert record["failed_at"] and "document" not in record  # no body unless asked
    text = cli(str(harness.config_file), "job", "failures", synced.job.id).stdout
    assert "doc-00007  index 400  " in text

    await harness.configure(connector, documents=documents(1000))  # the source fixed them
    fixed = await harness.sync(connector)
    assert fixed.status == "completed" and fixed.failed == 0
    assert fixed.created == 5  # they were not in the index: written now
    failures = FailureIndex(es, harness.settings.service.failures_index)
    assert await failures.of_job(synced.job.id) == []  # cleared
    after = cli(str(harness.config_file), "job", "failures", synced.job.id).stdout
    assert "left no failed documents" in after


async def test_a_document_that_fails_again_keeps_one_record_naming_the_latest_job(
    es, harness, index_name
):
    await es.indices.create(index=index_name, mappings={"properties": {"n": {"type": "integer"}}})
    listed = documents(3)
    listed[1] = {**listed[1], "n": "x"}
    connector = await harness.create("memory", index_name, documents=listed)
    first = await harness.sync(connector)
    listed[1] = {**listed[1], "_timestamp": "v2"}  # still bad, in a new version
    await harness.configure(connector, documents=listed)
    second = await harness.sync(connector)
    assert (first.failed, second.failed) == (1, 1)
    failures = FailureIndex(es, harness.settings.service.failures_index)
    assert await failures.of_job(first.job.id) == []
    [record] = await failures.of_job(second.job.id)
    assert record["document_id"] == "doc-00001"


async def test_the_body_is_kept_only_when_the_configuration_asks(es, index_name, tmp_path):
    settings = make_settings(service={"failures_keep_documents": True})
    es.created_indices += [settings.protocol.connectors_index, settings.protocol.jobs_index]
    harness = ConnectorHarness(es, settings, tmp_path)
    await es.indices.create(index=index_name, mappings={"properties": {"n": {"type": "integer"}}})
    listed = documents(2)
    listed[0] = {**listed[0], "n": "x"}
    connector = await harness.create("memory", index_name, documents=listed)
    synced = await harness.sync(connector)
    assert synced.failed == 1 and "body" not in synced.failures[0]  # never in reports
    [record] = await FailureIndex(es, settings.service.failures_index).of_job(synced.job.id)
    assert record["document"] == {"title": "title 0", "n": "x", "_timestamp": "v1"}


async def test_an_incremental_sync_clears_the_records_of_what_it_wrote_or_deleted(
    es, harness, index_name
):
    await es.indices.create(index=index_name, mappings={"properties": {"n": {"type": "integer"}}})
    listed = documents(4)
    for number in (1, 2, 3):
        listed[number] = {**listed[number], "n": "x"}
    connector = await harness.create("memory", index_name, documents=listed)
    full = await harness.sync(connector)
    assert full.failed == 3
    # the source fixes doc 1 in a new version and deletes doc 2; doc 3 is left as it was
    listed[1] = {**documents(4)[1], "_timestamp": "v2"}
    await harness.configure(connector, documents=listed, deleted=["doc-00002"])
    incremental = await harness.sync(connector, job_type="incremental")
    assert incremental.status == "completed", incremental.error
    assert incremental.job.doc["metadata"]["ran_as"] == "incremental"
    assert (incremental.created, incremental.failed) == (1, 0)
    failures = FailureIndex(es, harness.settings.service.failures_index)
    [left] = await failures.of_job(full.job.id)
    assert left["document_id"] == "doc-00003"  # not read again, still not in the index
