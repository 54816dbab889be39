"""What a job syncs with, fixed once when it starts: its own connector snapshot, plus the secrets
a job never stores, from the live connector (DESIGN.md §3: a job runs on its snapshot)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elastic_ingest.connectors.protocol import Connector, Job
from elastic_ingest.connectors.protocol.secrets import is_redacted
from elastic_ingest.connectors.sync_rules import job_filter, split_cursor


class JobSetupError(RuntimeError):
    """The job cannot start: connector gone, unknown service type, bad configuration or target."""


# Elastic's default pipelines: they extract text and reduce whitespace, which this service does
# itself, so a cluster without them (any cluster without Enterprise Search's) runs without.
ELASTIC_DEFAULT_PIPELINES = frozenset({"search-default-ingestion", "ent-search-generic-ingestion"})


@dataclass(frozen=True)
class PipelineSettings:
    """A connector's `pipeline`, with the defaults Elastic's service assumes when it is missing."""

    name: str | None = "search-default-ingestion"
    extract_binary_content: bool = True
    reduce_whitespace: bool = True
    run_ml_inference: bool = True

    @property
    def content_fingerprint(self) -> str:
        """Changes when what a sync makes of file content does: documents are then re-read.
        Empty for the defaults, so cursors stored before these settings existed still match."""
        if self.extract_binary_content and self.reduce_whitespace:
            return ""
        return f"extract={int(self.extract_binary_content)},reduce={int(self.reduce_whitespace)}"

    @classmethod
    def of(cls, value: Any) -> PipelineSettings:
        if not isinstance(value, dict):
            return cls()
        return cls(
            name=value.get("name") or None,
            **{
                flag: bool(value.get(flag, getattr(cls, flag)))
                for flag in ("extract_binary_content", "reduce_whitespace", "run_ml_inference")
            },
        )


@dataclass(frozen=True)
class JobInputs:
    """Everything a job uses, resolved once when it starts and never re-read: the job's own
    connector snapshot (index, filtering, pipeline), with secrets the snapshot does not hold
    taken from the live connector, and the live connector's cursor (below)."""

    connector_id: str
    service_type: str
    job_type: str
    index_name: str
    configuration: dict[str, Any]
    sync_cursor: dict | None  # the source's part of the cursor
    remembered: dict[str, str]  # what the cursor's sync ran with (sync_rules.FRAMEWORK_KEYS)
    rules_filter: dict | None  # the active sync rules the job was created with
    pipeline: PipelineSettings

    @classmethod
    def of(cls, job: Job, live: Connector) -> JobInputs:
        snapshot = job.doc.get("connector") or {}
        # The cursor of the last successful sync, read when the job starts, as Elastic's service
        # reads it: Kibana writes job snapshots without `sync_cursor`, and a snapshot's cursor is
        # older than the connector's when a sync finished between the job's creation and start.
        live_cursor = live.doc.get("sync_cursor")
        cursor, remembered = split_cursor(live_cursor or snapshot.get("sync_cursor"))
        return cls(
            connector_id=job.connector_id,
            service_type=job.service_type,
            job_type=job.job_type,
            index_name=job.index_name,
            configuration=with_secrets(snapshot.get("configuration"), live.configuration),
            sync_cursor=cursor,
            remembered=remembered,
            rules_filter=job_filter(snapshot.get("filtering")),
            pipeline=PipelineSettings.of(snapshot.get("pipeline")),
        )

    def values(self) -> dict[str, Any]:
        """Plain `{field: value}` for the source class."""
        return {name: _value(spec) for name, spec in self.configuration.items()}


def _value(spec: Any) -> Any:
    return spec.get("value") if isinstance(spec, dict) else spec


def with_secrets(snapshot: dict | None, live: dict) -> dict:
    """The job's configuration, with the values it holds only redacted taken from the live
    connector (jobs never store secrets)."""
    configuration = dict(snapshot if isinstance(snapshot, dict) else live)
    for name, spec in configuration.items():
        if is_redacted(_value(spec)) and name in live:
            configuration[name] = live[name]
    return configuration
