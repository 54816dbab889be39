"""Requests to the protocol indices say they come from the connectors product (9.x expects it
of whoever reads and writes them directly); content requests do not; a refused creation is one
line that says what to do."""

import httpx
import pytest

from elastic_ingest.connectors.config import ProtocolSettings
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.documents import DocumentIndex
from elastic_ingest.connectors.es.transport import Transport
from elastic_ingest.connectors.protocol.indices import (
    ProtocolIndexRefused,
    ensure_protocol_indices,
)

ORIGIN = "x-elastic-product-origin"


def client_answering(answer, seen: list[httpx.Request]) -> ESClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    transport = Transport(["http://es.test:9200"], http_transport=httpx.MockTransport(handle))
    return ESClient(transport, max_retries=0)


def found(request: httpx.Request) -> httpx.Response:
    if request.method == "HEAD":
        return httpx.Response(200)
    body = {"_id": "c1", "_source": {}, "_seq_no": 0, "_primary_term": 1, "found": True}
    return httpx.Response(200, json=body)


async def test_protocol_documents_and_index_checks_carry_the_connectors_origin():
    seen: list[httpx.Request] = []
    es = client_answering(found, seen)
    await DocumentIndex(es, ".elastic-connectors").get("c1")
    await ensure_protocol_indices(es, ProtocolSettings())
    await es.get(index="content", id="c1")
    protocol_requests, content_request = seen[:-1], seen[-1]
    assert [request.method for request in protocol_requests] == ["GET", "HEAD", "HEAD"]
    assert all(request.headers[ORIGIN] == "connectors" for request in protocol_requests)
    assert ORIGIN not in content_request.headers
    await es.close()


async def test_existing_protocol_indices_are_never_created():
    seen: list[httpx.Request] = []
    es = client_answering(found, seen)
    await ensure_protocol_indices(es, ProtocolSettings())
    assert {request.method for request in seen} == {"HEAD"}
    await es.close()


async def test_a_refused_creation_says_which_index_and_what_to_do():
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(404)
        reason = "action [indices:admin/create] is unauthorized for API key id [k1]"
        return httpx.Response(403, json={"error": {"type": "security_exception", "reason": reason}})

    es = client_answering(refuse, [])
    with pytest.raises(ProtocolIndexRefused) as refused:
        await ensure_protocol_indices(es, ProtocolSettings())
    message = str(refused.value)
    assert "\n" not in message
    assert "protocol index .elastic-connectors" in message and "403 security_exception" in message
    assert "create it as an administrator" in message
    await es.close()
