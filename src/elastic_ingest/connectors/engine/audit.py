"""What a full sync would change, found without changing anything: the source's listing (sync
rules applied, bodies fetched only where a version needs them) diffed against an index snapshot.
`connector verify` reports it as drift, `connector sync --dry-run` as the writes and deletes a
sync would make, and the `verify` flow on a schedule."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from elastic_ingest.connectors.engine.guard import stale_count, stale_sample
from elastic_ingest.connectors.engine.progress import SyncProgress
from elastic_ingest.connectors.engine.reconcile import FullListing
from elastic_ingest.connectors.engine.snapshot import IndexedVersions, hash64, snapshot_index
from elastic_ingest.connectors.engine.stream import CheckIn, SyncOptions, keep_going
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.source import BaseDataSource

SAMPLE = 10


@dataclass
class Found:
    """How many documents are in one kind of drift, and the first of their ids."""

    count: int = 0
    sample: list[str] = field(default_factory=list)

    def add(self, document_id: str) -> None:
        self.count += 1
        if len(self.sample) < SAMPLE:
            self.sample.append(document_id)


@dataclass
class Drift:
    """How an index differs from its source. `missing`: listed, not indexed; `stale`: indexed
    in another version; `extra`: indexed, not listed (or now excluded by a sync rule);
    `unreadable`: listed but the source could not read it, so it cannot be compared."""

    index: str
    indexed: int = 0
    listed: int = 0
    excluded: int = 0
    missing: Found = field(default_factory=Found)
    stale: Found = field(default_factory=Found)
    extra: Found = field(default_factory=Found)
    unreadable: Found = field(default_factory=Found)

    @property
    def equal(self) -> bool:
        """The index holds exactly what the source lists (an unreadable document leaves that
        unproven)."""
        return not (
            self.missing.count or self.stale.count or self.extra.count or self.unreadable.count
        )

    @property
    def writes(self) -> int:
        """What a full sync would write: the missing and the stale documents."""
        return self.missing.count + self.stale.count

    def as_dict(self) -> dict:
        return {**asdict(self), "equal": self.equal}


class DryWriter:
    """Stands where a sync's bulk writer would and records, against the index snapshot, what
    each write or delete would have changed; sends nothing."""

    def __init__(self, indexed: IndexedVersions, drift: Drift):
        self.indexed, self.drift = indexed, drift

    def _holds(self, document_id: str) -> bool:
        return self.indexed.position(hash64(document_id)) >= 0

    async def index(self, document_id: str, body: bytes) -> None:
        (self.drift.stale if self._holds(document_id) else self.drift.missing).add(document_id)

    async def delete(self, document_id: str) -> None:
        """A document a sync rule excludes once fetched: only drift if the index holds it."""
        if self._holds(document_id):
            self.drift.extra.add(document_id)

    def reject(self, document_id: str, reason: str) -> None:
        self.drift.unreadable.add(document_id)

    async def close(self) -> None:
        return None

    async def abort(self) -> None:
        return None


async def audit(
    es: ESClient,
    source: BaseDataSource,
    index: str,
    workdir: str,
    options: SyncOptions | None = None,
    check_in: CheckIn = keep_going,
) -> Drift:
    """List the whole source the way a full sync does and diff it against a snapshot of
    `index` (kept under `workdir`); nothing is written. When the index holds documents the
    listing lacks, the source first confirms its listing was complete (a read cut short must
    not be reported as documents gone)."""
    snapshot = await snapshot_index(es, index, workdir)
    source.context = source.context.but(index_holds=snapshot.count)  # as a sync's snapshot does
    drift = Drift(index=index, indexed=snapshot.count)
    listing = FullListing(snapshot)
    progress = SyncProgress()
    writer = DryWriter(listing.indexed, drift)
    await listing.read(source, source.get_docs(), writer, progress, check_in, options)
    listing.complete()
    drift.listed = progress.seen
    drift.excluded = sum(progress.filtered.values())
    unlisted = stale_count(snapshot)
    if unlisted:
        await source.confirm_complete(progress.seen)
        sample = stale_sample(snapshot, SAMPLE - len(drift.extra.sample))
        drift.extra.count += unlisted
        drift.extra.sample += sample
    return drift
