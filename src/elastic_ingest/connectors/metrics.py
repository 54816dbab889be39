"""The service's metrics in Prometheus/OpenMetrics form (README "Metrics"), served by the poll
loop. Each pass reads them from the protocol indices, so they hold for every sync wherever it
ran (in this process or on any worker): what finished syncs read, wrote, deleted and rejected,
how long they took and how they ended, how fresh each connector is, what waits or runs now."""

from __future__ import annotations

from collections import Counter as Tally
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from elastic_ingest.connectors.protocol import ConnectorIndex, JobIndex, clock
from elastic_ingest.connectors.protocol.job import Job
from elastic_ingest.connectors.protocol.job_stats import (
    active_counts,
    finished_since,
    last_completed,
)

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)


class ServiceMetrics:
    """The metrics of one service process, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        by_connector = ["connector", "job_type"]
        self.documents = Counter(
            "elastic_ingest_documents",
            "Documents finished syncs read from the source, wrote, deleted or had rejected",
            [*by_connector, "outcome"],
            registry=self.registry,
        )
        self.syncs = Counter(
            "elastic_ingest_syncs",
            "Finished syncs, by connector, job type and final status",
            [*by_connector, "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "elastic_ingest_sync_duration_seconds",
            "Wall time of finished syncs, from claim to end",
            ["job_type", "status"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.bulk_retries = Counter(
            "elastic_ingest_bulk_retried_documents",
            "Documents finished syncs sent again after a throttled or failed bulk request",
            ["connector"],
            registry=self.registry,
        )
        self.freshness = Gauge(
            "elastic_ingest_last_success_age_seconds",
            "Seconds since the connector's newest completed full or incremental sync ended",
            ["connector"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "elastic_ingest_jobs",
            "Jobs waiting (pending, suspended) or running (in_progress, canceling) now",
            ["status", "job_type"],
            registry=self.registry,
        )
        self.connectors = Gauge(
            "elastic_ingest_connectors",
            "Connectors by status",
            ["status"],
            registry=self.registry,
        )
        self.passes = Counter(
            "elastic_ingest_poll_passes",
            "Poll passes, by result (ok, or failed: Elasticsearch or Prefect away, an error)",
            ["result"],
            registry=self.registry,
        )
        self._since = clock.now()  # jobs that ended before the service started are not counted
        self._counted: dict[str, datetime] = {}  # job id -> its end, while it ends at `_since`

    def serve(self, address: str) -> None:
        """Serve `/metrics` at HOST:PORT in a thread of this process."""
        host, _, port = address.rpartition(":")
        start_http_server(int(port), addr=host, registry=self.registry)

    def pass_ended(self, problem: str | None) -> None:
        self.passes.labels("failed" if problem else "ok").inc()

    async def observe(self, connectors: ConnectorIndex, jobs: JobIndex) -> None:
        """Read what changed since the last pass into the metrics: three searches and two
        aggregations, whatever the number of connectors."""
        every = await connectors.all()
        self.connectors.clear()
        for status, count in Tally(connector.status for connector in every).items():
            self.connectors.labels(str(status)).set(count)
        self.jobs.clear()
        for (status, job_type), count in (await active_counts(jobs)).items():
            self.jobs.labels(status, job_type).set(count)
        now = clock.now()
        for connector_id, ended in (await last_completed(jobs)).items():
            age = (now - clock.parse(ended)).total_seconds()
            self.freshness.labels(connector_id).set(max(0.0, age))
        for job in await finished_since(jobs, clock.iso(self._since)):
            ended = clock.parse(job.doc.get("completed_at")) or self._since
            if job.id not in self._counted:
                self._count(job)
                self._counted[job.id] = ended
            self._since = max(self._since, ended)
        # jobs ending at the same instant as the newest are asked for again next pass
        self._counted = {i: end for i, end in self._counted.items() if end >= self._since}

    def _count(self, job: Job) -> None:
        d, metadata = job.doc, job.doc.get("metadata") or {}
        connector, kind = job.connector_id, str(d.get("job_type") or "full")
        self.syncs.labels(connector, kind, str(d.get("status"))).inc()
        outcomes = {
            "read": d.get("total_document_count"),
            "written": d.get("indexed_document_count"),
            "deleted": d.get("deleted_document_count"),
            "rejected": metadata.get("rejected_document_count"),
        }
        for outcome, count in outcomes.items():
            self.documents.labels(connector, kind, outcome).inc(int(count or 0))
        self.bulk_retries.labels(connector).inc(int(metadata.get("retried_document_count") or 0))
        started, ended = clock.parse(d.get("started_at")), clock.parse(d.get("completed_at"))
        if started and ended:
            seconds = max(0.0, (ended - started).total_seconds())
            self.duration.labels(kind, str(d.get("status"))).observe(seconds)
