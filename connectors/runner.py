"""Run one claimed job end to end in this process: build the source, sync, report to the job."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass

from elasticsearch import AsyncElasticsearch

from connectors.config import Settings
from connectors.protocol import ConnectorIndex, JobIndex, JobStatus
from connectors.protocol.connector import Connector
from connectors.protocol.watch import JobWatch
from connectors.registry import RegistryError, source_class_for
from connectors.source import BaseDataSource, ConfigurationError
from connectors.sync import SyncProgress, SyncResult, describe_error, full_sync

logger = logging.getLogger(__name__)


class JobSetupError(RuntimeError):
    """The job cannot start: connector gone, unknown service type, bad configuration."""


@dataclass
class JobContext:
    connector: Connector
    source_class: type[BaseDataSource]


async def load_job_context(
    settings: Settings, connectors: ConnectorIndex, connector_id: str
) -> JobContext:
    connector = await connectors.get(connector_id)
    if connector is None:
        raise JobSetupError(f"connector {connector_id} does not exist")
    try:
        source_class = source_class_for(settings.sources, connector.service_type)
    except RegistryError as error:
        raise JobSetupError(str(error)) from None
    return JobContext(connector, source_class)


def build_source(context: JobContext) -> BaseDataSource:
    try:
        return context.source_class(context.connector.configuration_values())
    except ConfigurationError as error:
        raise JobSetupError(
            f"connector {context.connector.id} configuration: {'; '.join(error.problems)}"
        ) from None


def protocol_for(es: AsyncElasticsearch, settings: Settings) -> tuple[ConnectorIndex, JobIndex]:
    connectors = ConnectorIndex(es, settings.protocol.connectors_index)
    return connectors, JobIndex(es, settings.protocol.jobs_index, connectors)


async def run_job(es: AsyncElasticsearch, settings: Settings, job_id: str) -> SyncResult:
    """Sync a claimed (in_progress) job and finish it: completed, error or canceled."""
    connectors, jobs = protocol_for(es, settings)
    job = await jobs.get(job_id)
    progress = SyncProgress()
    try:
        context = await load_job_context(settings, connectors, job.connector_id)
        source = build_source(context)
    except JobSetupError as error:
        await jobs.finish(job_id, JobStatus.ERROR, error=str(error))
        return SyncResult("error", progress, error=str(error))
    interval = settings.service.heartbeat_interval
    try:
        async with JobWatch(jobs, job, progress.job_counters, interval) as watch:
            with tempfile.TemporaryDirectory(prefix="elastic-ingest-") as workdir:
                result = await full_sync(
                    es,
                    source,
                    context.connector.index_name,
                    settings,
                    workdir,
                    cursor=context.connector.doc.get("sync_cursor"),
                    progress=progress,
                    canceled=watch.is_canceled,
                )
    except Exception as error:
        result = SyncResult("error", progress, error=describe_error(error))
    finally:
        await source.close()
    cursor = source.sync_cursor() if result.status == "completed" else None
    await jobs.finish(
        job_id, JobStatus(result.status), progress.job_counters(), result.error, cursor
    )
    return result
