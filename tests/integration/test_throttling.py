"""Throttling is not failure, on the real stack behind a proxy that answers every third bulk item
429 without writing it: the poll pass's check-in (a bulk of connector updates) and the content
writes are retried, every job completes with every document in its newest version, and the
parity receipt, taken through the same proxy, matches."""

import os
import uuid

import yaml

from elastic_ingest.flows.poll import poll_forever
from tests.integration.conftest import make_settings
from tests.integration.jobs import ConnectorHarness
from tests.integration.stack import elasticsearch_section
from tests.integration.throttling_proxy import ThrottlingProxy

CONNECTORS = 3
DOCUMENTS = 200


def documents(version):
    return [{"_id": f"d{n:03d}", "n": n, "_timestamp": version} for n in range(DOCUMENTS)]


async def test_every_third_bulk_item_throttled_leaves_nothing_stale(es, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    protocol = {
        "connectors_index": f".elastic-connectors-throttled-{suffix}",
        "jobs_index": f".elastic-connectors-sync-jobs-throttled-{suffix}",
    }
    settings = make_settings(protocol=protocol)  # the test's own view: straight to Elasticsearch
    es.created_indices += list(protocol.values())
    harness = ConnectorHarness(es, settings, tmp_path)
    proxy = ThrottlingProxy(os.environ["ELASTICSEARCH_URL"])
    await proxy.start()
    try:
        config_file = tmp_path / "through-the-proxy.yml"
        config_file.write_text(
            yaml.safe_dump(
                {
                    "elasticsearch": {**elasticsearch_section(), "hosts": [proxy.url]},
                    "protocol": protocol,
                    "sources": {
                        "memory": "elastic_ingest.connectors.sources.memory:MemoryDataSource"
                    },
                    "service": {"use_deployments": False, "max_concurrent_syncs": CONNECTORS},
                    "bulk": {"retry_backoff_seconds": 0.05, "operations_per_request": 50},
                }
            )
        )
        ids, indices = [], []
        for n in range(CONNECTORS):
            index = f"throttled-{suffix}-{n}"
            es.created_indices.append(index)
            indices.append(index)
            ids.append(await harness.create("memory", index, documents=documents("v1")))
            await harness.connectors.patch(ids[-1], {"sync_now": True})

        for version in ("v1", "v2"):
            if version == "v2":
                for connector_id in ids:
                    await harness.configure(connector_id, documents=documents("v2"))
                    await harness.connectors.patch(connector_id, {"sync_now": True})
            assert await poll_forever(str(config_file), once=True) == 0
            for connector_id, index in zip(ids, indices, strict=True):
                [job] = await harness.jobs.for_connector(connector_id, size=1)
                assert job.status.value == "completed", job.doc.get("error")
                metadata = job.doc["metadata"]
                assert "throttled_document_count" not in metadata
                assert "rejected_document_count" not in metadata
                assert metadata["receipt"]["matches"], metadata["receipt"]
                await es.indices.refresh(index=index)
                response = await es.search(index=index, size=DOCUMENTS + 10)
                held = {hit["_source"]["_timestamp"] for hit in response["hits"]["hits"]}
                assert (len(response["hits"]["hits"]), held) == (DOCUMENTS, {version})

        # the proxy did refuse: content items, and the check-in of at least one connector
        assert len(proxy.rejected) > CONNECTORS * DOCUMENTS * 2 // 4
        assert set(ids) & set(proxy.rejected), "no check-in item was throttled"
    finally:
        await proxy.stop()
