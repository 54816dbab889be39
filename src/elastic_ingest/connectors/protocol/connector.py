"""Connector documents: read, create, publish schemas, turn intent (sync_now, cron) into slots."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from elastic_ingest.connectors.access_control import dls_enabled
from elastic_ingest.connectors.cron import CronError, QuartzCron
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.documents import (
    DocumentIndex,
    VersionConflict,
    VersionedDocument,
    merged,
)
from elastic_ingest.connectors.protocol import clock
from elastic_ingest.connectors.protocol.states import SCHEDULED_KINDS, ConnectorStatus, JobType
from elastic_ingest.connectors.sync_rules import default_filtering

logger = logging.getLogger(__name__)


DRIFT_FIELD = "drift"
"""The connector field that says its index may differ from its source (when, and why): set by
a verify that found drift or a writer that may have written after losing its job, cleared by
the next full sync, which reads every document (job/verify.py, job/run.py)."""


class Connector(VersionedDocument):
    """A connector document with the sequence numbers needed to update it safely (CAS)."""

    @property
    def drift_note(self) -> dict | None:
        return self.doc.get(DRIFT_FIELD) or None

    @property
    def service_type(self) -> str:
        return self.doc.get("service_type") or ""

    @property
    def index_name(self) -> str:
        return self.doc.get("index_name") or ""

    @property
    def status(self) -> str:
        return self.doc.get("status") or ConnectorStatus.CREATED

    @property
    def configuration(self) -> dict[str, Any]:
        """Field -> field object; a plain value (as some scripts write) becomes `{value: ...}`."""
        configuration = self.doc.get("configuration")
        if not isinstance(configuration, dict):
            return {}
        return {
            name: spec if isinstance(spec, dict) else {"value": spec}
            for name, spec in configuration.items()
        }

    def configuration_values(self) -> dict[str, Any]:
        """Plain `{field: value}` from the protocol's `{field: {value: ...}}` shape."""
        return {name: spec.get("value") for name, spec in self.configuration.items()}

    def schedule(self, kind: str) -> dict[str, Any] | None:
        """The `{enabled, interval}` schedule of a job type; the seed-era single
        `{enabled, interval}` shape is the full-sync schedule."""
        scheduling = self.doc.get("scheduling")
        if not isinstance(scheduling, dict):
            return None
        if "interval" in scheduling:
            return scheduling if kind == JobType.FULL else None
        schedule = scheduling.get(str(kind))
        return schedule if isinstance(schedule, dict) else None

    def supports(self, feature: str) -> bool:
        """A `features.<feature>.enabled` flag, as the service publishes it for the source."""
        features = self.doc.get("features")
        value = features.get(feature) if isinstance(features, dict) else None
        return bool(value.get("enabled")) if isinstance(value, dict) else bool(value)

    @property
    def dls_on(self) -> bool:
        """Document-level security: the source can do it and the connector turned it on."""
        return self.supports("document_level_security") and dls_enabled(self.configuration_values())

    def problems(self) -> list[str]:
        """What in this document the service cannot use, each naming its field (none: sound).
        Checked whenever a connector is read, so one bad document never stops the others."""
        doc, found = self.doc, []
        for name in ("service_type", "index_name"):
            if not isinstance(doc.get(name), str) or not doc.get(name):
                found.append(f"{name}: missing (expected a non-empty string)")
        for name in ("configuration", "scheduling", "pipeline", "features"):
            if doc.get(name) is not None and not isinstance(doc.get(name), dict):
                found.append(f"{name}: expected an object, got {_kind(doc.get(name))}")
        scheduling = doc.get("scheduling")
        if isinstance(scheduling, dict) and "interval" not in scheduling:
            for kind in JobType:
                if scheduling.get(kind) is not None and not isinstance(scheduling[kind], dict):
                    found.append(
                        f"scheduling.{kind}: expected {{enabled, interval}}, "
                        f"got {_kind(scheduling[kind])}"
                    )
        status = doc.get("status")
        if status is not None and (
            not isinstance(status, str) or status not in set(ConnectorStatus)
        ):
            found.append(f"status: unknown value {status!r}")
        return found

    def schedule_problems(self) -> list[str]:
        """Each enabled schedule whose interval is not Quartz cron, naming its field: shown on
        the connector, because no job of that kind is scheduled until it is fixed."""
        found = []
        legacy = "interval" in (self.doc.get("scheduling") or {})
        for kind in SCHEDULED_KINDS:
            schedule = self.schedule(kind)
            if not schedule or not schedule.get("enabled"):
                continue
            try:
                QuartzCron.parse(str(schedule.get("interval") or ""))
            except CronError as error:
                where = "scheduling.interval" if legacy else f"scheduling.{kind}.interval"
                found.append(f"{where}: {error}; no {kind} sync is scheduled until it is fixed")
        return found


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {str(value)[:40]!r}"


