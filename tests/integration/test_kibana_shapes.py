"""Connectors as Kibana creates them for Elastic's own MongoDB and S3 connectors (their field
sets, field objects with flags) sync here unchanged; fields we do not use are kept and ignored."""

import os
import uuid

import aioboto3
from pymongo import AsyncMongoClient

from elastic_ingest.connectors.protocol.connector import new_connector_document
from elastic_ingest.connectors.protocol.job import new_job_document


def field(value, label, sensitive=False, kind="str", display="text", order=1):
    """One configuration field object as Kibana writes it."""
    return {
        "label": label,
        "value": value,
        "type": kind,
        "sensitive": sensitive,
        "required": False,
        "display": display,
        "order": order,
        "default_value": None,
        "depends_on": [],
        "options": [],
        "tooltip": None,
        "validations": [],
        "ui_restrictions": [],
    }


async def kibana_connector(harness, service_type, index, configuration):
    document = new_connector_document(service_type, index)
    document.update(
        status="configured",
        configuration=configuration,
        is_native=False,
        custom_scheduling={},
        pipeline={
            "name": "search-default-ingestion",
            "extract_binary_content": True,
            "reduce_whitespace": True,
            "run_ml_inference": True,
        },
    )
    return await harness.connectors.create(document)


async def test_elastic_mongodb_field_set_syncs(es, harness, index_name):
    name = f"k{uuid.uuid4().hex[:10]}"
    client = AsyncMongoClient(os.environ["MONGODB_URL"])
    try:
        await client["kibana"][name].insert_many([{"_id": i, "n": i} for i in range(7)])
        connector = await kibana_connector(
            harness,
            "mongodb",
            index_name,
            {
                "host": field(os.environ["MONGODB_URL"], "Server hostname"),
                "user": field("", "Username"),
                "password": field("", "Password", sensitive=True),
                "database": field("kibana", "Database"),
                "collection": field(name, "Collection"),
                "direct_connection": field(True, "Direct connection", kind="bool"),
                "ssl_enabled": field(False, "SSL/TLS Connection", kind="bool"),
                "ssl_ca": field("", "Certificate Authority (.pem)"),
                "tls_insecure": field(False, "Skip certificate verification", kind="bool"),
                "datetime_conversion": field("DATETIME", "Datetime conversion"),
            },
        )
        synced = await harness.sync(connector, "flow")
    finally:
        await client["kibana"][name].drop()
        await client.close()
    assert synced.status == "completed", synced.error
    assert synced.job.doc["indexed_document_count"] == 7
    kept = (await harness.connectors.get(connector)).configuration
    assert kept["datetime_conversion"]["value"] == "DATETIME"  # kept, not rewritten away


async def test_elastic_s3_field_set_syncs(es, harness, index_name):
    bucket = f"kibana-{uuid.uuid4().hex[:10]}"
    session = aioboto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    async with session.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"]) as s3:
        await s3.create_bucket(Bucket=bucket)
        await s3.put_object(Bucket=bucket, Key="a.txt", Body=b"alpha")
    connector = await kibana_connector(
        harness,
        "s3",
        index_name,
        {
            "buckets": field([bucket], "AWS Buckets", kind="list"),
            "aws_access_key_id": field("test", "AWS Access Key Id"),
            "aws_secret_access_key": field("test-secret", "AWS Secret Key", sensitive=True),
            "read_timeout": field(90, "Read timeout", kind="int"),
            "connect_timeout": field(90, "Connection timeout", kind="int"),
            "max_attempts": field(5, "Maximum retry attempts", kind="int"),
            "page_size": field(100, "Maximum size of page", kind="int"),
            "use_text_extraction_service": field(False, "Use text extraction service", kind="bool"),
            "endpoint_url": field(os.environ["S3_ENDPOINT_URL"], "Endpoint"),
        },
    )
    synced = await harness.sync(connector)
    assert synced.status == "completed", synced.error
    assert synced.job.doc["indexed_document_count"] == 1
    snapshot = synced.job.doc["connector"]["configuration"]
    assert snapshot["aws_secret_access_key"]["value"] == "********"
    await es.indices.refresh(index=index_name)
    assert (await es.get(index=index_name, id=f"{bucket}/a.txt"))["_source"]["body"] == "alpha"


def kibana_job(connector, job_type):
    """A pending job as Kibana writes it: its connector snapshot has no `sync_cursor`."""
    document = new_job_document(connector, job_type, "on_demand", frozenset())
    del document["connector"]["sync_cursor"]
    return document


async def test_an_incremental_job_kibana_started_runs_incrementally(es, harness, index_name):
    versions = [{"_id": f"d{i}", "n": i, "_timestamp": "v1"} for i in range(6)]
    connector = await harness.create("memory", index_name, documents=versions)
    assert (await harness.sync(connector)).status == "completed"
    versions[2] = {"_id": "d2", "n": -2, "_timestamp": "v2"}
    await harness.configure(connector, documents=versions, deleted=["d5"])

    live = await harness.connectors.get(connector)
    job_id = await harness.claim_written(kibana_job(live, "incremental"))
    synced = await harness.run(job_id, via="flow")

    assert synced.status == "completed", synced.error
    assert synced.job.doc["metadata"]["ran_as"] == "incremental"
    assert (synced.updated, synced.deleted, synced.seen) == (1, 1, 1)
    await es.indices.refresh(index=index_name)
    response = await es.search(index=index_name, size=100)
    contents = {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}
    assert set(contents) == {"d0", "d1", "d2", "d3", "d4"} and contents["d2"]["n"] == -2
    assert await harness.cursor(connector) == {"newest": "v2"}


async def test_a_deployment_style_run_says_its_failed_job_in_one_line(harness, tmp_path):
    """`prefect deployment run sync/directory --param connector_id=...` runs the job as a child
    run; the parent's state message is the child's error, not a dump of its data."""
    from elastic_ingest.flows.sync import sync

    gone = tmp_path / "gone"
    gone.mkdir()
    connector = await harness.create("directory", f"gone-{uuid.uuid4().hex[:8]}", path=str(gone))
    harness.es.created_indices.append((await harness.connectors.get(connector)).index_name)
    gone.rmdir()
    state = await sync(
        connector_id=connector, config_file=str(harness.config_file), return_state=True
    )
    assert state.is_failed()
    assert state.message.startswith(f"{connector}: job ") and "does not exist" in state.message
    assert "Unexpected result" not in state.message and "{" not in state.message
