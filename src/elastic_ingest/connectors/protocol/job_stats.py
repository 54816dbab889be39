"""What the jobs index says about every job at once, for the service's metrics: jobs waiting or
running, each connector's newest successful sync, the jobs that ended since a moment."""

from __future__ import annotations

from elastic_ingest.connectors.protocol.job import Job, JobIndex
from elastic_ingest.connectors.protocol.states import ACTIVE, FINAL, JobType
from elastic_ingest.connectors.protocol.states import JobStatus as S


async def active_counts(jobs: JobIndex) -> dict[tuple[str, str], int]:
    """(status, job type) -> how many jobs are pending, suspended or running now."""
    waiting = [S.PENDING.value, S.SUSPENDED.value, *(s.value for s in ACTIVE)]
    aggs = {
        "status": {
            "terms": {"field": "status", "size": 10},
            "aggs": {"type": {"terms": {"field": "job_type", "size": 10}}},
        }
    }
    found = await jobs.documents.aggregate({"terms": {"status": waiting}}, aggs)
    return {
        (status["key"], kind["key"]): kind["doc_count"]
        for status in found.get("status", {}).get("buckets", [])
        for kind in status["type"]["buckets"]
    }


async def last_completed(jobs: JobIndex) -> dict[str, str]:
    """Connector id -> when its newest completed content sync ended (ISO)."""
    query = {
        "bool": {
            "filter": [
                {"term": {"status": S.COMPLETED.value}},
                {"terms": {"job_type": [JobType.FULL.value, JobType.INCREMENTAL.value]}},
            ]
        }
    }
    aggs = {
        "connector": {
            "terms": {"field": "connector.id", "size": 10_000},
            "aggs": {"newest": {"max": {"field": "completed_at"}}},
        }
    }
    found = await jobs.documents.aggregate(query, aggs)
    return {
        bucket["key"]: bucket["newest"]["value_as_string"]
        for bucket in found.get("connector", {}).get("buckets", [])
        if bucket["newest"].get("value_as_string")
    }


async def finished_since(jobs: JobIndex, since: str, size: int = 1000) -> list[Job]:
    """Jobs that ended (completed, canceled, error) at or after `since`, oldest end first."""
    query = {
        "bool": {
            "filter": [
                {"range": {"completed_at": {"gte": since}}},
                {"terms": {"status": [s.value for s in FINAL]}},
            ]
        }
    }
    return await jobs.search(query, size, [{"completed_at": "asc"}])