def new_connector_document(
    service_type: str,
    index_name: str,
    name: str = "",
    configuration: dict | None = None,
    schedule: str | None = None,
) -> dict[str, Any]:
    """A connector as Kibana would create it; `configuration` holds plain values or nothing."""
    return {
        "service_type": service_type,
        "index_name": index_name,
        "name": name or index_name,
        "description": "",
        "language": None,
        "status": ConnectorStatus.CREATED.value,
        "error": None,
        "configuration": {key: {"value": value} for key, value in (configuration or {}).items()},
        "scheduling": {
            JobType.FULL.value: {"enabled": bool(schedule), "interval": schedule or "0 0 0 * * ?"},
            JobType.INCREMENTAL.value: {"enabled": False, "interval": "0 0 0 * * ?"},
            JobType.ACCESS_CONTROL.value: {"enabled": False, "interval": "0 0 0 * * ?"},
            JobType.DELETION.value: {"enabled": False, "interval": "0 0 0 * * ?"},
        },
        "sync_now": False,
        "last_seen": None,
        "last_synced": None,
        "last_sync_status": None,
        "last_sync_error": None,
        "last_indexed_document_count": None,
        "last_deleted_document_count": None,
        "last_sync_scheduled_at": None,
        "last_incremental_sync_scheduled_at": None,
        "last_deletion_sync_scheduled_at": None,
        "last_access_control_sync_scheduled_at": None,
        "last_access_control_sync_status": None,
        "last_access_control_sync_error": None,
        "sync_cursor": None,
        "pipeline": {
            "name": "search-default-ingestion",
            "extract_binary_content": True,
            "reduce_whitespace": True,
            "run_ml_inference": False,
        },
        "filtering": default_filtering(clock.iso()),
        "features": {},
        "api_key_id": None,
    }


