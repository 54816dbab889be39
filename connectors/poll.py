"""The steps of one poll pass, as plain functions (flows/poll.py makes each a Prefect task)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from connectors.config import Settings
from connectors.protocol import (
    ConnectorIndex,
    ConnectorStatus,
    Job,
    JobIndex,
    JobType,
    TriggerMethod,
    clock,
)
from connectors.protocol.states import may_sync
from connectors.protocol.targets import target_problem
from connectors.registry import RegistryError, source_class_for

logger = logging.getLogger(__name__)


@dataclass
class ScheduleOutcome:
    on_demand: list[str] = field(default_factory=list)
    scheduled: list[str] = field(default_factory=list)


async def heartbeat_and_publish(settings: Settings, connectors: ConnectorIndex) -> dict[str, str]:
    """Refresh `last_seen`, publish configuration schemas, update status; returns id -> status."""
    statuses = {}
    for connector in await connectors.all():
        await connectors.patch(connector.id, {"last_seen": clock.iso()})
        connector = await connectors.get(connector.id) or connector
        problem = target_problem(connector.index_name, settings.protocol)
        try:
            source_class = source_class_for(settings.sources, connector.service_type)
        except RegistryError as error:
            problem = str(error)
        if problem:
            if connector.doc.get("error") != problem:
                error_fields = {"status": ConnectorStatus.ERROR.value, "error": problem}
                await connectors.update(connector, error_fields)
            statuses[connector.id] = ConnectorStatus.ERROR.value
            logger.warning("connector %s: %s", connector.id, problem)
            continue
        connector = await connectors.publish_schema(
            connector, source_class.configuration_schema(), source_class.is_configured
        )
        statuses[connector.id] = connector.status
    return statuses


async def create_due_jobs(connectors: ConnectorIndex, jobs: JobIndex) -> ScheduleOutcome:
    """Turn `sync_now` flags and due cron slots into pending jobs, exactly once each."""
    outcome = ScheduleOutcome()
    for connector in await connectors.all():
        if not may_sync(connector.status):
            continue
        if await connectors.take_sync_now(connector):
            job_id = await jobs.create(connector, JobType.FULL, TriggerMethod.ON_DEMAND)
            outcome.on_demand.append(job_id)
            connector = await connectors.get(connector.id) or connector
        slot = await connectors.take_due_slot(connector, clock.now())
        if slot is not None:
            slot_id = f"{connector.id}-full-{slot.strftime('%Y%m%dT%H%M%S')}"
            job_id = await jobs.create(
                connector, JobType.FULL, TriggerMethod.SCHEDULED, job_id=slot_id
            )
            if job_id:
                outcome.scheduled.append(job_id)
    return outcome


async def claim_jobs(
    jobs: JobIndex, limit: int, service_types: list[str] | None = None, worker: str | None = None
) -> list[Job]:
    """Claim up to `limit` pending/suspended jobs, at most one per connector."""
    claimed: list[Job] = []
    busy: set[str] = set()
    for job in await jobs.claimable(service_types):
        if len(claimed) >= limit:
            break
        if job.connector_id in busy:
            continue
        taken = await jobs.claim(job, worker)
        if taken is not None:
            claimed.append(taken)
            busy.add(job.connector_id)
    return claimed
