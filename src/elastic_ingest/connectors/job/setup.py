"""What a job syncs with, resolved once when it starts and never re-read (a job
runs on its snapshot): the job's own connector snapshot, the secrets a job never stores and the
cursor of the last successful sync (both from the live connector), its source, rules, pipeline,
and the kind of sync it will really run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from elastic_ingest.connectors.access_control import content_index, dls_enabled
from elastic_ingest.connectors.config import ExtractionSettings, ServiceSettings, Settings
from elastic_ingest.connectors.engine.guard import DeleteGuard
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.pipelines import pipeline_exists
from elastic_ingest.connectors.protocol import Connector, Job, JobType
from elastic_ingest.connectors.protocol.secrets import (
    SecretStore,
    SecretUnavailable,
    is_redacted,
    with_resolved_secrets,
)
from elastic_ingest.connectors.protocol.targets import target_problem
from elastic_ingest.connectors.registry import RegistryError, source_class_for
from elastic_ingest.connectors.source import BaseDataSource, ConfigurationError, ReadContext
from elastic_ingest.connectors.sync_rules import (
    CONTENT_CURSOR_KEY,
    RULES_CURSOR_KEY,
    SyncRules,
    filter_problems,
    job_filter,
    split_cursor,
    with_framework,
)

if TYPE_CHECKING:
    from elastic_ingest.connectors.extraction import Extractor

logger = logging.getLogger(__name__)

SUPPORTED_JOB_TYPES = (JobType.FULL, JobType.INCREMENTAL, JobType.DELETION, JobType.ACCESS_CONTROL)
# Elastic's default pipelines: they extract text and reduce whitespace, which this service does
# itself, so a cluster without them (any cluster without Enterprise Search's) runs without.
ELASTIC_DEFAULT_PIPELINES = frozenset({"search-default-ingestion", "ent-search-generic-ingestion"})


class JobSetupError(RuntimeError):
    """The job cannot start: connector gone, unknown service type, bad configuration or target."""


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
    """The job's own connector snapshot (index, filtering, pipeline), with secrets the snapshot
    does not hold taken from the live connector, and the live connector's cursor."""

    connector_id: str
    connector_name: str | None
    service_type: str
    job_type: str
    index_name: str
    configuration: dict[str, Any]
    sync_cursor: dict | None  # the source's part of the cursor
    remembered: dict[str, str]  # what the cursor's sync ran with (sync_rules.FRAMEWORK_KEYS)
    rules_filter: dict | None  # the active sync rules the job was created with
    pipeline: PipelineSettings
    delete_guard: dict  # the connector's own `delete_guard` ({fraction, minimum}), if any
    releases: str | None  # a release job: the id of the job whose held deletes it lets through
    drift_note: dict | None  # why the index may drift from the source (job/verify.py), if noted

    @property
    def drift_found(self) -> bool:
        return bool(self.drift_note)

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
            connector_name=live.doc.get("name"),
            service_type=job.service_type,
            job_type=job.job_type,
            index_name=job.index_name,
            configuration=with_secrets(snapshot.get("configuration"), live.configuration),
            sync_cursor=cursor,
            remembered=remembered,
            rules_filter=job_filter(snapshot.get("filtering")),
            pipeline=PipelineSettings.of(snapshot.get("pipeline")),
            delete_guard=live.doc.get("delete_guard") or {},
            releases=(job.doc.get("metadata") or {}).get("releases_deletes_of"),
            drift_note=live.drift_note,
        )

    def guard(self, service: ServiceSettings) -> DeleteGuard:
        """The mass-delete guard of this job: the connector's thresholds, else the service's;
        a release job passes it once."""
        own = self.delete_guard if isinstance(self.delete_guard, dict) else {}
        return DeleteGuard(
            fraction=float(own.get("fraction") or service.delete_guard_fraction),
            minimum=int(own.get("minimum", service.delete_guard_minimum)),
            released=self.releases is not None,
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


@dataclass(frozen=True)
class JobSetup:
    """Everything a job's stages use, resolved once: its inputs, its source (one instance,
    closed when the job ends), the rules and pipeline it writes with, and the kind of sync it
    really runs (`kind_note` says why when that differs from the job's type)."""

    job_id: str
    inputs: JobInputs
    kind: JobType
    kind_note: str | None
    source_class: type[BaseDataSource]
    values: dict[str, Any]
    source: BaseDataSource
    rules: SyncRules
    pipeline_name: str | None  # the ingest pipeline bulk requests name

    @property
    def rules_changed(self) -> bool:
        """Whether the rules differ from those of the sync that stored the cursor."""
        return self.rules.fingerprint != self.inputs.remembered.get(RULES_CURSOR_KEY, "")

    @property
    def content_settings_changed(self) -> bool:
        """Whether extraction or whitespace settings differ from the last sync's: every file
        is then read again, changed or not."""
        return self.content_fingerprint != self.inputs.remembered.get(CONTENT_CURSOR_KEY, "")

    @property
    def content_fingerprint(self) -> str:
        """What the documents written depend on besides the source: extraction, whitespace,
        and whether they carry identities (turning DLS on or off rewrites every document)."""
        fingerprint = self.inputs.pipeline.content_fingerprint
        return fingerprint + (";dls" if self.source.dls_enabled else "")

    def cursor_after(self, source_cursor: dict | None) -> dict | None:
        """What the connector remembers after a successful sync: the source's cursor, the
        rules and the content settings it ran with."""
        remembered = {
            RULES_CURSOR_KEY: self.rules.fingerprint,
            CONTENT_CURSOR_KEY: self.content_fingerprint,
        }
        return with_framework(source_cursor, remembered)

    def source_for_part(self, part: dict) -> BaseDataSource:
        """A source of its own for one part of a partitioned full sync, set up as the job's."""
        return self.source_class(self.values, self.source.context.but(partition=part))

    def extractor(self, settings: ExtractionSettings) -> Extractor | None:
        """Text extraction for the job's binary files, if its pipeline asks for it (loaded only
        then: the library is large)."""
        if not self.inputs.pipeline.extract_binary_content:
            return None
        from elastic_ingest.connectors.extraction import ExtractionLimits, Extractor

        return Extractor(
            ExtractionLimits(
                max_bytes=settings.max_bytes,
                timeout_seconds=settings.timeout_seconds,
                workers=settings.workers or ExtractionLimits().workers,
            )
        )


async def resolve_setup(
    es: ESClient,
    settings: Settings,
    job: Job,
    live: Connector | None,
    secret_store: SecretStore | None = None,
) -> JobSetup:
    """The job's setup from its document and its live connector (read once, by the caller);
    JobSetupError says in one line why the job cannot run."""
    if live is None:
        raise JobSetupError(f"connector {job.connector_id} was deleted")
    if job.job_type not in set(SUPPORTED_JOB_TYPES):
        raise JobSetupError(
            f"job type {job.job_type!r} is not supported for service type "
            f"{job.service_type!r} (supported: {', '.join(SUPPORTED_JOB_TYPES)})"
        )
    inputs = JobInputs.of(job, live)
    kind = JobType(job.job_type)
    problem = target_problem(content_index(inputs.index_name), settings.protocol)
    if problem:
        raise JobSetupError(f"connector {job.connector_id}: {problem}")
    try:
        source_class = source_class_for(settings.sources, job.service_type)
        values = await with_resolved_secrets(inputs.values(), secret_store)
        rules = checked_rules(inputs, source_class)
        source = source_class(values, _read_context(inputs, rules, settings))
    except RegistryError as error:
        raise JobSetupError(str(error)) from None
    except SecretUnavailable as error:
        raise JobSetupError(f"connector {job.connector_id} configuration: {error}") from None
    except ConfigurationError as error:
        raise JobSetupError(
            f"connector {job.connector_id} configuration: {'; '.join(error.problems)}"
        ) from None
    _check_access_control(inputs, kind, source_class)
    pipeline_name = await ingest_pipeline(es, inputs)
    setup = JobSetup(job.id, inputs, kind, None, source_class, values, source, rules, pipeline_name)
    return _planned(setup)


def _read_context(inputs: JobInputs, rules: SyncRules, settings: Settings) -> ReadContext:
    """What the job asks of its source's reads: its advanced rules, and the binary files it
    extracts text from."""
    extracts = inputs.pipeline.extract_binary_content
    return ReadContext(
        advanced_rules=rules.advanced,
        extract_binary_up_to=settings.extraction.max_bytes if extracts else 0,
    )


def _planned(setup: JobSetup) -> JobSetup:
    """An incremental job needs a source that can do one and a cursor to start from; without
    a cursor (no successful sync yet) or with changed rules it runs as a full sync, and says
    why."""
    if setup.kind != JobType.INCREMENTAL:
        return setup
    problem = setup.source.incremental_problem(setup.source.config)
    if problem:
        raise JobSetupError(
            f"connector {setup.inputs.connector_id} cannot run incremental syncs: {problem}"
        )
    if not setup.source.can_sync_since(setup.inputs.sync_cursor):
        note = (
            "no sync cursor to start from (no successful sync since the connector was created "
            "or its configuration changed)"
        )
    elif setup.rules_changed:
        note = "the sync rules changed since the last sync"
    else:
        return setup
    logger.info("job %s: ran as a full sync: %s", setup.job_id, note)
    return replace(setup, kind=JobType.FULL, kind_note=note)


def _check_access_control(inputs: JobInputs, kind: JobType, source_class) -> None:
    """Document-level security only where the source can do it and the connector asks."""
    asked = dls_enabled(inputs.values())
    if (asked or kind == JobType.ACCESS_CONTROL) and not source_class.supports_dls():
        raise JobSetupError(
            f"connector {inputs.connector_id}: {source_class.name} does not support "
            "document level security (features.document_level_security is off); turn off "
            "use_document_level_security"
            if asked
            else f"connector {inputs.connector_id}: {source_class.name} does not "
            "support document level security, so it has no access-control sync"
        )
    if kind == JobType.ACCESS_CONTROL and not asked:
        raise JobSetupError(
            f"connector {inputs.connector_id}: document level security is off "
            "(configuration use_document_level_security): nothing to sync for access control"
        )


def checked_rules(inputs: JobInputs, source_class: type[BaseDataSource]) -> SyncRules:
    """The job's active sync rules, validated again: a job never runs with invalid rules."""
    advanced = (
        source_class.advanced_rules_problems if source_class.supports_advanced_rules() else None
    )
    errors = filter_problems(inputs.rules_filter, advanced)
    if errors:
        messages = "; ".join(m for error in errors for m in error["messages"])
        raise JobSetupError(f"connector {inputs.connector_id}: invalid sync rules: {messages}")
    return SyncRules.of(inputs.rules_filter)


async def ingest_pipeline(es: ESClient, inputs: JobInputs) -> str | None:
    """The pipeline every bulk request names, checked before anything is written."""
    name = inputs.pipeline.name
    if not name or await pipeline_exists(es, name):
        return name
    if name in ELASTIC_DEFAULT_PIPELINES:
        logger.info(
            "connector %s: Elastic's default pipeline %s is not in this cluster; documents are "
            "written without it (this service extracts text itself)",
            inputs.connector_id,
            name,
        )
        return None
    raise JobSetupError(
        f"connector {inputs.connector_id}: ingest pipeline {name!r} does not exist in "
        "Elasticsearch; create it, or change the connector's pipeline.name"
    )
