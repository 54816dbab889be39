"""A sensitive value given as `prefect-secret:NAME` is read from that Prefect Secret block when a
sync (or the poll pass's source check) builds the source; the connector and its jobs keep only
the reference, and a reference that cannot be read fails with a line naming the field."""

import uuid

import pytest
from prefect.blocks.system import Secret

from elastic_ingest.connectors.poll import heartbeat_and_publish
from elastic_ingest.tasks.runtime import prefect_secret


@pytest.fixture
async def secret_name():
    name = f"ei-test-{uuid.uuid4().hex[:8]}"
    await Secret(value="open-sesame").asave(name)
    yield name
    await Secret.adelete(name)


async def test_a_flow_run_reads_the_secret_block_and_nothing_stores_the_secret(
    es, harness, index_name, secret_name
):
    connector = await harness.create("gated", index_name, token=f"prefect-secret:{secret_name}")
    synced = await harness.sync(connector, via="flow")
    assert synced.status == "completed", synced.error
    assert synced.created == 3
    stored = (await harness.connectors.get(connector)).doc
    assert stored["configuration"]["token"]["value"] == f"prefect-secret:{secret_name}"
    assert "open-sesame" not in str(stored) and "open-sesame" not in str(synced.job.doc)


async def test_the_poll_check_reads_the_secret_too(es, harness, index_name, secret_name):
    connector = await harness.create("gated", index_name, token=f"prefect-secret:{secret_name}")
    statuses = await heartbeat_and_publish(harness.settings, harness.connectors, prefect_secret)
    assert statuses[connector] == "connected"
    missing = await harness.create("gated", f"{index_name}-b", token="prefect-secret:no-such-x")
    await heartbeat_and_publish(harness.settings, harness.connectors, prefect_secret)
    error = (await harness.connectors.get(missing)).doc["error"]
    assert "token: the Prefect Secret block 'no-such-x' cannot be read" in error


async def test_without_prefect_or_with_a_missing_block_the_job_fails_naming_the_field(
    es, harness, index_name, secret_name
):
    connector = await harness.create("gated", index_name, token=f"prefect-secret:{secret_name}")
    plain = await harness.sync(connector)  # the plain driver has no secret store
    assert plain.status == "error"
    assert "token: holds prefect-secret:" in plain.error and "through Prefect" in plain.error
    await harness.configure(connector, token="prefect-secret:no-such-block")
    missing = await harness.sync(connector, via="flow")
    assert missing.status == "error"
    assert "token: the Prefect Secret block 'no-such-block' cannot be read" in missing.error
