"""The one rule for "is this Elasticsearch error worth retrying?", shared by the bulk writer and
the retry condition of every task."""

from __future__ import annotations

import asyncio

from elasticsearch import ApiError, ConnectionTimeout
from elasticsearch import ConnectionError as ESConnectionError

RETRIABLE_STATUS = frozenset({429, 502, 503, 504})


def is_transient(error: BaseException | None) -> bool:
    """Network trouble, a timeout, an overloaded cluster: yes. A mistake in data or config: no."""
    if isinstance(error, ESConnectionError | ConnectionTimeout | asyncio.TimeoutError):
        return True
    if isinstance(error, ConnectionError):  # the builtin: refused, reset
        return True
    return isinstance(error, ApiError) and error.meta.status in RETRIABLE_STATUS
