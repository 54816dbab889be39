"""Stream what an index holds (id and `_timestamp`) page by page, never all at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.transport import NotFoundError

# 10,000 hits decode to ~33 MB of Python objects (measured with tracemalloc); 2,000 cost a few
# more round trips of a few milliseconds each
PAGE_SIZE = 2_000
HIT_FIELDS = "pit_id,hits.hits._id,hits.hits._source._timestamp,hits.hits.sort"


async def stream_index_versions(
    es: ESClient, index: str, page_size: int = PAGE_SIZE
) -> AsyncIterator[tuple[str, str | None]]:
    """Yield (id, `_timestamp`) for every document, through a point in time (consistent view).
    The next page is asked for before this one is handed out, so Elasticsearch reads it while
    the caller works through this one."""
    try:
        pit = await es.open_point_in_time(index=index, keep_alive="2m")
    except NotFoundError:
        return
    pit_id = pit["id"]

    async def page(search_after: list | None) -> dict:
        return await es.search(
            pit={"id": pit_id, "keep_alive": "2m"},
            size=page_size,
            sort=["_shard_doc"],
            search_after=search_after,
            source_includes=["_timestamp"],
            track_total_hits=False,
            filter_path=HIT_FIELDS,  # not `_index`, `_score`, `_ignored` on every hit
        )

    asked = asyncio.ensure_future(page(None))
    try:
        while asked is not None:
            response = await asked
            asked = None
            pit_id = response.get("pit_id", pit_id)
            hits = response.get("hits", {}).get("hits", [])  # filter_path drops empty keys
            if len(hits) == page_size:
                asked = asyncio.ensure_future(page(hits[-1]["sort"]))
            for hit in hits:
                timestamp = hit.get("_source", {}).get("_timestamp")
                yield hit["_id"], None if timestamp is None else str(timestamp)
    finally:
        if asked is not None:  # the caller stopped early: the page asked for is not wanted
            asked.cancel()
            await asyncio.gather(asked, return_exceptions=True)
        await es.close_point_in_time(id=pit_id)


async def indexed_versions(es: ESClient, index: str, ids: list[str]) -> dict[str, str | None]:
    """`_timestamp` of each of these ids the index holds (absent ids are left out)."""
    if not ids:
        return {}
    try:
        response = await es.mget(index=index, ids=ids, source_includes=["_timestamp"])
    except NotFoundError:
        return {}
    versions = {}
    for hit in response["docs"]:
        if hit.get("found"):
            timestamp = hit.get("_source", {}).get("_timestamp")
            versions[hit["_id"]] = None if timestamp is None else str(timestamp)
    return versions
