"""The one way tests make a configured connector and sync it: a real job, claimed as the poller
claims it, run by the same JobRun the `sync` flow runs (plainly, or through the flow itself)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from elastic_ingest.connectors.config import Settings
from elastic_ingest.connectors.job.run import run_job
from elastic_ingest.connectors.poll import claim_jobs, heartbeat_and_publish
from elastic_ingest.connectors.protocol import (
    ConnectorStatus,
    Job,
    ensure_protocol_indices,
    protocol_for,
)
from elastic_ingest.connectors.protocol.connector import new_connector_document
from elastic_ingest.connectors.registry import source_class_for


@dataclass
class Synced:
    """A finished job as a user sees it, with the run's full counts."""

    job: Job
    counts: dict[str, Any]

    @property
    def status(self) -> str:
        return self.job.status.value

    @property
    def error(self) -> str | None:
        return self.job.doc.get("error")

    def __getattr__(self, name: str) -> Any:  # synced.created, synced.deleted, ...
        try:
            return self.counts[name]
        except KeyError:
            raise AttributeError(name) from None


class ConnectorHarness:
    """Create connectors in a test's protocol indices and run their jobs to the end."""

    def __init__(self, es, settings: Settings, config_dir: Path):
        self.es = es
        self.settings = settings
        self.connectors, self.jobs = protocol_for(es, settings)
        self.config_file = config_dir / "config.yml"
        self.config_file.write_text(yaml.safe_dump(revealed_settings(settings)))
        self._by_index: dict[str, str] = {}
        self._claims: dict[str, str] = {}

    async def create(self, service_type: str, index: str, **values: Any) -> str:
        """A configured connector of `service_type` targeting `index`, with these values."""
        await ensure_protocol_indices(self.es, self.settings.protocol)
        schema = source_class_for(self.settings.sources, service_type).configuration_schema()
        for name, value in values.items():
            schema.setdefault(name, {})["value"] = value
        document = new_connector_document(service_type, index)
        document.update(configuration=schema, status=ConnectorStatus.CONFIGURED.value)
        return await self.connectors.create(document)

    async def configure(self, connector_id: str, **values: Any) -> None:
        """Change configuration values, as a user would in Kibana."""
        connector = await self.connectors.get(connector_id)
        configuration = connector.configuration
        for name, value in values.items():
            configuration.setdefault(name, {})["value"] = value
        await self.connectors.patch(connector_id, {"configuration": configuration})

    async def edit_rules(
        self, connector_id: str, rules: list[dict] = (), advanced: Any = None
    ) -> dict:
        """Save a sync rules draft as Kibana does (state `edited`), then let one poll pass
        review it; returns the connector's DEFAULT filtering entry afterwards."""
        connector = await self.connectors.get(connector_id)
        filtering = connector.doc.get("filtering")
        draft = filtering[0]["draft"]
        draft["rules"] = [draft["rules"][0], *rules]  # Kibana keeps its default rule
        draft["advanced_snippet"]["value"] = advanced if advanced is not None else {}
        draft["validation"] = {"state": "edited", "errors": []}
        await self.connectors.patch(connector_id, {"filtering": filtering})
        await heartbeat_and_publish(self.settings, self.connectors)
        return (await self.connectors.get(connector_id)).doc["filtering"][0]

    async def publish(self) -> None:
        """One poll pass's check-in: schemas, features and statuses, as the service publishes
        them (what `features.document_level_security` says, for instance)."""
        await heartbeat_and_publish(self.settings, self.connectors)

    async def claim(self, connector_id: str, job_type: str = "full") -> str:
        """A new job for the connector, claimed the way a poll pass claims it."""
        connector = await self.connectors.get(connector_id)
        job_id = await self.jobs.create(connector, job_type)
        claimed = {job.id: job.claim for job in await claim_jobs(self.jobs, 100)}
        assert job_id in claimed, f"job {job_id} was not claimable"
        self._claims[job_id] = claimed[job_id]
        return job_id

    async def claim_written(self, document: dict) -> str:
        """A job document as another client (Kibana) wrote it, claimed as a poll pass claims it."""
        job_id = await self.jobs.documents.create(document)
        claimed = {job.id: job.claim for job in await claim_jobs(self.jobs, 100)}
        assert job_id in claimed, f"job {job_id} was not claimable"
        self._claims[job_id] = claimed[job_id]
        return job_id

    async def claim_pending(self, connector_id: str) -> str:
        """The connector's pending job (one a command created), claimed as a poll pass does."""
        claimed = {job.id: job for job in await claim_jobs(self.jobs, 100)}
        [job] = [job for job in claimed.values() if job.connector_id == connector_id]
        self._claims[job.id] = job.claim
        return job.id

    async def run(self, job_id: str, via: str = "plain") -> Synced:
        """Run a claimed job: `plain` (connectors.job.run.run_job) or `flow` (the sync flow)."""
        if via == "flow":
            from elastic_ingest.flows.sync import sync

            state = await sync(
                job_id,
                config_file=str(self.config_file),
                claim=self._claims.get(job_id),
                return_state=True,
            )
            counts = _flow_counts(await state.result(raise_on_failure=False))
        else:
            outcome = await run_job(self.es, self.settings, job_id, self._claims.get(job_id))
            counts = {**outcome.counts, "changed": outcome.changed}
        synced = Synced(await self.jobs.get(job_id), counts)
        check_receipt(synced)
        return synced

    async def sync(self, connector_id: str, via: str = "plain", job_type: str = "full") -> Synced:
        return await self.run(await self.claim(connector_id, job_type), via)

    async def cursor(self, connector_id: str) -> dict | None:
        """The connector's `sync_cursor`, as the last successful sync left it."""
        return (await self.connectors.get(connector_id)).doc.get("sync_cursor")

    async def sync_source(self, service_type: str, index: str, **values: Any) -> Synced:
        """Sync `index` from a source configured with `values`: one connector per index,
        reconfigured on later calls (its cursor kept, as a user's connector keeps it)."""
        connector_id = self._by_index.get(index)
        if connector_id is None:
            connector_id = await self.create(service_type, index, **values)
            self._by_index[index] = connector_id
        else:
            await self.configure(connector_id, **values)
        return await self.sync(connector_id)


def check_receipt(synced: Synced) -> None:
    """Every full sync a test runs is also a test of its parity receipt: a completed full
    sync that read the source has one, and it matches unless documents were rejected."""
    metadata = synced.job.doc.get("metadata") or {}
    receipt = metadata.get("receipt")
    read = "write_documents" in (metadata.get("stage_seconds") or {})
    if synced.status == "completed" and metadata.get("ran_as") == "full" and read:
        assert receipt is not None and "error" not in receipt, metadata
    if receipt is not None and not metadata.get("rejected_document_count"):
        assert receipt["matches"], receipt


def revealed_settings(settings: Settings) -> dict[str, Any]:
    """The settings as a configuration file holds them: credentials in clear (a dump masks
    them), for the flows and CLI processes a test starts."""
    raw = settings.model_dump(mode="json")
    for name in ("api_key", "password"):
        secret = getattr(settings.elasticsearch, name)
        if secret is not None:
            raw["elasticsearch"][name] = secret.get_secret_value()
    return raw


def _flow_counts(result: Any) -> dict[str, Any]:
    """The counts a sync flow run returned (none when it failed: read the job instead)."""
    return result if isinstance(result, dict) else {}
