"""Faults injected on the real stack: Elasticsearch throttling every write of an index, and the
Prefect server going away under a running poll loop."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from elastic_ingest.connectors.config import load_settings
from elastic_ingest.connectors.es.client import create_client
from elastic_ingest.connectors.es.failures import FailureIndex
from elastic_ingest.connectors.es.indices import delete_indices
from elastic_ingest.connectors.job.run import JobRun
from elastic_ingest.connectors.protocol import JobStatus, ensure_protocol_indices, protocol_for
from elastic_ingest.connectors.protocol.connector import new_connector_document
from tests.integration.conftest import make_settings
from tests.integration.jobs import ConnectorHarness
from tests.integration.private_prefect import PrivatePrefect, stop
from tests.integration.stack import elasticsearch_section
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.waiting import wait_for

PROJECT = Path(__file__).resolve().parents[2]


def documents(n, version):
    return [{"_id": f"d{i}", "n": i, "_timestamp": version} for i in range(n)]


async def test_writes_still_throttled_after_their_retries_end_the_job_in_error_not_clean(
    es, admin_es, index_name, tmp_path
):
    """Elasticsearch answers 429 per item while an index has the flood-stage block: those
    documents are not bad ones (not rejected, not counted against the limit), but the job must
    not read as a clean `completed` while they hold their older version."""
    settings = make_settings(bulk={"max_retries": 1, "retry_backoff_seconds": 0.01})
    es.created_indices += [settings.protocol.connectors_index, settings.protocol.jobs_index]
    harness = ConnectorHarness(es, settings, tmp_path)
    connector = await harness.create("memory", index_name, documents=documents(10, "v1"))
    assert (await harness.sync(connector)).created == 10
    await harness.configure(connector, documents=documents(3, "v2") + documents(10, "v1")[3:])
    # Elasticsearch releases this block by itself when the disk has room (its disk monitor runs
    # every 30 s), unless the disk thresholds are off: keep them off while the block is on.
    no_monitor = {"cluster.routing.allocation.disk.threshold_enabled": False}
    await admin_es.cluster.put_settings(persistent=no_monitor)
    await admin_es.indices.put_settings(
        index=index_name, settings={"index.blocks.read_only_allow_delete": True}
    )
    try:
        throttled = await harness.sync(connector)
    finally:
        await admin_es.indices.put_settings(
            index=index_name, settings={"index.blocks.read_only_allow_delete": None}
        )
        await admin_es.cluster.put_settings(persistent=dict.fromkeys(no_monitor))
    assert throttled.status == "error" and throttled.failed == 0
    assert throttled.error.startswith("WritesThrottled: 3 documents were not written")
    assert "the next sync writes them" in throttled.error
    metadata = throttled.job.doc["metadata"]
    assert "rejected_document_count" not in metadata and "receipt" not in metadata
    assert metadata["throttled_document_count"] == 3
    assert all(
        "429" in line or "TOO_MANY_REQUESTS" in line for line in metadata["throttled_documents"]
    )
    await es.indices.refresh(index=index_name)
    assert (await es.get(index=index_name, id="d0"))["_source"]["_timestamp"] == "v1"
    kept = await FailureIndex(es, settings.service.failures_index).of_job(throttled.job.id)
    assert sorted((r["document_id"], r["status"]) for r in kept) == [
        ("d0", 429), ("d1", 429), ("d2", 429)
    ]  # fmt: skip

    retried = await harness.sync(connector)  # not written, so not "unchanged": retried
    assert retried.status == "completed" and retried.updated == 3 and retried.failed == 0
    await es.indices.refresh(index=index_name)
    assert (await es.get(index=index_name, id="d0"))["_source"]["_timestamp"] == "v2"


@pytest.mark.slow
async def test_the_poll_loop_rides_out_a_prefect_outage(tmp_path):
    server = PrivatePrefect(tmp_path / "prefect-home")
    server.start()
    suffix = uuid.uuid4().hex[:8]
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "elasticsearch": elasticsearch_section(),
                "service": {"poll_interval": 1, "use_deployments": False},
                "protocol": {
                    "connectors_index": f".elastic-connectors-out-{suffix}",
                    "jobs_index": f".elastic-connectors-sync-jobs-out-{suffix}",
                },
            }
        )
    )
    settings = load_settings(config_file)
    es = create_client(settings.elasticsearch)
    connectors, jobs = protocol_for(es, settings)
    made = [settings.protocol.connectors_index, settings.protocol.jobs_index]
    await ensure_protocol_indices(es, settings.protocol)
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.txt").write_text("a")

    async def synced_connector(name: str) -> str:
        made.append(name)
        document = new_connector_document("directory", name, configuration={"path": str(folder)})
        document.update(status="configured", sync_now=True)
        connector_id = await connectors.create(document)

        async def synced():
            found = await jobs.for_connector(connector_id)
            if found and found[0].status == JobStatus.COMPLETED:
                return True
            assert loop.poll() is None, loop.communicate()
            return False

        await wait_for(synced, 120, what=f"connector {name} synced", every=0.5)
        return connector_id

    loop = subprocess.Popen(
        [sys.executable, "-m", "elastic_ingest.flows.poll", "-c", str(config_file)],
        cwd=PROJECT,
        env=server.client_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await synced_connector(f"out-before-{suffix}")
        server.stop()
        await asyncio.sleep(12)
        assert loop.poll() is None, "the poll loop exited while Prefect was away"
        server.start()
        await synced_connector(f"out-after-{suffix}")
    finally:
        loop.send_signal(signal.SIGTERM)
        try:
            _, stderr = loop.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            stop(loop)
            _, stderr = loop.communicate()
        server.stop()
        await delete_indices(es, made)
        await es.close()
    assert loop.returncode == 0, stderr[-3000:]
    assert stderr.count("the Prefect server does not answer") == 1, stderr[-3000:]
    assert "the poll pass works again" in stderr
    assert "Traceback" not in stderr, stderr[-3000:]


class CutBeforeReporting(JobRun):
    """A job whose Elasticsearch goes away just as it reports, and comes back a little later."""

    proxy: TcpProxy

    async def finish(self, patient: bool = True):
        await self.proxy.cut()
        asyncio.get_running_loop().call_later(3, lambda: asyncio.ensure_future(self.proxy.start()))
        return await super().finish(patient)


async def test_an_elasticsearch_outage_while_reporting_is_waited_out(es, index_name, tmp_path):
    target = urlsplit(os.environ["ELASTICSEARCH_URL"])
    proxy = TcpProxy(target.hostname, target.port)
    await proxy.start()
    settings = make_settings(elasticsearch={"hosts": [proxy.url], "request_timeout": 5})
    es.created_indices += [settings.protocol.connectors_index, settings.protocol.jobs_index]
    through_proxy = create_client(settings.elasticsearch)
    try:
        harness = ConnectorHarness(through_proxy, settings, tmp_path)
        connector = await harness.create("memory", index_name, documents=documents(5, "v1"))
        job_id = await harness.claim(connector)
        run = CutBeforeReporting(through_proxy, settings, job_id)
        run.proxy = proxy
        outcome = await run.run()
        assert outcome.status == JobStatus.COMPLETED
    finally:
        await proxy.cut()
        await through_proxy.close()
    _, jobs = protocol_for(es, settings)
    job = await jobs.get(job_id)
    assert job.status == JobStatus.COMPLETED and job.doc["indexed_document_count"] == 5
    connector_after = await jobs.connectors.get(connector)
    assert connector_after.doc["last_sync_status"] == "completed"  # unlocked, not left in_progress
