"""What the Elasticsearch transport puts in URLs and error messages, and how it retries (over
httpx's MockTransport: the network, not the client, is what is replaced)."""

import httpx
import pytest

from elastic_ingest.connectors.es.transport import (
    ERRORS,
    ApiError,
    ConnectionTimeout,
    NotFoundError,
    Transport,
    backoff,
    document_path,
    names,
    query_value,
    shown,
)


def test_ids_are_escaped_and_index_lists_are_not():
    assert document_path("my-index", "a/b?c=1#d") == "/my-index/_doc/a%2Fb%3Fc%3D1%23d"
    assert names(["a", "b*"]) == "a,b*" and names("a,b") == "a,b"
    assert query_value(True) == "true" and query_value(["_id", "n"]) == "_id,n"


def test_a_host_shown_in_an_error_carries_no_credentials():
    assert shown("https://elastic:s3cret@es.example:9243") == "https://es.example:9243"
    assert shown("http://127.0.0.1:9200") == "http://127.0.0.1:9200"


def test_an_error_body_becomes_type_and_reason():
    body = {"error": {"type": "index_not_found_exception", "reason": "no such index [x]"}}
    error = ERRORS[404](404, body)
    assert isinstance(error, NotFoundError) and isinstance(error, ApiError)
    assert (error.status, error.error, error.message) == (
        404,
        "index_not_found_exception",
        body["error"]["reason"],
    )
    assert str(error) == "404 index_not_found_exception: no such index [x]"
    assert ApiError(502, "Bad Gateway").message == "Bad Gateway"
    assert ApiError(401, None).error == "401"


def transport_answering(handle, hosts=("http://es1.test:9200",)) -> Transport:
    return Transport(list(hosts), http_transport=httpx.MockTransport(handle))


async def test_an_overloaded_cluster_is_asked_again_with_backoff():
    answers = iter([503, 429, 200])
    seen = []

    def handle(request):
        seen.append(request.url.path)
        return httpx.Response(next(answers), json={"ok": True})

    transport = transport_answering(handle)
    status, body = await transport.perform("GET", "/_cluster/health", max_retries=3)
    assert (status, body, len(seen)) == (200, {"ok": True}, 3)
    await transport.close()


async def test_a_conditional_write_that_timed_out_is_not_sent_again():
    seen = []

    def handle(request):
        seen.append(request.url.params.get("if_seq_no"))
        raise httpx.ReadTimeout("no answer", request=request)

    transport = transport_answering(handle)
    params = {"if_seq_no": 7, "if_primary_term": 1}
    with pytest.raises(ConnectionTimeout):
        await transport.perform("POST", "/jobs/_update/j1", params=params, body={"doc": {}})
    assert seen == ["7"]  # it may have landed: a replay would fail on its own change
    await transport.close()


async def test_a_read_that_timed_out_is_sent_again():
    answers = iter(["timeout", 200])

    def handle(request):
        if next(answers) == "timeout":
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(200, json={"found": True})

    transport = transport_answering(handle)
    assert (await transport.perform("GET", "/jobs/_doc/j1"))[1] == {"found": True}
    await transport.close()


async def test_a_host_that_refuses_is_set_aside_for_the_next_requests():
    seen = []

    def handle(request):
        seen.append(request.url.host)
        if request.url.host == "es1.test":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={})

    transport = transport_answering(handle, hosts=("http://es1.test:9200", "http://es2.test:9200"))
    for _ in range(3):
        assert (await transport.perform("GET", "/_cluster/health"))[0] == 200
    assert seen == ["es1.test", "es2.test", "es2.test", "es2.test"]  # es1 tried once
    await transport.close()


def test_the_backoff_doubles_with_jitter():
    waits = [backoff(attempt) for attempt in range(4) for _ in range(50)]
    assert all(0.05 * 2**a <= backoff(a) <= 0.15 * 2**a for a in range(4))
    assert len(set(waits)) > 100  # not the same instant for every client
