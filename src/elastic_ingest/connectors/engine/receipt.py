"""The parity receipt of a full sync: an order-independent digest of the (id, version) pairs the
source listed and of the pairs the index holds once the sync ended. Equal digests mean the index
holds exactly what the source listed, in those versions; when they differ, the receipt names
the first indexed ids the listing did not produce in that version."""

from __future__ import annotations

import bisect
from array import array
from contextlib import aclosing
from dataclasses import asdict, dataclass, field

from elastic_ingest.connectors.engine.snapshot import UINT64, hash64
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.scan import stream_index_versions

MASK = 2**64 - 1
SAMPLE = 10


def pair_hash(document_id: str, version: object) -> int:
    return hash64(f"{document_id}\x00{'' if version is None else version}")


class ListedPairs:
    """What a full listing produced: the digest of its pairs (a sum modulo 2^64, so parts read
    in any order, in any process, add up) and their hashes (8 bytes each) to name differences.
    A part read in another process brings its digest only (`add_part`)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.hashes = array(UINT64)
        self.all_here = True

    def add(self, document_id: str, version: object) -> None:
        pair = pair_hash(document_id, version)
        self.count += 1
        self.total = (self.total + pair) & MASK
        self.hashes.append(pair)

    def summary(self) -> dict:
        """What a part read elsewhere hands to the job's run."""
        return {"count": self.count, "digest": f"{self.total:016x}"}

    def add_part(self, summary: dict) -> None:
        self.count += summary["count"]
        self.total = (self.total + int(summary["digest"], 16)) & MASK
        self.all_here = False


@dataclass
class Receipt:
    """Both sides' count and digest; `differing`: the first indexed ids whose pair the listing
    did not produce (empty when the digests match, or when parts were read elsewhere)."""

    source_count: int
    source_digest: str
    index_count: int
    index_digest: str
    differing: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return (self.source_count, self.source_digest) == (self.index_count, self.index_digest)

    def warning(self) -> str | None:
        if self.matches:
            return None
        named = ""
        if self.differing:
            named = f"; first indexed ids that differ: {', '.join(self.differing)}"
        return (
            f"the index does not hold exactly what the source listed (source {self.source_count:,} "
            f"documents, index {self.index_count:,}){named}. Documents rejected by "
            "Elasticsearch, or written to the index by someone else during the sync, also "
            "cause this; `elastic-ingest connector verify` lists every difference"
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "matches": self.matches, "warning": self.warning()}


async def take_receipt(es: ESClient, index: str, listed: ListedPairs) -> Receipt:
    """Scan the index (ids and versions) and compare its digest with the listing's; only when
    they differ, scan again to name the first differing ids."""
    total = count = 0
    async for document_id, version in stream_index_versions(es, index):
        total = (total + pair_hash(document_id, version)) & MASK
        count += 1
    receipt = Receipt(listed.count, f"{listed.total:016x}", count, f"{total:016x}")
    if not receipt.matches and listed.all_here:
        receipt.differing = await _differing_ids(es, index, sorted(listed.hashes))
    return receipt


async def _differing_ids(es: ESClient, index: str, listed: list[int]) -> list[str]:
    """The first indexed ids whose (id, version) pair is not among the listed ones (sorted)."""
    differing: list[str] = []
    async with aclosing(stream_index_versions(es, index)) as indexed:  # closes its point in time
        async for document_id, version in indexed:
            pair = pair_hash(document_id, version)
            at = bisect.bisect_left(listed, pair)
            if at == len(listed) or listed[at] != pair:
                differing.append(document_id)
                if len(differing) == SAMPLE:
                    break
    return differing
