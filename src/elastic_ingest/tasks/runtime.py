"""What one flow run's tasks share: settings read once, one Elasticsearch client, and for a sync
its JobRun. The flow opens it with `flow_runtime(config_file)`; its tasks call `current()`.

It lives in a ContextVar, the documented way for a flow to hand its tasks live objects: Prefect
runs an awaited task in the flow's context, so the tasks see it, while concurrent flow runs in
one process (the poll loop's in-process syncs) each see their own. An edit to config.yml during
a run cannot give that run two settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from elastic_ingest.connectors.config import Settings, load_settings
from elastic_ingest.connectors.es.client import ESClient, create_client
from elastic_ingest.connectors.job.run import JobRun
from elastic_ingest.connectors.protocol import ConnectorIndex, JobIndex, protocol_for


@dataclass
class Runtime:
    settings: Settings
    es: ESClient
    config_file: str | None
    job: JobRun | None = None

    @property
    def protocol(self) -> tuple[ConnectorIndex, JobIndex]:
        return protocol_for(self.es, self.settings)


_CURRENT: ContextVar[Runtime] = ContextVar("elastic_ingest_runtime")


@asynccontextmanager
async def flow_runtime(config_file: str | None) -> AsyncIterator[Runtime]:
    """Read the settings and open the client for one flow run; close it when the run ends."""
    settings = load_settings(config_file)
    runtime = Runtime(settings, create_client(settings.elasticsearch), config_file)
    token = _CURRENT.set(runtime)
    try:
        yield runtime
    finally:
        _CURRENT.reset(token)
        await runtime.es.close()


def current() -> Runtime:
    """The runtime of the flow run this task belongs to."""
    runtime = _CURRENT.get(None)
    if runtime is None:
        raise RuntimeError("this task runs only inside a flow that opened flow_runtime()")
    return runtime


def current_job(job_id: str) -> JobRun:
    """The JobRun of this flow run, checked to be `job_id`'s."""
    run = current().job
    if run is None or run.job_id != job_id:
        raise RuntimeError(f"job {job_id} is not the job of this flow run")
    return run


async def prefect_secret(name: str) -> str:
    """A Prefect Secret block's value: what `prefect-secret:NAME` configuration values name."""
    from prefect.blocks.system import Secret

    return str((await Secret.aload(name)).get())


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The run's logger inside a flow or task run (its lines reach the Prefect UI); the service's
    own logger when a step runs plainly (the poll loop's passes are not flow runs)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("elastic-ingest.poll")
