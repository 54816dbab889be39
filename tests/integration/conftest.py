"""Fixtures on the real stack: an Elasticsearch client, settings, fresh protocol indices."""

import os
import uuid

import aioboto3
import pytest
from elasticsearch import AsyncElasticsearch
from pymongo import AsyncMongoClient

from devstack import elasticsearch as stack_es
from elastic_ingest.connectors.config import load_settings, parse_settings
from elastic_ingest.connectors.es.client import create_client
from elastic_ingest.connectors.es.indices import delete_indices
from elastic_ingest.connectors.protocol import ensure_protocol_indices, protocol_for
from tests.integration.jobs import ConnectorHarness
from tests.integration.stack import elasticsearch_section


def make_settings(**sections):
    raw = {
        "elasticsearch": elasticsearch_section(),
        "service": {"heartbeat_interval": 0.5},
        "protocol": {
            "connectors_index": f".elastic-connectors-test-{uuid.uuid4().hex[:8]}",
            "jobs_index": f".elastic-connectors-sync-jobs-test-{uuid.uuid4().hex[:8]}",
        },
        "sources": {
            "memory": "elastic_ingest.connectors.sources.memory:MemoryDataSource",
            "slow": "tests.integration.slow_source:SlowDataSource",
            "gated": "tests.integration.gated_source:GatedDataSource",
        },
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return parse_settings(raw)


@pytest.fixture
def settings():
    return make_settings()


@pytest.fixture
async def es(settings):
    client = create_client(settings.elasticsearch)
    created = []
    client.created_indices = created
    yield client
    names = [settings.protocol.connectors_index, settings.protocol.jobs_index, *created]
    await delete_indices(client, names)
    await client.close()


@pytest.fixture
async def admin_es():
    """The stack's superuser, for what a test does as an administrator (aliases, pipelines,
    keys), never for what the service does."""
    async with AsyncElasticsearch(
        os.environ["ELASTICSEARCH_URL"], basic_auth=stack_es.superuser()
    ) as client:
        yield client


@pytest.fixture
def index_name(es):
    name = f"test-content-{uuid.uuid4().hex[:10]}"
    es.created_indices.append(name)
    return name


@pytest.fixture
async def protocol(es, settings):
    await ensure_protocol_indices(es, settings.protocol)
    return protocol_for(es, settings)


@pytest.fixture
def harness(es, settings, tmp_path):
    """Connectors in this test's protocol indices, synced through the job lifecycle."""
    return ConnectorHarness(es, settings, tmp_path)


@pytest.fixture
async def service(config_file):
    """For a test module that defines `config_file`: the client, the protocol indices that file
    names, and a list of every index the test makes (all removed after)."""
    settings = load_settings(config_file)
    es = create_client(settings.elasticsearch)
    connectors, jobs = protocol_for(es, settings)
    made = [settings.protocol.connectors_index, settings.protocol.jobs_index]
    yield es, connectors, jobs, made
    await delete_indices(es, made)
    await es.close()


@pytest.fixture
async def s3():
    """An aioboto3 client of the stack's S3 server (moto accepts any key)."""
    session = aioboto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    async with session.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"]) as client:
        yield client


@pytest.fixture
async def mongo_collection():
    """A fresh collection on the stack's MongoDB-wire server, dropped afterwards."""
    client = AsyncMongoClient(os.environ["MONGODB_URL"], tz_aware=True)
    name = f"test_{uuid.uuid4().hex[:8]}"
    yield client["elastic_ingest_test"][name]
    await client["elastic_ingest_test"].drop_collection(name)
    await client.close()