class ConnectorIndex:
    """Reads and compare-and-set updates of the connectors index."""

    def __init__(self, es: ESClient, index: str):
        self.documents = DocumentIndex(es, index)
        self.index = index

    async def create(self, document: dict[str, Any], connector_id: str | None = None) -> str:
        created = await self.documents.create(document, connector_id or uuid.uuid4().hex[:20])
        if created is None:
            raise ValueError(f"connector {connector_id} already exists")
        return created

    async def get(self, connector_id: str) -> Connector | None:
        hit = await self.documents.get(connector_id)
        return Connector.from_hit(hit) if hit else None

    async def all(self, service_type: str | None = None) -> list[Connector]:
        query = {"term": {"service_type": service_type}} if service_type else {"match_all": {}}
        return [Connector.from_hit(hit) async for hit in self.documents.scan(query)]

    async def update(self, connector: Connector, fields: dict[str, Any]) -> Connector | None:
        """Write `fields` only if nobody changed the document since it was read (None if so)."""
        try:
            return await self.documents.update_if_unchanged(connector, fields)
        except VersionConflict:
            return None

    async def patch(self, connector_id: str, fields: dict[str, Any]) -> None:
        """Write `fields` regardless of concurrent changes (heartbeats, mirrored job results)."""
        if not await self.documents.patch(connector_id, fields):
            logger.warning("connector %s was deleted; not updated", connector_id)

    async def note_drift(self, connector_id: str, summary: str) -> None:
        """Note that the index may differ from the source (`drift`: when, and why): the next
        full sync reads every document instead of trusting the source's "nothing changed",
        and clears the note."""
        note = {"found_at": clock.iso(), "summary": summary}
        await self.patch(connector_id, {DRIFT_FIELD: note})

    async def heartbeat(self, connector_ids: list[str]) -> None:
        """`last_seen` of many connectors in one bulk request per 500 (a poll pass's check-in)."""
        if connector_ids:
            await self.documents.patch_many(connector_ids, {"last_seen": clock.iso()})

    async def replace(self, connector: Connector, document: dict[str, Any]) -> bool:
        """Write `document` whole, only if nobody changed the connector since it was read."""
        return await self.documents.replace_if_unchanged(connector, document)

    async def delete(self, connector: Connector) -> bool:
        """Delete the connector, only if nobody changed it since it was read (a claim, say)."""
        return await self.documents.delete_if_unchanged(connector)

    async def request_sync(self, connector_id: str) -> None:
        await self.patch(connector_id, {"sync_now": True})

    async def publish_schema(
        self, connector: Connector, schema: dict[str, dict], is_configured, features=None
    ) -> Connector:
        """Give a connector without configuration the source's schema; mark it configured once
        every required field has a value (`is_configured(values) -> bool`); publish what the
        source can do (`features(values) -> dict`, merged into what others wrote there)."""
        fields: dict[str, Any] = {}
        configuration = connector.configuration
        missing = {key: spec for key, spec in schema.items() if key not in configuration}
        if missing or configuration != connector.doc.get("configuration"):
            combined = {
                **schema,
                **{key: {**schema.get(key, {}), **value} for key, value in configuration.items()},
            }
            fields["configuration"] = combined
            configuration = combined
        values = {name: spec.get("value") for name, spec in configuration.items()}
        if features is not None:
            current = connector.doc.get("features")
            fields["features"] = merged(
                current if isinstance(current, dict) else {}, features(values)
            )
        waiting = (ConnectorStatus.CREATED, ConnectorStatus.NEEDS_CONFIGURATION)
        if connector.status in waiting:
            fields["status"] = (
                ConnectorStatus.CONFIGURED if is_configured(values) else waiting[1]
            ).value
        elif connector.status == ConnectorStatus.CONFIGURED and not is_configured(values):
            fields["status"] = ConnectorStatus.NEEDS_CONFIGURATION.value
        fields = {key: value for key, value in fields.items() if connector.doc.get(key) != value}
        if not fields:
            return connector
        return await self.update(connector, fields) or connector

    async def take_sync_now(self, connector: Connector) -> bool:
        """Clear `sync_now` by CAS; True only for the one caller that cleared it."""
        if not connector.doc.get("sync_now"):
            return False
        return await self.update(connector, {"sync_now": False}) is not None

    async def take_due_slot(self, connector: Connector, kind: str, at: datetime) -> datetime | None:
        """Claim the newest due slot of a job type's schedule by CAS on its `last_*_scheduled_at`
        field: of many pollers, exactly one gets each slot."""
        schedule = connector.schedule(kind)
        if not schedule or not schedule.get("enabled"):
            return None
        try:
            cron = QuartzCron.parse(schedule.get("interval") or "")
        except CronError:  # shown on the connector by the poll pass (schedule_problems)
            return None
        field = SLOT_FIELDS[kind]
        since = clock.parse(connector.doc.get(field))
        if since is None:  # schedule just enabled: start counting from now
            await self.update(connector, {field: clock.iso(at)})
            return None
        slot = cron.latest_due(since, at)
        if slot is None:
            return None
        claimed = await self.update(connector, {field: clock.iso(slot)})
        return slot if claimed else None


SLOT_FIELDS = {
    JobType.FULL: "last_sync_scheduled_at",
    JobType.INCREMENTAL: "last_incremental_sync_scheduled_at",
    JobType.DELETION: "last_deletion_sync_scheduled_at",
    JobType.ACCESS_CONTROL: "last_access_control_sync_scheduled_at",
}
"""Per job type, the connector field holding the last schedule slot claimed (Kibana 8.x's names;
the deletion one is this service's)."""
