"""Bulk items Elasticsearch refused as busy (429, or a gateway's 502/503/504) are sent again
after a growing pause: the protocol's own bulk writes and the failures index share this loop.
(Content writes have their own, in bulk.py: they keep counts and fences on top.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from elastic_ingest.connectors.es.errors import RETRIABLE_STATUS

THROTTLED_RETRIES = 4
THROTTLED_PAUSE_SECONDS = 0.5
Item = TypeVar("Item")


async def send_until_not_busy(
    items: Sequence[Item], send: Callable[[Sequence[Item]], Awaitable[dict]]
) -> list[dict]:
    """`send(items)` (one bulk request, its response), then again with only the items refused
    as busy, up to THROTTLED_RETRIES times; each item's last result (its `status`, `_id`,
    `error`), in no particular order. Deciding what a result means is the caller's."""
    results: list[dict] = []
    pending = items
    for attempt in range(THROTTLED_RETRIES + 1):
        response = await send(pending)
        busy = []
        for item, answer in zip(pending, response["items"], strict=True):
            result = next(iter(answer.values()))
            if result.get("status") in RETRIABLE_STATUS and attempt < THROTTLED_RETRIES:
                busy.append(item)
            else:
                results.append(result)
        if not busy:
            break
        pending = busy
        await asyncio.sleep(THROTTLED_PAUSE_SECONDS * 2**attempt)
    return results
