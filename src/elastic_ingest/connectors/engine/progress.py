"""A job's live counters (read by its heartbeat) and what they become on the job document and
in the run's report."""

from __future__ import annotations

from dataclasses import dataclass, field

from elastic_ingest.connectors.es.bulk import BulkStats

MIB = 1024 * 1024


@dataclass
class SyncProgress:
    """Live counters of one job, read by its heartbeat while documents stream. Write outcomes
    live in `writes`, which the job's bulk writers update directly."""

    seen: int = 0
    skipped: int = 0
    fetched: int = 0
    not_fetched: int = 0
    volume: int = 0
    filtered: dict[str, int] = field(default_factory=dict)  # basic rule id -> documents excluded
    writes: BulkStats = field(default_factory=BulkStats)
    expected: int = 0  # documents the listing will likely hold (what the index held), 0: unknown

    @property
    def created(self) -> int:
        return self.writes.created

    @property
    def updated(self) -> int:
        return self.writes.updated

    @property
    def indexed(self) -> int:
        return self.writes.created + self.writes.updated

    @property
    def deleted(self) -> int:
        return self.writes.deleted

    @property
    def failed(self) -> int:
        return self.writes.failed

    def job_counters(self) -> dict[str, int]:
        """The counters as the protocol's job document holds them (volume in MiB)."""
        return {
            "indexed_document_count": self.indexed,
            "indexed_document_volume": round(self.volume / MIB),
            "deleted_document_count": self.deleted,
            "total_document_count": self.seen,
        }

    def heartbeat_fields(self) -> dict:
        """What a running job's heartbeat writes: the counters, and how many documents the
        listing will likely hold (a progress bar's 100%, when known)."""
        fields: dict = self.job_counters()
        if self.expected:
            fields["metadata"] = {"expected_document_count": self.expected}
        return fields

    def add(self, counts: dict) -> None:
        """Add the counts of a part synced by another process (its `report()`)."""
        self.seen += counts.get("seen", 0)
        self.skipped += counts.get("skipped", 0)
        self.fetched += counts.get("fetched", 0)
        self.not_fetched += counts.get("not_fetched", 0)
        self.volume += counts.get("volume", 0)
        for rule, excluded in (counts.get("filtered_by_rule") or {}).items():
            self.filtered[rule] = self.filtered.get(rule, 0) + excluded
        self.writes.created += counts.get("created", 0)
        self.writes.updated += counts.get("updated", 0)
        self.writes.deleted += counts.get("deleted", 0)  # an excluded document's older version
        self.writes.failed += counts.get("failed", 0)

    def report(self) -> dict:
        """Every count, plus the first rejected documents, for the run's report."""
        return {
            "seen": self.seen,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "fetched": self.fetched,
            "not_fetched": self.not_fetched,
            "deleted": self.deleted,
            "filtered": sum(self.filtered.values()),
            "filtered_by_rule": dict(self.filtered),
            "failed": self.failed,
            "volume": self.volume,
            "failures": [failure.summary() for failure in self.writes.failures[:100]],
        }
