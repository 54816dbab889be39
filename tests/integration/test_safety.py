"""Data-loss cases from the field, on the real stack: a connector aimed at the protocol's own
indices, a connector renamed under a queued job, a worker that comes back from the dead, and two
connectors aimed at one index."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from elastic_ingest.connectors.es.bulk import BulkWriter, Fenced, bulk_sender
from elastic_ingest.connectors.es.indices import ensure_content_index
from elastic_ingest.connectors.job.ownership import OwnerCheck
from elastic_ingest.connectors.poll import heartbeat_and_publish
from elastic_ingest.connectors.protocol import JobStatus
from elastic_ingest.connectors.protocol.connector import new_connector_document
from elastic_ingest.connectors.protocol.job import JobLost
from elastic_ingest.connectors.protocol.stale import fail_stale_jobs
from tests.integration.conftest import make_settings
from tests.integration.jobs import ConnectorHarness
from tests.integration.processes import wait_ended

PROJECT = Path(__file__).resolve().parents[2]


async def ids_and_versions(es, index):
    await es.indices.refresh(index=index)
    response = await es.search(index=index, size=10_000, source=["_timestamp"])
    return {hit["_id"]: hit["_source"]["_timestamp"] for hit in response["hits"]["hits"]}


async def test_a_connector_aimed_at_a_protocol_index_is_refused_everywhere(
    es, admin_es, harness, settings, index_name
):
    connectors_index = settings.protocol.connectors_index
    jobs_index = settings.protocol.jobs_index
    healthy = await harness.create("memory", index_name, documents=[{"_id": "a", "n": 1}])
    assert (await harness.sync(healthy)).status == "completed"

    # The CLI refuses such a target with a one-line usage error.
    result = subprocess.run(
        [sys.executable, "-m", "elastic_ingest.app.cli", "-c", str(harness.config_file),
         "connector", "create", "--service-type", "memory", "--index-name", jobs_index],
        capture_output=True, text=True, cwd=PROJECT,
    )  # fmt: skip
    assert result.returncode == 2 and "holds the connector protocol's own documents" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr

    # Written directly as Kibana would: the job ends error and deletes nothing.
    for target in (connectors_index, jobs_index, ".hidden-thing"):
        document = new_connector_document("memory", target, configuration={"documents": []})
        document["status"] = "configured"
        rogue = await harness.connectors.create(document)
        synced = await harness.sync(rogue)
        assert synced.status == "error", target
        assert target in synced.error and "choose another index" in synced.error
        connector = await harness.connectors.get(rogue)
        assert connector.status == "error" and target in connector.doc["error"]
    assert (await harness.jobs.get(synced.job.id)) is not None  # the jobs index is intact
    assert await harness.connectors.get(healthy) is not None

    # An alias that points at a protocol index is refused when the job resolves it.
    await admin_es.indices.put_alias(index=f"{jobs_index}-v1", name=f"{index_name}-alias")
    aliased = await harness.create("memory", f"{index_name}-alias", documents=[])
    synced = await harness.sync(aliased)
    assert synced.status == "error" and f"is an alias of '{jobs_index}-v1'" in synced.error
    assert (await es.count(index=jobs_index))["count"] == 5  # 1 + 3 refused + 1: none lost


async def test_a_job_syncs_the_index_of_its_own_snapshot_when_the_connector_is_renamed(
    es, harness, index_name
):
    connector = await harness.create("memory", index_name, documents=[{"_id": "a", "v": 1}])
    await harness.sync(connector)
    job_id = await harness.claim(connector)
    renamed = f"{index_name}-renamed"
    es.created_indices.append(renamed)
    await harness.connectors.patch(connector, {"index_name": renamed})
    await harness.configure(connector, documents=[{"_id": "a", "v": 2}, {"_id": "b", "v": 2}])
    synced = await harness.run(job_id)
    assert synced.status == "completed"
    assert set(await ids_and_versions(es, index_name)) == {"a"}  # nothing emptied, no mix
    assert not await es.indices.exists(index=renamed)


async def test_a_worker_declared_dead_cannot_overwrite_a_newer_job(es, index_name, tmp_path):
    """A sync process frozen past the stale threshold, its job failed, a newer job syncs the
    connector; when the frozen process resumes, none of its writes may land. Its heartbeat is
    slow on purpose, so it resumes writing before any heartbeat could tell it the job is gone:
    only the fencing (ownership check before each request, versions that grow with each job)
    stands between its buffered documents and the index."""
    settings = make_settings(
        service={"heartbeat_interval": 60, "stale_job_seconds": 1},
        bulk={"operations_per_request": 50},
    )
    es.created_indices += [settings.protocol.connectors_index, settings.protocol.jobs_index]
    harness = ConnectorHarness(es, settings, tmp_path)
    connector = await harness.create(
        "slow", index_name, count=3000, pause=0.02, prefix="doc", version="old"
    )
    old_job = await harness.jobs.create(await harness.connectors.get(connector))
    frozen = subprocess.Popen(
        [sys.executable, "-m", "elastic_ingest.app.cli", "-c", str(harness.config_file),
         "job", "run", "--", old_job],
        cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
    )  # fmt: skip
    try:
        while (
            not await es.indices.exists(index=index_name)
            or len(await ids_and_versions(es, index_name)) < 1000
        ):  # the first batch of 1,000 is written; the next one is being read
            assert frozen.poll() is None, frozen.communicate()
            await asyncio.sleep(0.1)
        frozen.send_signal(signal.SIGSTOP)
        await asyncio.sleep(2)
        [failed] = await fail_stale_jobs(harness.jobs, settings.service.stale_job_seconds)
        assert failed.id == old_job and failed.status == JobStatus.ERROR

        await harness.configure(connector, count=1000, pause=0, version="new")
        newer = await harness.sync(connector)
        assert newer.status == "completed"
        expected = {f"doc-{i}": "new" for i in range(1000)}
        assert await ids_and_versions(es, index_name) == expected
    finally:
        frozen.send_signal(signal.SIGCONT)
    _, stderr = wait_ended(frozen, 60)
    assert frozen.returncode == 1, stderr.decode()
    assert "no longer owns it" in stderr.decode() and "Traceback" not in stderr.decode()
    assert await ids_and_versions(es, index_name) == expected  # nothing old came back
    if "deleted again" in stderr.decode():  # frozen between a check and its send: undone, and
        # the connector's next full sync reads everything (see the test below)
        assert (await harness.connectors.get(connector)).doc["drift"]
    assert (await harness.jobs.get(old_job)).status == JobStatus.ERROR
    assert (await harness.jobs.get(newer.job.id)).status == JobStatus.COMPLETED


async def test_elasticsearch_itself_rejects_the_writes_of_an_older_job(es, settings, index_name):
    """The second fence: operations carry the job's generation as an external version, so an
    older job's index or delete of a document a newer job wrote (or deleted) is refused."""
    await ensure_content_index(es, index_name)
    newer = BulkWriter.for_index(es, index_name, settings.bulk, version=2_000)
    await newer.index("kept", b'{"_timestamp": "new"}')
    await newer.index("gone", b'{"_timestamp": "new"}')
    await newer.close()
    newer = BulkWriter.for_index(es, index_name, settings.bulk, version=2_000)
    await newer.delete("gone")
    await newer.close()

    for operation in ("index-kept", "index-gone", "delete-kept"):
        older = BulkWriter.for_index(es, index_name, settings.bulk, version=1_000)
        action, document_id = operation.split("-")
        if action == "index":
            await older.index(document_id, b'{"_timestamp": "old"}')
        else:
            await older.delete(document_id)
        with pytest.raises(Fenced, match="written by a newer job"):
            await older.close()
    assert await ids_and_versions(es, index_name) == {"kept": "new"}


