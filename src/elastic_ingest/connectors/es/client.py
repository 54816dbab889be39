"""The Elasticsearch client of the service: the endpoints it calls, with elasticsearch-py's
names and keywords, so code reads as Elastic's documentation does; built from settings."""

from __future__ import annotations

from typing import Any

import orjson

from elastic_ingest.connectors.config import ElasticsearchSettings
from elastic_ingest.connectors.es.transport import (
    ESConnectionError,
    Response,
    Transport,
    document_path,
    names,
)

# Elastic's connector service names itself on each request to the protocol indices: since 8.16
# direct access to them is deprecated, and 9.x makes them system indices of its ent-search
# plugin, reachable as before by a client that says it is the connectors product.
CONNECTORS_ORIGIN = {"x-elastic-product-origin": "connectors"}


def _given(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


class ESClient:
    """Endpoints by name; `options()` gives a copy with other retry or ignore settings that
    shares the connections."""

    def __init__(self, transport: Transport, **options: Any):
        self.transport = transport
        self._options = options
        self.indices = Indices(self)
        self.ingest = Ingest(self)
        self.nodes = Nodes(self)
        self.security = Security(self)

    def options(
        self,
        *,
        ignore_status: int | tuple[int, ...] | None = None,
        max_retries: int | None = None,
        retry_on_timeout: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> ESClient:
        if isinstance(ignore_status, int):
            ignore_status = (ignore_status,)
        changed = dict(
            ignore_status=ignore_status,
            max_retries=max_retries,
            retry_on_timeout=retry_on_timeout,
            headers=headers,
        )
        return ESClient(self.transport, **{**self._options, **_given(changed)})

    def as_connectors_product(self) -> ESClient:
        """A copy for the protocol indices: every request carries CONNECTORS_ORIGIN."""
        return self.options(headers=CONNECTORS_ORIGIN)

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        ndjson: bytes | None = None,
    ) -> Response:
        """Any endpoint: `request("GET", "/_cluster/health")`."""
        status, decoded = await self.transport.perform(
            method, path, params=params, body=body, ndjson=ndjson, **self._options
        )
        return Response(status, decoded)

    async def close(self) -> None:
        await self.transport.close()

    async def search(
        self,
        *,
        index: str | None = None,
        filter_path: str | None = None,
        source_includes: list[str] | None = None,
        **body: Any,
    ) -> Response:
        path = f"/{names(index)}/_search" if index else "/_search"
        params = {"filter_path": filter_path, "_source_includes": source_includes}
        if "source" in body:  # elasticsearch-py's name for the `_source` field
            body["_source"] = body.pop("source")
        return await self.request("POST", path, params, _given(body))

    async def count(self, *, index: str, query: dict | None = None) -> Response:
        return await self.request("POST", f"/{names(index)}/_count", None, _given({"query": query}))

    async def open_point_in_time(self, *, index: str, keep_alive: str) -> Response:
        return await self.request("POST", f"/{names(index)}/_pit", {"keep_alive": keep_alive})

    async def close_point_in_time(self, *, id: str) -> Response:  # noqa: A002 - ES's name
        return await self.request("DELETE", "/_pit", None, {"id": id})

    async def mget(
        self, *, index: str, ids: list[str], source_includes: list[str] | None = None
    ) -> Response:
        params = {"_source_includes": source_includes}
        return await self.request("POST", f"/{names(index)}/_mget", params, {"ids": ids})

    async def bulk(
        self,
        *,
        operations: bytes | list[dict],
        index: str | None = None,
        refresh: bool | str | None = None,
        filter_path: str | None = None,
        pipeline: str | None = None,
    ) -> Response:
        """`operations`: an NDJSON body as it goes on the wire, or the lines as objects."""
        if not isinstance(operations, bytes):
            operations = b"".join(orjson.dumps(line) + b"\n" for line in operations)
        path = f"/{names(index)}/_bulk" if index else "/_bulk"
        params = {"refresh": refresh, "filter_path": filter_path, "pipeline": pipeline}
        return await self.request("POST", path, params, ndjson=operations)

    async def index(
        self,
        *,
        index: str,
        document: dict,
        id: str | None = None,  # noqa: A002
        refresh: bool | str | None = None,
        op_type: str | None = None,
        if_seq_no: int | None = None,
        if_primary_term: int | None = None,
    ) -> Response:
        params = {
            "refresh": refresh,
            "op_type": op_type,
            "if_seq_no": if_seq_no,
            "if_primary_term": if_primary_term,
        }
        if id is None:
            return await self.request("POST", f"/{names(index)}/_doc", params, document)
        return await self.request("PUT", document_path(index, id), params, document)

    async def get(self, *, index: str, id: str) -> Response:  # noqa: A002
        return await self.request("GET", document_path(index, id))

    async def update(
        self,
        *,
        index: str,
        id: str,  # noqa: A002
        doc: dict,
        refresh: bool | str | None = None,
        if_seq_no: int | None = None,
        if_primary_term: int | None = None,
        retry_on_conflict: int | None = None,
    ) -> Response:
        path = document_path(index, id).replace("/_doc/", "/_update/", 1)
        params = {
            "refresh": refresh,
            "if_seq_no": if_seq_no,
            "if_primary_term": if_primary_term,
            "retry_on_conflict": retry_on_conflict,
        }
        return await self.request("POST", path, params, {"doc": doc})

    async def delete(
        self,
        *,
        index: str,
        id: str,  # noqa: A002
        refresh: bool | str | None = None,
        if_seq_no: int | None = None,
        if_primary_term: int | None = None,
    ) -> Response:
        params = {"refresh": refresh, "if_seq_no": if_seq_no, "if_primary_term": if_primary_term}
        return await self.request("DELETE", document_path(index, id), params)


class _Namespace:
    def __init__(self, client: ESClient):
        self.client = client


class Indices(_Namespace):
    async def create(
        self,
        *,
        index: str,
        mappings: dict | None = None,
        settings: dict | None = None,
        aliases: dict | None = None,
    ) -> Response:
        body = _given({"mappings": mappings, "settings": settings, "aliases": aliases})
        return await self.client.request("PUT", f"/{names(index)}", None, body)

    async def exists(self, *, index: str) -> bool:
        found = await self.client.options(ignore_status=404).request("HEAD", f"/{names(index)}")
        return found.status == 200

    async def delete(self, *, index: str) -> Response:
        return await self.client.request("DELETE", f"/{names(index)}")

    async def refresh(self, *, index: str) -> Response:
        return await self.client.request("POST", f"/{names(index)}/_refresh")

    async def get_mapping(self, *, index: str) -> Response:
        return await self.client.request("GET", f"/{names(index)}/_mapping")

    async def put_mapping(self, *, index: str, properties: dict) -> Response:
        body = {"properties": properties}
        return await self.client.request("PUT", f"/{names(index)}/_mapping", None, body)

    async def get_field_mapping(self, *, index: str, fields: str) -> Response:
        return await self.client.request("GET", f"/{names(index)}/_mapping/field/{names(fields)}")

    async def resolve_index(self, *, name: str, expand_wildcards: str | None = None) -> Response:
        params = {"expand_wildcards": expand_wildcards}
        return await self.client.request("GET", f"/_resolve/index/{names(name)}", params)


class Ingest(_Namespace):
    async def get_pipeline(self, *, id: str, summary: bool | None = None) -> Response:  # noqa: A002
        return await self.client.request(
            "GET", f"/_ingest/pipeline/{names(id)}", {"summary": summary}
        )


class Nodes(_Namespace):
    async def info(self, *, node_id: str = "_all", filter_path: str | None = None) -> Response:
        path = f"/_nodes/{names(node_id)}"
        return await self.client.request("GET", path, {"filter_path": filter_path})


class Security(_Namespace):
    async def create_api_key(
        self,
        *,
        name: str,
        expiration: str | None = None,
        role_descriptors: dict | None = None,
        metadata: dict | None = None,
    ) -> Response:
        body = _given(
            {
                "name": name,
                "expiration": expiration,
                "role_descriptors": role_descriptors,
                "metadata": metadata,
            }
        )
        return await self.client.request("POST", "/_security/api_key", None, body)


def create_client(settings: ElasticsearchSettings) -> ESClient:
    basic_auth = None
    if not settings.api_key and settings.username and settings.password:
        basic_auth = (settings.username, settings.password.get_secret_value())
    transport = Transport(
        settings.hosts,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        basic_auth=basic_auth,
        request_timeout=settings.request_timeout,
        verify_certs=settings.verify_certs,
        ca_certs=settings.ca_certs,
    )
    return ESClient(transport, max_retries=3, retry_on_timeout=True)


async def check_reachable(es: ESClient, hosts: list[str]) -> str:
    """The cluster's version; raise ConnectionError with the hosts named when it does not answer."""
    try:
        nodes = await es.nodes.info(node_id="_local", filter_path="nodes.*.version")
    except ESConnectionError:
        raise ConnectionError(
            f"Elasticsearch does not answer at {', '.join(hosts)} "
            "(start it with `make stack`, or set ELASTICSEARCH_URL)"
        ) from None
    return next(iter(nodes["nodes"].values()))["version"]
