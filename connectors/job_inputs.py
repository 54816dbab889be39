"""What a job syncs with, fixed once when it starts: its own connector snapshot, plus the secrets
a job never stores, from the live connector (DESIGN.md §3: a job runs on its snapshot)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.protocol import Connector, Job
from connectors.protocol.secrets import is_redacted


@dataclass(frozen=True)
class JobInputs:
    """Everything a job uses, resolved once when it starts and never re-read: the job's own
    connector snapshot (index, filtering, pipeline, cursor), with secrets the snapshot does not
    hold taken from the live connector."""

    connector_id: str
    service_type: str
    job_type: str
    index_name: str
    configuration: dict[str, Any]
    sync_cursor: dict | None
    filtering: Any  # sync rules as the job was created with them; TODO(issue 12): apply them
    pipeline: dict | None

    @classmethod
    def of(cls, job: Job, live: Connector) -> JobInputs:
        snapshot = job.doc.get("connector") or {}
        return cls(
            connector_id=job.connector_id,
            service_type=job.service_type,
            job_type=job.job_type,
            index_name=job.index_name,
            configuration=with_secrets(snapshot.get("configuration"), live.configuration),
            sync_cursor=snapshot.get("sync_cursor"),
            filtering=snapshot.get("filtering"),
            pipeline=snapshot.get("pipeline"),
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
