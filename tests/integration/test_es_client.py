"""The service's own Elasticsearch client on the real cluster: answers and errors by type, ids
that need escaping, a dead host skipped for a live one, and an unreachable cluster said so."""

import os
import uuid
import warnings

import pytest

from elastic_ingest.connectors.config import parse_settings
from elastic_ingest.connectors.es.client import check_reachable, create_client
from elastic_ingest.connectors.es.errors import credentials_problem, is_transient
from elastic_ingest.connectors.es.transport import (
    AuthenticationException,
    BadRequestError,
    ConflictError,
    ElasticsearchWarning,
    ESConnectionError,
    NotFoundError,
)
from tests.integration.stack import elasticsearch_section

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens there


def client_for(**section):
    settings = parse_settings({"elasticsearch": {**elasticsearch_section(), **section}})
    return create_client(settings.elasticsearch)


async def test_documents_round_trip_with_ids_that_need_escaping(es, index_name):
    ids = ["a/b", "c?d=1&e", "spaced id", "ü#%"]
    for number, document_id in enumerate(ids):
        created = await es.index(index=index_name, id=document_id, document={"n": number})
        assert created.status == 201 and created["_id"] == document_id
    await es.indices.refresh(index=index_name)
    for number, document_id in enumerate(ids):
        found = await es.get(index=index_name, id=document_id)
        assert found["_source"] == {"n": number}
    fetched = await es.mget(index=index_name, ids=ids, source_includes=["n"])
    assert [hit["_source"]["n"] for hit in fetched["docs"]] == [0, 1, 2, 3]
    response = await es.search(index=index_name, size=10, sort=["n"], source=False)
    assert [hit["_id"] for hit in response["hits"]["hits"]] == ids
    assert "_source" not in response["hits"]["hits"][0]
    assert (await es.count(index=index_name))["count"] == 4


async def test_errors_come_as_their_type_or_as_a_status_when_ignored(es, index_name):
    with pytest.raises(NotFoundError) as missing:
        await es.get(index=index_name, id="nope")
    assert missing.value.status == 404 and not is_transient(missing.value)
    await es.index(index=index_name, id="one", document={"n": 1}, refresh=True)
    with pytest.raises(ConflictError):
        await es.index(index=index_name, id="one", document={"n": 2}, op_type="create")
    with pytest.raises(BadRequestError) as bad:
        await es.indices.create(index=index_name)
    assert bad.value.error == "resource_already_exists_exception"
    assert index_name in bad.value.message
    ignored = await es.options(ignore_status=404).get(index=index_name, id="nope")
    assert ignored.status == 404 and ignored["found"] is False
    assert await es.indices.exists(index=index_name)
    assert not await es.indices.exists(index=f"{index_name}-absent")


async def test_bulk_takes_ndjson_bytes_or_lines(es, index_name):
    body = b'{"index":{"_id":"x"}}\n{"n":1}\n{"delete":{"_id":"absent"}}\n'
    sent = await es.bulk(index=index_name, operations=body, refresh=True)
    assert [item.get("index", item.get("delete"))["status"] for item in sent["items"]] == [201, 404]
    lines = [{"update": {"_index": index_name, "_id": "x"}}, {"doc": {"n": 2}}]
    await es.bulk(operations=lines, refresh=True)
    assert (await es.get(index=index_name, id="x"))["_source"] == {"n": 2}


async def test_a_warning_header_becomes_a_python_warning(es):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ElasticsearchWarning)
        # a dot index not made hidden: Elasticsearch warns that such names become reserved
        name = f".elastic-connectors-test-warning-{uuid.uuid4().hex[:8]}"
        await es.indices.create(index=name)
        await es.options(ignore_status=404).indices.delete(index=name)
    assert any(issubclass(w.category, ElasticsearchWarning) for w in caught)


async def test_a_dead_host_is_skipped_for_a_live_one():
    es = client_for(hosts=[DEAD, os.environ["ELASTICSEARCH_URL"]])
    try:
        for _ in range(3):  # each request starts at the next host; the dead one is retried past
            assert (await es.nodes.info(node_id="_local", filter_path="nodes.*.version"))["nodes"]
    finally:
        await es.close()


async def test_an_unreachable_cluster_and_wrong_credentials_are_said_in_one_line():
    es = client_for(hosts=[DEAD])
    try:
        with pytest.raises(ESConnectionError) as unreachable:
            await es.nodes.info(node_id="_local")
        assert is_transient(unreachable.value)
        with pytest.raises(ConnectionError, match="does not answer at http://127.0.0.1:9"):
            await check_reachable(es, [DEAD])
    finally:
        await es.close()
    es = client_for(api_key="bm90OmFrZXk=")
    try:
        with pytest.raises(AuthenticationException) as refused:
            await es.nodes.info(node_id="_local")
        assert "check elasticsearch.api_key" in credentials_problem(refused.value)
        assert "bm90OmFrZXk=" not in str(refused.value)
    finally:
        await es.close()
