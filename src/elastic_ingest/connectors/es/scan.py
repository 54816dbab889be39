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
    time (consistent view). The index is read in `slices` at once: most of a scan is
    Elasticsearch loading ids, which one request does on one thread (measured on 100k
    documents: 2.1 s in one slice, 1.2 s in two)."""
    try:
        pit = await es.open_point_in_time(index=index, keep_alive="2m")
    except NotFoundError:
        return
    pit_id = pit["id"]
    pages: asyncio.Queue[list | Exception | None] = asyncio.Queue(maxsize=2 * slices)

    async def read_slice(number: int) -> None:
        nonlocal pit_id
        search_after = None
        try:
            while True:
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
                hits = response.get("hits", {}).get("hits", [])  # filter_path drops empty keys
                await pages.put(hits)
                if len(hits) < page_size:
                    break
                search_after = hits[-1]["sort"]
        except Exception as error:  # handed to the reader of the pages, who raises it
            await pages.put(error)
            return
        await pages.put(None)

    readers = [asyncio.create_task(read_slice(number)) for number in range(slices)]
    try:
        ended = 0
        while ended < slices:
            page = await pages.get()
            if page is None:
                ended += 1
                continue
            if isinstance(page, Exception):
                raise page
            for hit in page:
                timestamp = hit.get("_source", {}).get("_timestamp")
                yield hit["_id"], None if timestamp is None else str(timestamp)
    finally:
        for reader in readers:  # the caller stopped early, or a slice failed
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
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
