"""The service on a secured Elasticsearch: it works with its least-privilege API key, that key can
do nothing else, and a key missing a privilege fails a job with one line saying so."""

import pytest

from elastic_ingest.connectors.es.client import create_client
from elastic_ingest.connectors.es.privileges import service_role
from elastic_ingest.connectors.es.transport import AuthorizationException
from tests.integration.conftest import make_settings
from tests.integration.jobs import ConnectorHarness


async def test_the_service_key_cannot_manage_security_or_touch_other_system_indices(es):
    with pytest.raises(AuthorizationException):
        await es.request("GET", "/_security/user")
    with pytest.raises(AuthorizationException):
        await es.index(index=".kibana-elastic-ingest-test", document={"a": 1})
    with pytest.raises(AuthorizationException):
        settings = {"persistent": {"cluster.routing.allocation.enable": "all"}}
        await es.request("PUT", "/_cluster/settings", body=settings)


async def test_a_key_without_a_needed_privilege_fails_the_job_with_one_clear_line(
    es, admin_es, tmp_path, index_name
):
    narrow = await admin_es.security.create_api_key(
        name="elastic-ingest-test-narrow",
        expiration="1h",
        role_descriptors={"narrow": service_role("search-*")},  # not the test's index
    )
    settings = make_settings(elasticsearch={"api_key": narrow["encoded"]})
    client = create_client(settings.elasticsearch)
    try:
        harness = ConnectorHarness(client, settings, tmp_path)
        folder = tmp_path / "files"
        folder.mkdir()
        (folder / "a.txt").write_text("a")
        connector = await harness.create("directory", index_name, path=str(folder))
        synced = await harness.sync(connector)
        assert synced.status == "error"
        assert synced.error.startswith("Elasticsearch refused (403): ")
        assert index_name in synced.error
        assert synced.error.endswith(
            'the service\'s API key lacks a privilege (README "Security" lists what it needs)'
        )
        assert "\n" not in synced.error and "Traceback" not in synced.error
        connector_doc = (await harness.connectors.get(connector)).doc
        assert connector_doc["last_sync_status"] == "error"
        assert connector_doc["last_sync_error"] == synced.error
    finally:
        await client.close()
        await admin_es.security.invalidate_api_key(ids=[narrow["id"]])
        await admin_es.options(ignore_status=404).indices.delete(
            index=f"{settings.protocol.connectors_index}*,{settings.protocol.jobs_index}*"
        )
