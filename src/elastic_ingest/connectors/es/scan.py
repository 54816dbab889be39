"""Stream what an index holds (id and `_timestamp`) page by page, never all at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.transport import NotFoundError

# 10,000 hits decode to ~33 MB of Python objects (measured with tracemalloc); 2,000 cost a few
# more round trips of a few milliseconds each
PAGE_SIZE = 2_000
SLICES = 2
HIT_FIELDS = "pit_id,hits.hits._id,hits.hits._source._timestamp,hits.hits.sort"


async def stream_index_versions(
    es: ESClient, index: str, page_size: int = PAGE_SIZE, slices: int = SLICES
) -> AsyncIterator[tuple[str, str | None]]:
    """Yield (id, `_timestamp`) for every document, in no particular order, through a point in
    time (consistent view). The index is read in `slices` at once, one page asked for per
    slice: most of a scan is Elasticsearch loading ids, which one request does on one thread
    (100k documents: 2.3 s in one slice, 1.4 s in two), and at most `slices` pages are held."""
    try:
        pit = await es.open_point_in_time(index=index, keep_alive="2m")
    except NotFoundError:
        return
    pit_id = pit["id"]

    async def page(number: int, search_after: list | None) -> list[dict]:
        nonlocal pit_id
        response = await es.search(
            pit={"id": pit_id, "keep_alive": "2m"},
            slice={"id": number, "max": slices} if slices > 1 else None,
            size=page_size,
            sort=["_shard_doc"],
            search_after=search_after,
            source_includes=["_timestamp"],
            track_total_hits=False,
            filter_path=HIT_FIELDS,  # not `_index`, `_score`, `_ignored` on every hit
        )
        pit_id = response.get("pit_id", pit_id)
        return response.get("hits", {}).get("hits", [])  # filter_path drops empty keys

    asked = {asyncio.ensure_future(page(number, None)): number for number in range(slices)}
    try:
        while asked:
            done, _ = await asyncio.wait(asked, return_when=asyncio.FIRST_COMPLETED)
            for answer in done:
                number = asked.pop(answer)
                hits = answer.result()
                for hit in hits:
                    timestamp = hit.get("_source", {}).get("_timestamp")
                    yield hit["_id"], None if timestamp is None else str(timestamp)
                if len(hits) == page_size:  # this slice has more
                    asked[asyncio.ensure_future(page(number, hits[-1]["sort"]))] = number
    finally:
        for answer in asked:  # the caller stopped early, or a slice failed
            answer.cancel()
        await asyncio.gather(*asked, return_exceptions=True)
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
