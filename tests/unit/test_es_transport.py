"""What the Elasticsearch transport puts in URLs and error messages."""

from elastic_ingest.connectors.es.transport import (
    ERRORS,
    ApiError,
    NotFoundError,
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
