"""What the sync flow runs are tagged with and which deployments launch them; shared by the
flows that start sync runs (launch, parts) and the sync flow itself, so none imports another."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

GENERIC_DEPLOYMENT = "sync/connector"

# A run whose failure another run reports ends in a Failed state of its own name (the UI shows
# it red, as any failure), so that a notification on `Failed` tells of each failed job once:
# a deployment run over several connectors when its job runs failed, and a part of a
# partitioned sync (its job's run fails, quoting it).
JOB_RUNS_FAILED = "JobRunsFailed"
PART_FAILED = "PartFailed"


def run_tags(job_id: str, connector_id: str, service_type: str, job_type: str) -> list[str]:
    """The tags that lead from a Prefect run to the protocol's job and connector."""
    return [
        f"job:{job_id}",
        f"connector:{connector_id}",
        f"service_type:{service_type}",
        f"job_type:{job_type}",
    ]


async def deployment_named(name: str):
    """The deployment `flow/name`, or None when there is none."""
    try:
        async with get_client() as client:
            return await client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None
