"""The steps of one poll pass, as plain functions (flows/poll.py makes each a Prefect task)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from elastic_ingest.connectors.access_control import DLS_SETTING, dls_enabled
from elastic_ingest.connectors.config import Settings
from elastic_ingest.connectors.errors import describe_error
from elastic_ingest.connectors.es.documents import VersionConflict
from elastic_ingest.connectors.protocol import (
    ConnectorIndex,
    ConnectorStatus,
    IllegalTransition,
    Job,
    JobIndex,
    JobLost,
    JobStatus,
    JobType,
    TriggerMethod,
    clock,
)
from elastic_ingest.connectors.protocol.secrets import (
    SecretStore,
    SecretUnavailable,
    with_resolved_secrets,
)
from elastic_ingest.connectors.protocol.states import SCHEDULED_KINDS, may_sync
from elastic_ingest.connectors.protocol.targets import shared_index_problem, target_problem
from elastic_ingest.connectors.registry import RegistryError, source_class_for
from elastic_ingest.connectors.source import ConfigurationError
from elastic_ingest.connectors.sync_rules import reviewed_filtering

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 15


@dataclass
class ScheduleOutcome:
    on_demand: list[str] = field(default_factory=list)
    scheduled: list[str] = field(default_factory=list)


async def heartbeat_and_publish(
    settings: Settings, connectors: ConnectorIndex, secret_store: SecretStore | None = None
) -> dict[str, str]:
    """Refresh `last_seen`, publish configuration schemas, update status; returns id -> status.
    A connector that cannot be used gets `error` naming what is wrong; the others go on.
    `secret_store` reads `prefect-secret:NAME` values for the source check."""
    statuses = {}
    try:
        await connectors.heartbeat([connector.id for connector in await connectors.all()])
    except Exception as error:  # a missed check-in must not stop claims, schedules, the sweep
        logger.warning("the connectors' check-in (last_seen) failed: %s", describe_error(error))
    every = await connectors.all()  # as they are now, last_seen included
    targets: dict[str, list[str]] = {}
    for connector in every:
        targets.setdefault(connector.index_name, []).append(connector.id)
    for connector in every:
        shared = [other for other in targets.get(connector.index_name, []) if other != connector.id]
        try:
            statuses[connector.id] = await _check_in(
                settings, connectors, connector, secret_store, shared
            )
        except Exception as error:  # one connector must never stop the pass
            logger.warning(
                "connector %s skipped this pass: %s", connector.id, describe_error(error)
            )
            statuses[connector.id] = ConnectorStatus.ERROR.value
    return statuses


async def _check_in(
    settings: Settings, connectors: ConnectorIndex, connector, secret_store, shared: list[str]
) -> str:
    problems = connector.problems()
    if not problems:
        problem = target_problem(connector.index_name, settings.protocol)
        problems = [f"index_name: {problem}"] if problem else []
    if not problems:
        problem = shared_index_problem(connector.index_name, connector.id, shared)
        problems = [f"index_name: {problem}"] if problem else []
    if not problems:
        try:
            source_class = source_class_for(settings.sources, connector.service_type)
        except RegistryError as error:
            problems = [f"service_type: {error}"]
    if not problems:
        problems = connector.schedule_problems()  # on-demand syncs still run
    if problems:
        return await _report(connectors, connector, problems)
    connector = await connectors.publish_schema(
        connector,
        source_class.configuration_schema(),
        source_class.is_configured,
        source_class.features,
    )
    if dls_enabled(connector.configuration_values()) and not source_class.supports_dls():
        problem = f"configuration.{DLS_SETTING}: {source_class.name} does not support "
        return await _report(connectors, connector, [problem + "document level security"])
    connector = await _review_rules(connectors, connector, source_class)
    connector = await _check_source(settings, connectors, connector, source_class, secret_store)
    return connector.status


async def _report(connectors: ConnectorIndex, connector, problems: list[str]) -> str:
    """Show what makes a connector unusable on it (status `error`), logged once."""
    error = f"connector {connector.id}: " + "; ".join(problems)
    if connector.doc.get("error") != error or connector.status != ConnectorStatus.ERROR:
        logger.warning("%s", error)  # once, when it starts: the connector keeps saying it
        await connectors.patch(
            connector.id, {"status": ConnectorStatus.ERROR.value, "error": error}
        )
    return ConnectorStatus.ERROR.value


async def _review_rules(connectors: ConnectorIndex, connector, source_class):
    """Validate a sync rules draft a user edited; a valid one becomes active, as Kibana expects.
    A draft that lost a race with another edit is reviewed again next pass."""
    advanced = (
        source_class.advanced_rules_problems if source_class.supports_advanced_rules() else None
    )
    filtering = connector.doc.get("filtering")
    reviewed = reviewed_filtering(filtering, advanced, source_class.DOCUMENT_FIELDS)
    if reviewed is None:
        return connector
    return await connectors.update(connector, {"filtering": reviewed}) or connector


async def _check_source(
    settings: Settings, connectors: ConnectorIndex, connector, source_class, secret_store
):
    """Validate the configuration and ping the source, at most every `check_interval`, so a
    source that went away shows `error` before a sync fails (and `connected` once it is back)."""
    if not may_sync(connector.status):
        return connector
    last = clock.parse(connector.doc.get("last_checked_at"))
    if last and (clock.now() - last).total_seconds() < settings.service.check_interval:
        return connector
    fields = {"status": ConnectorStatus.CONNECTED.value, "error": None}
    try:
        values = await with_resolved_secrets(connector.configuration_values(), secret_store)
        source = source_class(values)
    except ConfigurationError as error:
        problems = "; ".join(error.problems)
        fields = {"status": ConnectorStatus.ERROR.value, "error": f"configuration: {problems}"}
    except SecretUnavailable as error:
        fields = {"status": ConnectorStatus.ERROR.value, "error": f"configuration: {error}"}
    else:
        try:
            await asyncio.wait_for(source.ping(), CHECK_TIMEOUT_SECONDS)
        except Exception as error:
            fields = {"status": ConnectorStatus.ERROR.value, "error": describe_error(error)}
        finally:
            await source.close()
    fields["last_checked_at"] = clock.iso()
    return await connectors.update(connector, fields) or connector


async def create_due_jobs(connectors: ConnectorIndex, jobs: JobIndex) -> ScheduleOutcome:
    """Turn `sync_now` flags and due cron slots (per job type) into pending jobs, exactly once
    each. Jobs of several kinds may wait for one connector; a claim runs one at a time."""
    outcome = ScheduleOutcome()
    for connector in await connectors.all():
        if connector.problems() or not may_sync(connector.status):
            continue
        try:
            await _create_due(connectors, jobs, connector, outcome)
        except Exception as error:  # one connector must never stop the pass
            logger.warning("connector %s: no job created: %s", connector.id, describe_error(error))
    return outcome


async def _create_due(connectors, jobs, connector, outcome: ScheduleOutcome) -> None:
    if await connectors.take_sync_now(connector):
        job_id = await jobs.create(connector, JobType.FULL, TriggerMethod.ON_DEMAND)
        outcome.on_demand.append(job_id)
        connector = await connectors.get(connector.id) or connector
    for kind in SCHEDULED_KINDS:
        if not (connector.schedule(kind) or {}).get("enabled"):
            continue
        if kind == JobType.INCREMENTAL and not connector.supports("incremental_sync"):
            continue  # the source says it cannot: never an incremental job for it
        if kind == JobType.ACCESS_CONTROL and not connector.dls_on:
            continue  # no identities to sync while document-level security is off
        slot = await connectors.take_due_slot(connector, kind, clock.now())
        connector = await connectors.get(connector.id) or connector  # slot fields moved
        if slot is None:
            continue
        slot_id = f"{connector.id}-{kind}-{slot.strftime('%Y%m%dT%H%M%S')}"
        job_id = await jobs.create(connector, kind, TriggerMethod.SCHEDULED, job_id=slot_id)
        if job_id:
            outcome.scheduled.append(job_id)


async def claim_jobs(
    jobs: JobIndex, limit: int, service_types: list[str] | None = None, worker: str | None = None
) -> list[Job]:
    """Claim up to `limit` pending/suspended jobs, at most one per connector; a job whose
    document cannot be run ends `error` with the reason, and the others go on."""
    claimed: list[Job] = []
    busy: set[str] = set()
    for job in await jobs.claimable(service_types):
        if len(claimed) >= limit:
            break
        try:
            problems = job.problems()
            if problems:
                await jobs.fail_malformed(job, problems)
                continue
            if job.connector_id in busy:
                continue
            taken = await jobs.claim(job, worker)
        except Exception as error:  # one job must never stop the pass
            logger.warning("job %s not claimed: %s", job.id, describe_error(error))
            continue
        if taken is not None:
            claimed.append(taken)
            busy.add(job.connector_id)
    return claimed


async def suspend_unstarted(jobs: JobIndex, claims: dict[str, str]) -> list[str]:
    """Of the jobs this process claimed (job id -> claim), those still running under that claim
    never started a sync (a started one ends suspended or canceled on a stop): release them."""
    released = []
    for job_id, claim in claims.items():
        job = await jobs.get(job_id)
        if job is None:
            continue
        try:
            job = jobs.owned(job, claim)
            await jobs.finish(job, JobStatus.SUSPENDED, error="the service stopped before it ran")
        except (JobLost, IllegalTransition, VersionConflict):
            continue  # finished, or someone else's now
        released.append(job_id)
    return released
