"""HTTP to Elasticsearch: JSON in and out (orjson), API keys or basic auth, retries over the
configured hosts, and errors a caller can tell apart by type.

Our own, over httpx (which Prefect already loads), rather than elasticsearch-py: that client
loads both its sync and async APIs, requests, urllib3 and aiohttp, ~20 MB of every process's
RSS and ~0.3 s of its start-up (issue 15), for the ~20 endpoints the service calls.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import ssl
import time
import warnings
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

RETRY_ON_STATUS = frozenset({429, 502, 503, 504})
DEAD_HOST_SECONDS = 30.0
JSON = "application/json"
NDJSON = "application/x-ndjson"


class ElasticsearchWarning(Warning):
    """A deprecation or other warning Elasticsearch sent in a `Warning` header."""


class ESConnectionError(ConnectionError):
    """No answer from Elasticsearch: refused, reset, timed out, unresolvable."""


class ConnectionTimeout(ESConnectionError):
    """Elasticsearch did not answer within the request timeout."""


class ApiError(Exception):
    """Elasticsearch answered with an error status; `info` is its decoded body."""

    def __init__(self, status: int, info: Any):
        self.status = status
        self.info = info
        cause = info.get("error") if isinstance(info, dict) else None
        self.error = (cause.get("type") if isinstance(cause, dict) else cause) or str(status)
        reason = cause.get("reason") if isinstance(cause, dict) else None
        self.message = reason or (info if isinstance(info, str) else str(self.error))
        super().__init__(f"{status} {self.error}: {self.message}")


class BadRequestError(ApiError): ...


class AuthenticationException(ApiError): ...


class AuthorizationException(ApiError): ...


class NotFoundError(ApiError): ...


class ConflictError(ApiError): ...


ERRORS = {
    400: BadRequestError,
    401: AuthenticationException,
    403: AuthorizationException,
    404: NotFoundError,
    409: ConflictError,
}


class Response(dict):
    """A decoded JSON object answer, and the HTTP status it came with."""

    def __init__(self, status: int, body: Any):
        super().__init__(body if isinstance(body, dict) else {})
        self.status = status


def backoff(attempt: int) -> float:
    """Seconds before retry `attempt`: doubling from 0.1 s, with jitter so that many clients
    throttled at once do not all come back at the same instant."""
    return 0.1 * 2**attempt * random.uniform(0.5, 1.5)


def query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(query_value(item) for item in value)
    return str(value)


def names(value: str | Iterable[str]) -> str:
    """Index names (a list, or one string that may hold commas and wildcards) for a URL path."""
    joined = value if isinstance(value, str) else ",".join(value)
    return quote(joined, safe=",*")


def shown(host: str) -> str:
    """A host as an error may name it: without any `user:password@` it was configured with."""
    parts = urlsplit(host)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def document_path(index: str, document_id: str) -> str:
    """`/<index>/_doc/<id>` with the id escaped: an id may hold any character, `/` too."""
    return f"/{names(index)}/_doc/{quote(document_id, safe='')}"


class Transport:
    """One pool of connections to the cluster's hosts, shared by every `options()` copy."""

    def __init__(
        self,
        hosts: list[str],
        *,
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        request_timeout: float = 30.0,
        verify_certs: bool = True,
        ca_certs: str | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ):
        """`http_transport` replaces the network (tests pass an `httpx.MockTransport`)."""
        self.hosts = [host.rstrip("/") for host in hosts]
        self._next_host = itertools.cycle(range(len(self.hosts)))
        self._dead_until: dict[str, float] = {}
        headers = {"accept": JSON}
        if api_key:
            headers["authorization"] = f"ApiKey {api_key}"
        elif basic_auth:
            pair = base64.b64encode(":".join(basic_auth).encode()).decode()
            headers["authorization"] = f"Basic {pair}"
        verify: ssl.SSLContext | bool = False  # plain http: no CA bundle to load (~25 ms, ~1 MB)
        if any(host.startswith("https://") for host in self.hosts):
            verify = verify_certs
            if verify_certs and ca_certs:
                verify = ssl.create_default_context(cafile=ca_certs)
        self.http = httpx.AsyncClient(
            headers=headers,
            timeout=request_timeout,
            verify=verify,
            trust_env=False,  # as elasticsearch-py: no proxy from the environment
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            transport=http_transport,
        )

    async def perform(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        ndjson: bytes | None = None,
        max_retries: int = 3,
        retry_on_timeout: bool = True,
        ignore_status: Iterable[int] = (),
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send one request (to the next host on connection trouble); the status and decoded
        body. Raises the ApiError subclass of an error status unless it is ignored."""
        query = {k: query_value(v) for k, v in (params or {}).items() if v is not None}
        headers, content = dict(headers or {}), None
        if ndjson is not None:
            headers["content-type"], content = NDJSON, ndjson
        elif body is not None:
            headers["content-type"] = JSON
            content = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        # A write conditional on what it read (if_seq_no, op_type=create) that may have landed
        # is never sent again blind: the replay would fail on the first one's own change.
        conditional = "if_seq_no" in query or query.get("op_type") == "create"
        for attempt in itertools.count():
            host = self._pick_host()
            try:
                response = await self.http.request(
                    method, host + path, params=query, headers=headers, content=content
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:  # never reached it
                self._set_aside(host)
                if attempt < max_retries:
                    await asyncio.sleep(backoff(attempt))
                    continue
                raise ESConnectionError(
                    f"cannot reach Elasticsearch at {shown(host)}: {error}"
                ) from None
            except httpx.TimeoutException:
                if retry_on_timeout and not conditional and attempt < max_retries:
                    continue
                raise ConnectionTimeout(f"{method} {shown(host)}{path}: timed out") from None
            except httpx.TransportError as error:  # cut off mid-answer: it may have landed
                if not conditional and attempt < max_retries:
                    await asyncio.sleep(backoff(attempt))
                    continue
                raise ESConnectionError(
                    f"cannot reach Elasticsearch at {shown(host)}: {error}"
                ) from None
            if response.status_code in RETRY_ON_STATUS and attempt < max_retries:
                await asyncio.sleep(backoff(attempt))
                continue
            break
        _warn(response.headers.get_list("warning"))
        status = response.status_code
        decoded = _decode(response)
        if status >= 400 and status not in ignore_status:
            raise ERRORS.get(status, ApiError)(status, decoded)
        return status, decoded

    def _pick_host(self) -> str:
        """The next host in turn, skipping those set aside (all set aside: the next anyway)."""
        now = time.monotonic()
        for _ in range(len(self.hosts)):
            host = self.hosts[next(self._next_host)]
            if self._dead_until.get(host, 0.0) <= now:
                return host
        return host

    def _set_aside(self, host: str) -> None:
        """A host that refused a connection is skipped for DEAD_HOST_SECONDS, so one node down
        costs one failed connection, not one per request."""
        if len(self.hosts) > 1:
            self._dead_until[host] = time.monotonic() + DEAD_HOST_SECONDS

    async def close(self) -> None:
        await self.http.aclose()


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    if response.headers.get("content-type", "").startswith(JSON):
        return orjson.loads(response.content)
    return response.text


def _warn(headers: list[str]) -> None:
    """Elasticsearch's `Warning` headers as Python warnings (a caller may record them)."""
    for header in headers:
        text = header.split('"')[1] if header.count('"') >= 2 else header
        warnings.warn(text, ElasticsearchWarning, stacklevel=4)
