"""A connector's drift audit, which is also its sync's dry run: its source set up exactly as a
full sync's would be (configuration, secrets, sync rules), listed, and diffed against its index
(engine/audit.py). Nothing is written, and no job is created."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass

from elastic_ingest.connectors.config import Settings
from elastic_ingest.connectors.engine.audit import Drift, audit
from elastic_ingest.connectors.engine.stream import SyncOptions
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.job.setup import resolve_setup
from elastic_ingest.connectors.protocol import ConnectorIndex, Job, JobType
from elastic_ingest.connectors.protocol.connector import DRIFT_FIELD, Connector
from elastic_ingest.connectors.protocol.job import new_job_document
from elastic_ingest.connectors.protocol.secrets import SecretStore
from elastic_ingest.connectors.protocol.states import TriggerMethod


@dataclass(frozen=True)
class Verdict:
    """The drift, and what a full sync would make of it: whether the mass-delete guard would
    hold its deletes, and why it would read every document again (rules or content settings
    changed since the last sync), if it would."""

    connector_id: str
    drift: Drift
    guard_would_hold: bool
    reads_everything_because: str | None

    def as_dict(self) -> dict:
        return {
            "connector_id": self.connector_id,
            **self.drift.as_dict(),
            "guard_would_hold": self.guard_would_hold,
            "reads_everything_because": self.reads_everything_because,
        }

    def summary(self) -> str:
        """One line: equal, or how the index drifts."""
        drift = self.drift
        if drift.equal:
            return (
                f"index {drift.index} equals the source of connector {self.connector_id} "
                f"({drift.indexed:,} documents)"
            )
        kinds = [(drift.missing, "missing"), (drift.stale, "stale"), (drift.extra, "extra")]
        kinds.append((drift.unreadable, "unreadable at the source"))
        found = ", ".join(f"{kind.count:,} {name}" for kind, name in kinds if kind.count)
        return (
            f"index {drift.index} drifts from the source of connector {self.connector_id}: "
            f"{found} (the index holds {drift.indexed:,}, the source lists {drift.listed:,})"
        )

    def details(self) -> list[str]:
        """The sampled ids of each kind of drift, a line each."""
        drift = self.drift
        lines = []
        for name, found, meaning in (
            ("missing", drift.missing, "the source lists them, the index lacks them"),
            ("stale", drift.stale, "the index holds another version"),
            ("extra", drift.extra, "the index holds them, the source does not list them"),
            ("unreadable", drift.unreadable, "the source could not read them"),
        ):
            if found.count:
                more = found.count - len(found.sample)
                tail = f", and {more:,} more" if more else ""
                lines.append(f"{name} ({meaning}): {', '.join(found.sample)}{tail}")
        if drift.excluded:
            lines.append(f"{drift.excluded:,} listed documents are excluded by the sync rules")
        return lines

    def sync_plan(self) -> list[str]:
        """What a full sync would do now, for `connector sync --dry-run`."""
        drift = self.drift
        lines = [
            f"a full sync of connector {self.connector_id} would write {drift.writes:,} "
            f"documents ({drift.missing.count:,} new, {drift.stale.count:,} changed) and delete "
            f"{drift.extra.count:,} of the {drift.indexed:,} index {drift.index} holds; "
            "nothing was written"
        ]
        if drift.extra.count and self.guard_would_hold:
            lines.append(
                "the mass-delete guard would hold those deletes: the job would end in error, "
                "writing the rest (`job release-deletes` lets them through)"
            )
        if self.reads_everything_because:
            lines.append(
                f"it would read every document again, unchanged or not: "
                f"{self.reads_everything_because}"
            )
        return lines


async def verify_connector(
    es: ESClient,
    settings: Settings,
    connector: Connector,
    secret_store: SecretStore | None = None,
) -> Verdict:
    """List `connector`'s source and diff it against its index; JobSetupError says in one
    line why the source cannot be set up, SourceError why it cannot be read."""
    as_job = new_job_document(connector, JobType.FULL, TriggerMethod.ON_DEMAND, frozenset())
    # never stored: the document only carries the connector into the job's setup
    setup = await resolve_setup(es, settings, Job("verify", as_job, 0, 0), connector, secret_store)
    source = setup.source
    source.context = source.context.but(extract_binary_up_to=0)  # versions, not file bodies
    workdir = tempfile.mkdtemp(prefix="elastic-ingest-verify-")
    try:
        await source.ping()
        options = SyncOptions(rules=setup.rules, access_control=source.dls_enabled)
        drift = await audit(es, source, setup.inputs.index_name, workdir, options)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        await source.close()
    guard = setup.inputs.guard(settings.service)
    reread = None
    if setup.rules_changed:
        reread = "the sync rules changed since the last sync"
    elif setup.content_settings_changed:
        reread = "what a sync makes of content (extraction, whitespace, DLS) changed"
    return Verdict(connector.id, drift, guard.holds(drift.extra.count, drift.indexed), reread)


async def remember_drift(
    connectors: ConnectorIndex, connector: Connector, verdict: Verdict
) -> None:
    """Note a drift on the connector (`drift`: when, and the one-line summary), so that its
    next full sync reads every document instead of trusting the source's "nothing changed";
    that sync clears it. An equal index clears a note left earlier."""
    if verdict.drift.equal:
        if connector.drift_note:
            await connectors.patch(connector.id, {DRIFT_FIELD: None})
        return
    await connectors.note_drift(connector.id, verdict.summary())
