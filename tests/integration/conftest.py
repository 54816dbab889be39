"""Fixtures on the real stack: an Elasticsearch client, settings, fresh protocol indices."""

import os
import uuid

import pytest

from connectors.config import parse_settings
from connectors.es.client import create_client
from connectors.es.indices import delete_indices
from connectors.protocol import ensure_protocol_indices, protocol_for
from tests.integration.jobs import ConnectorHarness


def make_settings(**sections):
    raw = {
        "elasticsearch": {"hosts": [os.environ["ELASTICSEARCH_URL"]]},
        "service": {"heartbeat_interval": 0.5},
        "protocol": {
            "connectors_index": f"test-connectors-{uuid.uuid4().hex[:8]}",
            "jobs_index": f"test-jobs-{uuid.uuid4().hex[:8]}",
        },
        "sources": {
            "memory": "connectors.sources.memory:MemoryDataSource",
            "mongodb": "connectors.sources.mongo:MongoDataSource",
            "s3": "connectors.sources.s3:S3DataSource",
            "directory": "connectors.sources.directory:DirectoryDataSource",
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
