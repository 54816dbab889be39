"""Sync-job documents: create, claim exclusively, heartbeat, finish; the state machine enforced."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from connectors.protocol import clock
from connectors.protocol.connector import Connector, ConnectorIndex
from connectors.protocol.states import (
    COUNTERS,
    FINAL,
    TRANSITIONS,
    IllegalTransition,
    JobStatus,
)
from connectors.protocol.states import JobStatus as S
from connectors.protocol.versioned import VersionedDocument, update_if_unchanged

logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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


def _redacted_configuration(configuration: dict[str, Any]) -> dict[str, Any]:
    """The connector's configuration with sensitive values removed (jobs never hold secrets)."""
    redacted = {}
    for name, spec in configuration.items():
        if isinstance(spec, dict) and spec.get("sensitive"):
            spec = {**spec, "value": "********" if spec.get("value") else spec.get("value")}
        redacted[name] = spec
    return redacted


def new_job_document(connector: Connector, job_type: str, trigger_method: str) -> dict[str, Any]:
    doc = connector.doc
    return {
        "connector": {
            "id": connector.id,
            "service_type": connector.service_type,
            "index_name": connector.index_name,
            "language": doc.get("language"),
            "configuration": _redacted_configuration(connector.configuration),
            "filtering": doc.get("filtering"),
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
    """The sync-jobs index; every status change goes through `transition` (CAS + state machine)."""

    def __init__(self, es: AsyncElasticsearch, index: str, connectors: ConnectorIndex):
        self.es = es
        self.index = index
        self.connectors = connectors

    async def create(
        self,
        connector: Connector,
        job_type: str = "full",
        trigger_method: str = "on_demand",
        job_id: str | None = None,
    ) -> str | None:
        """Create a pending job; with `job_id`, a second create of the same id is a no-op (None)."""
        document = new_job_document(connector, job_type, trigger_method)
        try:
            response = await self.es.index(
                index=self.index,
                id=job_id,
                document=document,
                refresh=True,
                op_type="create" if job_id else "index",
            )
        except ConflictError:
            return None
        return response["_id"]

    async def get(self, job_id: str) -> Job | None:
        try:
            return Job.from_hit(await self.es.get(index=self.index, id=job_id))
        except NotFoundError:
            return None

    async def search(self, query: dict, size: int = 100, sort=None) -> list[Job]:
        response = await self.es.search(
            index=self.index,
            query=query,
            size=size,
            seq_no_primary_term=True,
            sort=sort or [{"created_at": "asc"}],
        )
        return [Job.from_hit(hit) for hit in response["hits"]["hits"]]

    async def for_connector(self, connector_id: str, size: int = 20) -> list[Job]:
        return await self.search(
            {"term": {"connector.id": connector_id}}, size, [{"created_at": "desc"}]
        )

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
                return await update_if_unchanged(self.es, self.index, current, update)
            except ConflictError:
                if not retry_conflicts:
                    return None
                current = await self.get(current.id)
        raise ConflictError("too many concurrent updates", None, None)  # pragma: no cover

    async def claim(self, job: Job, worker: str | None = None) -> Job | None:
        """Take a pending/suspended job for this worker, exclusively; None if someone else did,
        or if its connector is already syncing."""
        connector = await self.connectors.get(job.connector_id)
        if connector is None:
            await self.transition(
                job, S.CANCELED, {"error": "connector was deleted", "canceled_at": clock.iso()}
            )
            return None
        if connector.doc.get("last_sync_status") == S.IN_PROGRESS.value:
            return None
        previous = connector.doc.get("last_sync_status")
        locked = await self.connectors.update(
            connector, {"last_sync_status": S.IN_PROGRESS.value, "sync_locked_at": clock.iso()}
        )
        if locked is None:
            return None
        claimed = None
        if job.status in (S.PENDING, S.SUSPENDED):
            fields = {
                "started_at": clock.iso(),
                "last_seen": clock.iso(),
                "worker_hostname": worker or worker_name(),
                "error": None,
            }
            claimed = await self.transition(job, S.IN_PROGRESS, fields, retry_conflicts=False)
        if claimed is None:
            await self.connectors.update(locked, {"last_sync_status": previous})
        return claimed

    async def heartbeat(self, job: Job, counters: dict[str, int]) -> Job:
        """Refresh `last_seen` and the counters; the returned job shows a cancel request if any."""
        fields = {**counters, "last_seen": clock.iso()}
        for _ in range(10):
            try:
                return await update_if_unchanged(self.es, self.index, job, fields)
            except ConflictError:
                job = await self.get(job.id) or job
        return job

    async def set_metadata(self, job_id: str, metadata: dict[str, Any]) -> None:
        """Record where the job runs (the Prefect flow run id and its UI link)."""
        await self.es.update(
            index=self.index,
            id=job_id,
            doc={"metadata": metadata},
            refresh=True,
            retry_on_conflict=5,
        )

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
        job_id: str,
        status: JobStatus,
        counters: dict[str, int] | None = None,
        error: str | None = None,
        sync_cursor: dict | None = None,
    ) -> Job:
        """End a running job and mirror the outcome onto its connector (and unlock it)."""
        job = await self.get(job_id)
        if job is None:
            raise IllegalTransition(f"job {job_id} not found")
        if job.status == S.CANCELING and status in (S.COMPLETED, S.SUSPENDED):
            status = S.CANCELED  # the user asked to stop; honour it
        if job.status == S.IN_PROGRESS and status == S.CANCELED:
            job = await self.transition(job, S.CANCELING, {"cancelation_requested_at": clock.iso()})
        fields: dict[str, Any] = {**(counters or {}), "error": error, "last_seen": clock.iso()}
        if status in FINAL:
            fields["completed_at"] = clock.iso()
        if status == S.CANCELED:
            fields["canceled_at"] = clock.iso()
        finished = await self.transition(job, status, fields)
        await self._mirror(finished, sync_cursor)
        return finished

    async def _mirror(self, job: Job, sync_cursor: dict | None) -> None:
        status = job.status
        fields: dict[str, Any] = {
            "last_sync_status": status.value,
            "last_sync_error": job.doc.get("error"),
            "sync_locked_at": None,
        }
        if status in FINAL:
            fields["last_synced"] = clock.iso()
            fields["last_indexed_document_count"] = job.doc.get("indexed_document_count", 0)
            fields["last_deleted_document_count"] = job.doc.get("deleted_document_count", 0)
        if status == S.COMPLETED:
            fields.update(status="connected", error=None)
            if sync_cursor is not None:
                fields["sync_cursor"] = sync_cursor
        elif status == S.ERROR:
            fields.update(status="error", error=job.doc.get("error"))
        await self.connectors.patch(job.connector_id, fields)