async def test_a_request_that_left_after_a_takeover_is_undone(es, settings, index_name):
    """The gap the checks cannot close: a process frozen after its ownership check and before
    its request left (a paused VM) sends it after a newer job took over. Elasticsearch keeps
    what the newer job wrote (versions); what else the late request indexed is deleted again,
    what the writer wrote while it owned the job stays, and the writer stops."""
    await ensure_content_index(es, index_name)
    clock, taken = [0.0], []

    async def ask():
        if taken:
            raise JobLost("job old is error; this worker no longer owns it")

    send = bulk_sender(es, index_name)

    async def send_after_a_freeze(body: bytes) -> dict:
        if b'"late"' in body and not taken:  # checked, not yet sent: frozen here for 10 min
            clock[0] += 600
            taken.append(True)
            newer = BulkWriter.for_index(es, index_name, settings.bulk, version=2_000)
            await newer.index("shared", b'{"_timestamp": "new"}')
            await newer.close()
        return await send(body)

    older = BulkWriter(
        send_after_a_freeze,
        settings.bulk.model_copy(update={"requests_in_flight": 1}),
        version=1_000,
        check_owner=OwnerCheck(ask, reuse_for=1.0, answer_within=30.0, clock=lambda: clock[0]),
    )
    await older.index("early", b'{"_timestamp": "old"}')
    await older.flush()
    await older.index("shared", b'{"_timestamp": "old"}')
    await older.index("late", b'{"_timestamp": "old"}')
    with pytest.raises(JobLost, match="no longer owns it"):
        await older.close()
    assert await ids_and_versions(es, index_name) == {"early": "old", "shared": "new"}
    assert (older.stats.landed_late, older.stats.undone) == (1, 1)


async def test_two_connectors_on_one_index_never_delete_each_others_documents(
    es, harness, index_name
):
    first = await harness.create("memory", index_name, documents=[{"_id": "a1", "n": 1}])
    assert (await harness.sync(first)).status == "completed"
    second = await harness.create("memory", index_name, documents=[{"_id": "b1", "n": 2}])
    for kind in ("full", "deletion"):  # the kinds that delete what their source lacks
        refused = await harness.sync(second, job_type=kind)
        assert refused.status == "error" and refused.deleted == 0
        assert f"index {index_name} is also the target of connector {first}" in refused.error
    assert set(await ids_and_versions(es, index_name)) == {
        "a1"
    }  # the first connector's document stays
    statuses = await heartbeat_and_publish(harness.settings, harness.connectors)
    assert statuses[first] == statuses[second] == "error"
    error = (await harness.connectors.get(first)).doc["error"]
    assert f"also the target of connector {second}" in error
