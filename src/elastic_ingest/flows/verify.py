"""Flow `verify`: a connector's drift audit (`elastic-ingest connector verify`) as a flow run, so
that a schedule can audit an index. Its report is a markdown artifact; an index that drifts ends
the run Failed, which the failure notification (`make notify`) then reports."""

from __future__ import annotations

import re

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed

from elastic_ingest.connectors.errors import describe_error
from elastic_ingest.connectors.job.setup import JobSetupError
from elastic_ingest.connectors.job.verify import Verdict, remember_drift, verify_connector
from elastic_ingest.connectors.source import SourceError
from elastic_ingest.tasks.runtime import flow_runtime, prefect_secret


@flow(name="verify", flow_run_name="verify-{connector_id}", log_prints=True)
async def verify(connector_id: str, config_file: str | None = None):
    """Diff the connector's source against its index; write nothing."""
    async with flow_runtime(config_file) as runtime:
        connectors, _ = runtime.protocol
        connector = await connectors.get(connector_id)
        if connector is None:
            return Failed(message=f"connector {connector_id} does not exist")
        try:
            verdict = await verify_connector(
                runtime.es, runtime.settings, connector, prefect_secret
            )
        except (JobSetupError, SourceError) as error:
            return Failed(message=f"connector {connector_id}: {describe_error(error)}")
        await remember_drift(connectors, connector, verdict)
    get_run_logger().info(verdict.summary())
    await create_markdown_artifact(
        key=re.sub(r"[^a-z0-9-]", "-", f"verify-{connector_id.lower()}"),  # what keys allow
        markdown=report(verdict),
        description=verdict.summary(),
    )
    if verdict.drift.equal:
        return Completed(message=verdict.summary(), data=verdict.as_dict())
    return Failed(message=verdict.summary(), data=verdict.as_dict())


def report(verdict: Verdict) -> str:
    """The artifact: the one-line verdict, then the sampled ids of each kind of drift."""
    lines = [f"**{verdict.summary()}**", ""]
    lines += [f"- {line}" for line in verdict.details()]
    return "\n".join(lines)
