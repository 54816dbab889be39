"""The one rule for "is this Elasticsearch error worth retrying?", shared by the bulk writers and
the retries of a sync's stages."""

from __future__ import annotations

import asyncio

from elastic_ingest.connectors.es.transport import ApiError, ConnectionTimeout, ESConnectionError

RETRIABLE_STATUS = frozenset({429, 502, 503, 504})


def is_transient(error: BaseException | None) -> bool:
    """Network trouble, a timeout, an overloaded cluster: yes. A mistake in data or config: no."""
    if isinstance(error, ESConnectionError | ConnectionTimeout | asyncio.TimeoutError):
        return True
    if isinstance(error, ConnectionError):  # the builtin: refused, reset
        return True
    return isinstance(error, ApiError) and error.status in RETRIABLE_STATUS


def credentials_problem(error: BaseException) -> str | None:
    """A refusal by Elasticsearch's security (401, 403), said as what to fix; None otherwise."""
    if not isinstance(error, ApiError) or error.status not in (401, 403):
        return None
    if error.status == 401:
        return (
            "Elasticsearch refused the service's credentials (401): check elasticsearch.api_key "
            "(or username/password) in the configuration"
        )
    reason = error.message if isinstance(error.message, str) else str(error)
    info = error.info if isinstance(error.info, dict) else {}
    reason = (info.get("error") or {}).get("reason") or reason
    return (
        f"Elasticsearch refused (403): {reason.splitlines()[0]} - the service's API key lacks a "
        'privilege (README "Security" lists what it needs)'
    )
