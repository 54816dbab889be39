"""Connector documents: read, create, publish schemas, turn intent (sync_now, cron) into slots."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from connectors.cron import CronError, QuartzCron
from connectors.protocol import clock
from connectors.protocol.versioned import VersionedDocument, update_if_unchanged

logger = logging.getLogger(__name__)


class Connector(VersionedDocument):
    """A connector document with the sequence numbers needed to update it safely (CAS)."""

    @property
    def service_type(self) -> str:
        return self.doc.get("service_type") or ""

    @property
    def index_name(self) -> str:
        return self.doc.get("index_name") or ""

    @property
    def status(self) -> str:
        return self.doc.get("status") or "created"

    @property
    def configuration(self) -> dict[str, Any]:
        return self.doc.get("configuration") or {}

    def configuration_values(self) -> dict[str, Any]:
        """Plain `{field: value}` from the protocol's `{field: {value: ...}}` shape."""
        return {
            name: (spec.get("value") if isinstance(spec, dict) else spec)
            for name, spec in self.configuration.items()
        }

    def full_schedule(self) -> dict[str, Any] | None:
        """The full-sync schedule; the seed-era single `{enabled, interval}` shape is accepted."""
        scheduling = self.doc.get("scheduling") or {}
        if "interval" in scheduling:
            return scheduling
        return scheduling.get("full")


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
        "status": "created",
        "error": None,
        "configuration": {key: {"value": value} for key, value in (configuration or {}).items()},
        "scheduling": {
            "full": {"enabled": bool(schedule), "interval": schedule or "0 0 0 * * ?"},
            "incremental": {"enabled": False, "interval": "0 0 0 * * ?"},
            "access_control": {"enabled": False, "interval": "0 0 0 * * ?"},
        },
        "sync_now": False,
        "last_seen": None,
        "last_synced": None,
        "last_sync_status": None,
        "last_sync_error": None,
        "last_indexed_document_count": None,
        "last_deleted_document_count": None,
        "last_sync_scheduled_at": None,
        "sync_cursor": None,
        "pipeline": {
            "name": "ent-search-generic-ingestion",
            "extract_binary_content": True,
            "reduce_whitespace": True,
            "run_ml_inference": False,
        },
        "filtering": [],
        "features": {},
        "api_key_id": None,
    }


class ConnectorIndex:
    """Reads and compare-and-set updates of the connectors index."""

    def __init__(self, es: AsyncElasticsearch, index: str):
        self.es = es
        self.index = index

    async def create(self, document: dict[str, Any], connector_id: str | None = None) -> str:
        connector_id = connector_id or uuid.uuid4().hex[:20]
        await self.es.index(
            index=self.index, id=connector_id, document=document, op_type="create", refresh=True
        )
        return connector_id

    async def get(self, connector_id: str) -> Connector | None:
        try:
            hit = await self.es.get(index=self.index, id=connector_id)
        except NotFoundError:
            return None
        return Connector.from_hit(hit)

    async def all(self, service_type: str | None = None) -> list[Connector]:
        query = {"term": {"service_type": service_type}} if service_type else {"match_all": {}}
        connectors, search_after = [], None
        while True:
            response = await self.es.search(
                index=self.index,
                query=query,
                size=500,
                sort=["_doc"],
                seq_no_primary_term=True,
                search_after=search_after,
            )
            hits = response["hits"]["hits"]
            connectors += [Connector.from_hit(hit) for hit in hits]
            if len(hits) < 500:
                return connectors
            search_after = hits[-1]["sort"]

    async def update(self, connector: Connector, fields: dict[str, Any]) -> Connector | None:
        """Write `fields` only if nobody changed the document since it was read (None if so)."""
        try:
            return await update_if_unchanged(self.es, self.index, connector, fields)
        except (ConflictError, NotFoundError):
            return None

    async def patch(self, connector_id: str, fields: dict[str, Any]) -> None:
        """Write `fields` regardless of concurrent changes (heartbeats, mirrored job results)."""
        try:
            await self.es.update(
                index=self.index, id=connector_id, doc=fields, refresh=True, retry_on_conflict=5
            )
        except NotFoundError:
            logger.warning("connector %s was deleted; not updated", connector_id)

    async def heartbeat(self, connectors: list[Connector]) -> None:
        for connector in connectors:
            await self.patch(connector.id, {"last_seen": clock.iso()})

    async def request_sync(self, connector_id: str) -> None:
        await self.es.update(
            index=self.index, id=connector_id, doc={"sync_now": True}, refresh=True
        )

    async def publish_schema(
        self, connector: Connector, schema: dict[str, dict], is_configured
    ) -> Connector:
        """Give a connector without configuration the source's schema; mark it configured once
        every required field has a value (`is_configured(values) -> bool`)."""
        fields: dict[str, Any] = {}
        configuration = connector.configuration
        missing = {key: spec for key, spec in schema.items() if key not in configuration}
        if missing:
            merged = {
                **schema,
                **{key: {**schema.get(key, {}), **value} for key, value in configuration.items()},
            }
            fields["configuration"] = merged
            configuration = merged
        values = {name: spec.get("value") for name, spec in configuration.items()}
        if connector.status in ("created", "needs_configuration"):
            fields["status"] = "configured" if is_configured(values) else "needs_configuration"
        elif connector.status == "configured" and not is_configured(values):
            fields["status"] = "needs_configuration"
        fields = {key: value for key, value in fields.items() if connector.doc.get(key) != value}
        if not fields:
            return connector
        return await self.update(connector, fields) or connector

    async def take_sync_now(self, connector: Connector) -> bool:
        """Clear `sync_now` by CAS; True only for the one caller that cleared it."""
        if not connector.doc.get("sync_now"):
            return False
        return await self.update(connector, {"sync_now": False}) is not None

    async def take_due_slot(self, connector: Connector, at: datetime) -> datetime | None:
        """Claim the newest due full-sync slot by CAS on `last_sync_scheduled_at`."""
        schedule = connector.full_schedule()
        if not schedule or not schedule.get("enabled"):
            return None
        try:
            cron = QuartzCron.parse(schedule.get("interval") or "")
        except CronError as error:
            logger.warning("connector %s: bad schedule: %s", connector.id, error)
            return None
        since = clock.parse(connector.doc.get("last_sync_scheduled_at"))
        if since is None:  # schedule just enabled: start counting from now
            await self.update(connector, {"last_sync_scheduled_at": clock.iso(at)})
            return None
        slot = cron.latest_due(since, at)
        if slot is None:
            return None
        claimed = await self.update(connector, {"last_sync_scheduled_at": clock.iso(slot)})
        return slot if claimed else None
