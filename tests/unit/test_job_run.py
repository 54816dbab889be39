"""How JobRun decides a job's end when things go wrong around it, with small fakes of our own
protocol indices (no service): an Elasticsearch outage while reporting, and a service stop that
reaches the sync as some client's error instead of a cancellation."""

import asyncio
import dataclasses

import pytest

from elastic_ingest.connectors.config import parse_settings
from elastic_ingest.connectors.es.client import create_client
from elastic_ingest.connectors.es.transport import ESConnectionError
from elastic_ingest.connectors.job.outcome import Outcome
from elastic_ingest.connectors.job.run import JobRun
from elastic_ingest.connectors.protocol import Connector, Job, JobIndex, JobLost, JobStatus

CLAIM = "claim-1"


class FakeConnectors:
    def __init__(self):
        self.connector = Connector(
            "c1",
            {"service_type": "memory", "index_name": "idx", "configuration": {}},
            1,
            1,
        )

    async def get(self, connector_id):
        return self.connector

    async def note_drift(self, connector_id, summary):
        self.connector.doc["drift"] = {"summary": summary}


class FakeJobs:
    """The job index as JobRun uses it, in memory; `outage` calls fail like a lost cluster."""

    owned = staticmethod(JobIndex.owned)

    def __init__(self, outage: int = 0):
        self.outage = outage
        self.mirrored = []
        self.job = Job(
            "j1",
            {
                "status": "in_progress",
                "job_type": "full",
                "connector": {
                    "id": "c1",
                    "service_type": "memory",
                    "index_name": "idx",
                    "pipeline": {"name": None},  # no Elasticsearch here to look one up in
                },
                "metadata": {"claim": CLAIM, "generation": 5},
            },
            1,
            1,
        )

    async def get(self, job_id):
        return self.job

    async def check_owner(self, job_id, claim):
        if self.outage:
            self.outage -= 1
            raise ESConnectionError("connection refused")
        return self.owned(self.job, claim)

    async def heartbeat(self, job, counters):
        return self.job

    async def finish(self, job, status, counters=None, error=None, **options):
        self.job = dataclasses.replace(
            job, doc={**job.doc, "status": status.value, "error": error}, seq_no=job.seq_no + 1
        )
        return self.job

    async def mirror(self, job, cursor, drift_repaired=False):
        self.mirrored.append(job.status)
        self.drift_repaired = drift_repaired


class Stages:
    """Stages that do nothing, or fail the way `fail` says."""

    def __init__(self, run, fail=None):
        self.run, self.fail = run, fail

    async def check_changed(self):
        return True

    async def snapshot_index(self):
        return 0

    async def plan_partitions(self):
        return 1

    async def write_documents(self):
        if self.fail:
            await self.fail()
        return {}

    async def delete_stale(self):
        return 0

    async def finish(self):
        return await self.run.finish()


def job_run(jobs: FakeJobs) -> JobRun:
    settings = parse_settings(
        {"sources": {"memory": "elastic_ingest.connectors.sources.memory:MemoryDataSource"}}
    )
    # a client that is never used (the fakes stand in for the protocol indices): no connection
    run = JobRun(create_client(settings.elasticsearch), settings, "j1", claim=CLAIM)
    run.jobs, run.connectors = jobs, FakeConnectors()
    return run


async def test_reporting_waits_out_a_short_elasticsearch_outage():
    jobs = FakeJobs(outage=2)
    run = job_run(jobs)
    outcome = await run.run(Stages(run))
    assert outcome.status == JobStatus.COMPLETED
    assert jobs.job.doc["status"] == "completed" and jobs.mirrored == [JobStatus.COMPLETED]


async def test_a_stopping_service_reports_once_and_does_not_wait():
    jobs = FakeJobs(outage=1)
    run = job_run(jobs)
    await run._claimed_job()
    run.outcome = Outcome(JobStatus.SUSPENDED)
    with pytest.raises(ESConnectionError):
        await run.finish(patient=False)
    assert jobs.job.doc["status"] == "in_progress"  # left to the stale sweep, not waited for


async def test_a_stop_that_surfaces_as_a_client_error_suspends_the_job():
    """PyMongo (like other clients) turns a cancellation mid-write into its own error."""

    async def cut_off_mid_write():
        asyncio.current_task().cancel()
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            raise RuntimeError("connection closed while writing to the socket") from None

    jobs = FakeJobs()
    run = job_run(jobs)
    with pytest.raises(RuntimeError, match="connection closed"):
        await run.run(Stages(run, fail=cut_off_mid_write))
    assert jobs.job.doc["status"] == "suspended"
    assert jobs.mirrored == [JobStatus.SUSPENDED]


async def test_the_same_client_error_without_a_stop_is_an_error():
    async def fails():
        raise RuntimeError("connection closed while writing to the socket")

    jobs = FakeJobs()
    run = job_run(jobs)
    outcome = await run.run(Stages(run, fail=fails))
    assert outcome.status == JobStatus.ERROR
    assert jobs.job.doc["error"] == "RuntimeError: connection closed while writing to the socket"


async def test_a_request_that_landed_after_a_takeover_has_the_connector_read_in_full():
    """The bulk writer undid a request that may have landed after the job was lost
    (es/bulk.py): the run stops without reporting, and notes drift on the connector so that its
    next full sync reads every document again."""
    jobs = FakeJobs()
    run = job_run(jobs)

    async def taken_over_mid_request():
        run.progress.writes.landed_late, run.progress.writes.undone = 3, 2
        raise JobLost("job j1 is error; this worker no longer owns it")

    with pytest.raises(JobLost, match="no longer owns it"):
        await run.run(Stages(run, fail=taken_over_mid_request))
    assert (
        "3 operations of it may have landed after"
        in run.connectors.connector.doc["drift"]["summary"]
    )
    assert jobs.mirrored == []  # a lost job's end is not this run's to write


@pytest.mark.parametrize("noted_meanwhile", [False, True])
async def test_a_full_read_clears_only_the_drift_note_it_started_with(noted_meanwhile):
    """A drift note makes the next full sync read everything, which repairs what it noted; a
    note written while that sync ran (an older writer's late request) waits for the next."""
    jobs = FakeJobs()
    run = job_run(jobs)
    run.connectors.connector.doc["drift"] = {"found_at": "t1", "summary": "verify: 1 missing"}

    async def reads_while_another_note_comes():
        if noted_meanwhile:
            await run.connectors.note_drift("c1", "job j0 was taken over ...")

    outcome = await run.run(Stages(run, fail=reads_while_another_note_comes))
    assert outcome.status == JobStatus.COMPLETED
    assert jobs.drift_repaired is not noted_meanwhile
