"""Sync-job documents: create, claim exclusively, heartbeat, finish; the state machine enforced.
Longer than a module here should be: every write to a job document is a compare-and-set here,
so that the state machine has one home."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

from elastic_ingest.connectors.access_control import acl_index
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.documents import DocumentIndex, VersionConflict, VersionedDocument
from elastic_ingest.connectors.protocol import clock
from elastic_ingest.connectors.protocol.connector import DRIFT_FIELD, Connector, ConnectorIndex
from elastic_ingest.connectors.protocol.secrets import redacted_configuration
from elastic_ingest.connectors.protocol.states import (
    ACTIVE,
    CONTENT_JOB_TYPES,
    COUNTERS,
    FINAL,
    TRANSITIONS,
    ConnectorStatus,
    IllegalTransition,
    JobStatus,
    JobType,
    TriggerMethod,
)
from elastic_ingest.connectors.protocol.states import JobStatus as S
from elastic_ingest.connectors.sync_rules import domain_filter

logger = logging.getLogger(__name__)


def this_host() -> str:
    """The name jobs record as `worker_hostname`: $ELASTIC_INGEST_HOSTNAME (a pod's or a
    container's name, say) or the host's."""
    return os.environ.get("ELASTIC_INGEST_HOSTNAME") or socket.gethostname()


class JobLost(RuntimeError):  # noqa: N818 - an outcome: someone else decided this job's fate
    """The job is no longer this worker's (failed as stale, re-claimed, deleted): stop writing."""


class Job(VersionedDocument):
    """A sync-job document with the sequence numbers needed to update it safely (CAS)."""

    @property
    def status(self) -> JobStatus:
        return JobStatus(self.doc["status"])

    @property
    def connector_id(self) -> str:
        return self.doc["connector"]["id"]

    @property
    def service_type(self) -> str:
        return self.doc["connector"].get("service_type") or ""

    @property
    def index_name(self) -> str:
        return self.doc["connector"].get("index_name") or ""

    @property
    def job_type(self) -> str:
        return self.doc.get("job_type") or JobType.FULL.value

    @property
    def claim(self) -> str | None:
        """Who holds the job now: a fresh id per claim, so a re-claim fences the old worker."""
        return (self.doc.get("metadata") or {}).get("claim")

    def problems(self) -> list[str]:
        """What in this document the service cannot use, each naming its field (none: sound)."""
        found = []
        status = self.doc.get("status")
        if not isinstance(status, str) or status not in set(JobStatus):
            found.append(f"status: unknown value {status!r}")
        connector = self.doc.get("connector")
        if not isinstance(connector, dict):
            found.append("connector: missing (expected the connector snapshot)")
        elif not isinstance(connector.get("id"), str) or not connector.get("id"):
            found.append("connector.id: missing")
        if not isinstance(self.doc.get("job_type", ""), str | None):
            found.append(f"job_type: expected a string, got {self.doc.get('job_type')!r}")
        return found

    @property
    def generation(self) -> int | None:
        """The claim's place in the connector's history; grows with every claim (fencing)."""
        return (self.doc.get("metadata") or {}).get("generation")


def status_fields(job_type: str) -> tuple[str, str]:
    """The connector fields mirroring a job of this type: (status field, error field)."""
    if job_type == JobType.ACCESS_CONTROL:
        return "last_access_control_sync_status", "last_access_control_sync_error"
    if job_type == JobType.DELETION:
        return "last_deletion_sync_status", "last_deletion_sync_error"
    return "last_sync_status", "last_sync_error"


def new_job_document(
    connector: Connector, job_type: str, trigger_method: str, sensitive: frozenset[str]
) -> dict[str, Any]:
    doc = connector.doc
    return {
        "connector": {
            "id": connector.id,
            "service_type": connector.service_type,
            # as Kibana writes it: an access-control job names the identities index
            "index_name": acl_index(connector.index_name)
            if job_type == JobType.ACCESS_CONTROL
            else connector.index_name,
            "language": doc.get("language"),
            "configuration": redacted_configuration(connector.configuration, sensitive),
            # As Elastic's service does: the active rules only (a draft never reaches a job).
            "filtering": domain_filter(doc.get("filtering"), "active")
            or {"rules": [], "advanced_snippet": {}},
            "pipeline": doc.get("pipeline"),
            "sync_cursor": doc.get("sync_cursor"),
        },
        "job_type": job_type,
        "trigger_method": trigger_method,
        "status": S.PENDING.value,
        "error": None,
        "created_at": clock.iso(),
        "started_at": None,
        "last_seen": None,
        "completed_at": None,
        "cancelation_requested_at": None,
        "canceled_at": None,
        "worker_hostname": None,
        **dict.fromkeys(COUNTERS, 0),
        "metadata": {},
    }


class JobIndex:
    """The sync-jobs index; every status change goes through `transition` (CAS + state machine).
    `sensitive(service_type)` names the configuration fields a job must never hold in clear."""

    def __init__(self, es: ESClient, index: str, connectors: ConnectorIndex, sensitive=None):
        self.documents = DocumentIndex(es, index)
        self.index = index
        self.connectors = connectors
        self.sensitive = sensitive or (lambda service_type: frozenset())

    async def create(
        self,
        connector: Connector,
        job_type: str = JobType.FULL,
        trigger_method: str = TriggerMethod.ON_DEMAND,
        job_id: str | None = None,
        metadata: dict | None = None,
    ) -> str | None:
        """Create a pending job; with `job_id`, a second create of the same id is a no-op (None).
        `metadata` starts the job's metadata (a release job names the job it releases)."""
        secrets = self.sensitive(connector.service_type)
        document = new_job_document(connector, str(job_type), str(trigger_method), secrets)
        document["metadata"].update(metadata or {})
        return await self.documents.create(document, job_id)

    async def get(self, job_id: str) -> Job | None:
        hit = await self.documents.get(job_id)
        return Job.from_hit(hit) if hit else None

    async def search(self, query: dict, size: int = 100, sort=None) -> list[Job]:
        hits = await self.documents.search(query, size, sort or [{"created_at": "asc"}])
        return [Job.from_hit(hit) for hit in hits]

    async def for_connector(self, connector_id: str, size: int = 20) -> list[Job]:
        return await self.search(
            {"term": {"connector.id": connector_id}}, size, [{"created_at": "desc"}]
        )

    async def running_for(self, connector_id: str) -> list[Job]:
        """The connector's jobs a worker is running (or should be)."""
        query = {
            "bool": {
                "filter": [
                    {"term": {"connector.id": connector_id}},
                    {"terms": {"status": [s.value for s in ACTIVE]}},
                ]
            }
        }
        return [Job.from_hit(hit) async for hit in self.documents.scan(query)]

    async def delete_for_connector(self, connector_id: str) -> int:
        """Delete every job of a (deleted) connector; the count deleted."""
        return await self.documents.delete_matching({"term": {"connector.id": connector_id}})

    async def active(self) -> list[Job]:
        """Every job a worker is running (or should be)."""
        query = {"terms": {"status": [s.value for s in ACTIVE]}}
        return [Job.from_hit(hit) async for hit in self.documents.scan(query)]

    async def claimable(self, service_types: list[str] | None = None, size: int = 100) -> list[Job]:
        """Pending and suspended jobs, oldest first."""
        filters: list[dict] = [{"terms": {"status": [S.PENDING.value, S.SUSPENDED.value]}}]
        if service_types:
            filters.append({"terms": {"connector.service_type": service_types}})
        return await self.search({"bool": {"filter": filters}}, size)

    async def transition(
        self,
        job: Job | str,
        status: JobStatus,
        fields: dict[str, Any] | None = None,
        *,
        retry_conflicts: bool = True,
    ) -> Job | None:
        """Move a job to `status` by CAS. Raise IllegalTransition if the state machine forbids it;
        return None if it changed underneath us and `retry_conflicts` is False."""
        current = await self.get(job) if isinstance(job, str) else job
        for _ in range(10):
            if current is None:
                raise IllegalTransition(f"job {job if isinstance(job, str) else job.id} not found")
            if status not in TRANSITIONS[current.status]:
                raise IllegalTransition(
                    f"job {current.id}: {current.status.value} -> {status.value} is not allowed"
                )
            update = {**(fields or {}), "status": status.value}
            try:
                return await self.documents.update_if_unchanged(current, update)
            except VersionConflict:
                if not retry_conflicts:
                    return None
                current = await self.get(current.id)
        raise VersionConflict(f"job {current.id}: too many concurrent updates")  # pragma: no cover

    async def claim(self, job: Job, worker: str | None = None) -> Job | None:
        """Take a pending/suspended job for this worker, exclusively; None if someone else did,
        or if its connector is already running a job of any kind. The claim gets a fresh id and
        a generation above every earlier claim of the connector (see `Job.claim`)."""
        connector = await self.connectors.get(job.connector_id)
        if connector is None:
            await self.transition(
                job, S.CANCELED, {"error": "connector was deleted", "canceled_at": clock.iso()}
            )
            return None
        if any(connector.doc.get(status_fields(kind)[0]) == S.IN_PROGRESS for kind in JobType):
            return None
        lock_field = status_fields(job.job_type)[0]
        previous = connector.doc.get(lock_field)
        generation = max(clock.microseconds(), int(connector.doc.get("sync_generation") or 0) + 1)
        locked = await self.connectors.update(
            connector,
            {
                lock_field: S.IN_PROGRESS.value,
                "sync_locked_at": clock.iso(),
                "sync_generation": generation,
            },
        )
        if locked is None:
            return None
        claimed = None
        if job.status in (S.PENDING, S.SUSPENDED):
            fields = {
                "started_at": clock.iso(),
                "last_seen": clock.iso(),
                "worker_hostname": worker or this_host(),
                "error": None,
                "metadata": {
                    "claim": uuid.uuid4().hex,
                    "generation": generation,
                    "worker_pid": os.getpid(),
                    # a suspended job claimed again: the run it had is not the one to come
                    "flow_run_id": None,
                    "flow_run_url": None,
                },
            }
            claimed = await self.transition(job, S.IN_PROGRESS, fields, retry_conflicts=False)
        if claimed is None:
            await self._release(locked, lock_field, previous, generation)
        return claimed

    async def _release(self, connector: Connector, field: str, previous, generation: int) -> None:
        """Give back a connector lock taken for a claim that failed (a heartbeat may have
        touched the connector meanwhile: re-read, and release only our own lock)."""
        for _ in range(10):
            if connector.doc.get("sync_generation") != generation:
                return
            if await self.connectors.update(connector, {field: previous}) is not None:
                return
            connector = await self.connectors.get(connector.id)
            if connector is None:
                return

    async def fail_malformed(self, job: Job, problems: list[str]) -> None:
        """End a job whose document cannot be run (its `problems()`), along legal edges where
        it has a status."""
        reason = f"malformed job document: {'; '.join(problems)}"
        fields = {"error": reason, "completed_at": clock.iso(), "last_seen": clock.iso()}
        try:
            if job.status in (S.PENDING, S.SUSPENDED):
                job = await self.transition(job, S.IN_PROGRESS, {"started_at": clock.iso()})
            await self.transition(job, S.ERROR, fields)
        except (ValueError, VersionConflict):  # no usable status: nothing to respect
            await self.documents.patch(job.id, {**fields, "status": S.ERROR.value})
        logger.warning("job %s ended error: %s", job.id, reason)

    async def check_owner(self, job_id: str, claim: str | None) -> Job:
        """The job as it is now, if it is still running under `claim`; JobLost otherwise."""
        job = await self.get(job_id)
        if job is None:
            raise JobLost(f"job {job_id} was deleted")
        return self.owned(job, claim)

    @staticmethod
    def owned(job: Job, claim: str | None) -> Job:
        """`job` itself if it is running under `claim`; JobLost otherwise."""
        if job.problems() or job.status not in ACTIVE or job.claim != claim:
            state = job.doc.get("status")
            raise JobLost(
                f"job {job.id} is {state}"
                + ("" if job.claim == claim else " under another claim")
                + "; this worker no longer owns it"
            )
        return job

    async def record_metadata(self, job: Job, metadata: dict[str, Any]) -> Job:
        """Add to the job's metadata while it is ours (where it runs: a flow run, its link), name
        the machine running it (the poller that claimed it may be another) and beat once: the
        sync has started, however long it waited for a worker."""
        claim = job.claim
        now = clock.iso()  # started_at is the claim; a run may have waited for a slot since
        fields = {
            "metadata": {**metadata, "sync_started_at": now},
            "worker_hostname": this_host(),
            "last_seen": now,
        }
        for _ in range(10):
            try:
                return await self.documents.update_if_unchanged(job, fields)
            except VersionConflict:
                job = await self.check_owner(job.id, claim)
        raise VersionConflict(f"job {job.id}: too many concurrent updates")

    async def heartbeat(self, job: Job, counters: dict) -> Job:
        """Refresh `last_seen` and the counters of a job this worker still owns (JobLost if not);
        the returned job shows a cancel request if any."""
        fields = {**counters, "last_seen": clock.iso()}
        claim = job.claim
        for _ in range(10):
            try:
                return await self.documents.update_if_unchanged(job, fields)
            except VersionConflict:
                job = await self.check_owner(job.id, claim)
        return job

    async def record_part_counts(self, job_id: str, run_id: str, counts: dict) -> None:
        """What the run of one part of a partitioned sync did, for the job's own run to add
        up (under `metadata.parts_done`, by run id)."""
        kept = {key: value for key, value in counts.items() if key != "failures"}
        await self.documents.patch(job_id, {"metadata": {"parts_done": {run_id: kept}}})

    async def part_counts(self, job_id: str, run_id: str) -> dict | None:
        job = await self.get(job_id)
        done = ((job.doc.get("metadata") or {}).get("parts_done") or {}) if job else {}
        return done.get(run_id)

    async def set_metadata(self, job_id: str, metadata: dict[str, Any]) -> None:
        """Record where the job runs (the Prefect flow run id and its UI link)."""
        await self.documents.patch(job_id, {"metadata": metadata})

    async def request_cancel(self, job_id: str) -> Job:
        """What a UI does: pending/suspended -> canceled now; running -> canceling."""
        job = await self.get(job_id)
        if job is None:
            raise IllegalTransition(f"job {job_id} not found")
        if job.status in (S.PENDING, S.SUSPENDED):
            stamp = {"canceled_at": clock.iso(), "cancelation_requested_at": clock.iso()}
            return await self.transition(job, S.CANCELED, stamp)
        return await self.transition(job, S.CANCELING, {"cancelation_requested_at": clock.iso()})

    async def finish(
        self,
        job: Job,
        status: JobStatus,
        counters: dict[str, int] | None = None,
        error: str | None = None,
        sync_cursor: dict | None = None,
        metadata: dict | None = None,
        mirror: bool = True,
    ) -> Job:
        """Write a job's final (or suspended) status, decided by the caller from `job` as just
        read, and mirror it onto the connector (unlocking it). Any concurrent change to the job
        raises VersionConflict: the caller decides again from a fresh read."""
        if job.status == S.IN_PROGRESS and status == S.CANCELED:  # the protocol's only path
            job = await self.documents.update_if_unchanged(
                job, {"status": S.CANCELING.value, "cancelation_requested_at": clock.iso()}
            )
        if status not in TRANSITIONS[job.status]:
            raise IllegalTransition(
                f"job {job.id}: {job.status.value} -> {status.value} is not allowed"
            )
        fields: dict[str, Any] = {
            **(counters or {}),
            "status": status.value,
            "error": error,
            "last_seen": clock.iso(),
        }
        if metadata:
            fields["metadata"] = metadata
        if status in FINAL:
            fields["completed_at"] = clock.iso()
        if status == S.CANCELED:
            fields["canceled_at"] = clock.iso()
        finished = await self.documents.update_if_unchanged(job, fields)
        if mirror:
            await self.mirror(finished, sync_cursor)
        return finished

    async def mirror(
        self, job: Job, sync_cursor: dict | None, drift_repaired: bool = False
    ) -> None:
        """Copy a job's outcome onto its connector (and unlock it); `drift_repaired`: a full
        sync read everything, so the drift a verify noted (`drift`) is gone."""
        status = job.status
        status_field, error_field = status_fields(job.job_type)
        fields: dict[str, Any] = {
            status_field: status.value,
            error_field: job.doc.get("error"),
            "sync_locked_at": None,
        }
        content = job.job_type in CONTENT_JOB_TYPES
        if status in FINAL and content:
            fields["last_synced"] = clock.iso()
            fields["last_indexed_document_count"] = job.doc.get("indexed_document_count", 0)
            fields["last_deleted_document_count"] = job.doc.get("deleted_document_count", 0)
        if status == S.COMPLETED:
            fields.update(status=ConnectorStatus.CONNECTED.value, error=None)
            if sync_cursor is not None and content:
                fields["sync_cursor"] = sync_cursor
            if drift_repaired:
                fields[DRIFT_FIELD] = None
        elif status == S.ERROR:
            fields.update(status=ConnectorStatus.ERROR.value, error=job.doc.get("error"))
        await self.connectors.patch(job.connector_id, fields)
