"""Protocol on real Elasticsearch: exclusive claims, one job per request, stale jobs."""

import asyncio
import os
import socket
from datetime import UTC, datetime, timedelta

import pytest

from elastic_ingest.connectors.poll import (
    claim_jobs,
    create_due_jobs,
    heartbeat_and_publish,
    suspend_unstarted,
)
from elastic_ingest.connectors.protocol import IllegalTransition, JobIndex, JobStatus
from elastic_ingest.connectors.protocol.connector import ConnectorIndex, new_connector_document
from elastic_ingest.connectors.protocol.stale import fail_stale_jobs
from tests.integration.conftest import make_settings


async def make_connector(connectors, index="idx", **fields):
    document = {**new_connector_document("memory", index, configuration={"label": "x"}), **fields}
    document["status"] = fields.get("status", "configured")
    return await connectors.get(await connectors.create(document))


async def test_four_concurrent_claimers_claim_each_of_50_jobs_exactly_once(protocol, es, settings):
    connectors, jobs = protocol
    for i in range(50):
        connector = await make_connector(connectors, f"idx-{i}")
        await jobs.create(connector)

    async def claimer(name):
        own_connectors = ConnectorIndex(es, settings.protocol.connectors_index)
        own_jobs = JobIndex(es, settings.protocol.jobs_index, own_connectors)
        taken = []
        while True:
            batch = await claim_jobs(own_jobs, limit=5, worker=name)
            if not batch:
                return taken
            taken += [job.id for job in batch]

    results = await asyncio.gather(*(claimer(f"w{i}") for i in range(4)))
    all_claims = [job_id for claims in results for job_id in claims]
    assert len(all_claims) == 50 and len(set(all_claims)) == 50
    for job_id in all_claims:
        job = await jobs.get(job_id)
        assert job.status == JobStatus.IN_PROGRESS


async def test_a_connector_runs_one_sync_at_a_time(protocol):
    connectors, jobs = protocol
    connector = await make_connector(connectors)
    await jobs.create(connector)
    await jobs.create(connector)
    first = await claim_jobs(jobs, limit=10)
    assert len(first) == 1
    assert first[0].doc["worker_hostname"] == socket.gethostname()  # the host, as the protocol says
    assert first[0].doc["metadata"]["worker_pid"] == os.getpid()
    assert await claim_jobs(jobs, limit=10) == []
    await jobs.finish(first[0], JobStatus.COMPLETED)
    assert len(await claim_jobs(jobs, limit=10)) == 1


async def test_sync_now_set_once_gives_one_job_and_clears_the_flag(protocol):
    connectors, jobs = protocol
    connector = await make_connector(connectors, sync_now=True)
    outcomes = await asyncio.gather(*(create_due_jobs(connectors, jobs) for _ in range(3)))
    created = [job for outcome in outcomes for job in outcome.on_demand]
    assert len(created) == 1
    assert (await connectors.get(connector.id)).doc["sync_now"] is False
    job = await jobs.get(created[0])
    assert (job.doc["trigger_method"], job.doc["job_type"], job.status) == (
        "on_demand",
        "full",
        JobStatus.PENDING,
    )
    assert (await create_due_jobs(connectors, jobs)).on_demand == []


async def test_two_schedulers_on_the_same_due_slot_create_one_job(protocol):
    connectors, jobs = protocol
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2, minutes=30)).isoformat()
    connector = await make_connector(
        connectors,
        scheduling={"full": {"enabled": True, "interval": "0 0 * * * ?"}},
        last_sync_scheduled_at=two_hours_ago,
    )
    outcomes = await asyncio.gather(
        create_due_jobs(connectors, jobs), create_due_jobs(connectors, jobs)
    )
    scheduled = [job for outcome in outcomes for job in outcome.scheduled]
    assert len(scheduled) == 1  # two missed hourly slots run once, not twice
    assert len(await jobs.for_connector(connector.id)) == 1
    assert (await create_due_jobs(connectors, jobs)).scheduled == []


async def test_a_launched_job_waiting_for_a_worker_is_not_stale_until_the_launch_timeout(
    protocol, es
):
    """A claimed job whose flow run waits in a full work pool has no heartbeat yet: it is
    spared while its run is queued, and fails naming the run once it waited too long."""
    connectors, jobs = protocol
    await jobs.create(await make_connector(connectors))
    [job] = await claim_jobs(jobs, limit=1, worker="poller")
    asked = []

    async def queued_run(candidate):
        asked.append(candidate.id)
        return "run-42"

    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()  # claimed 5 minutes ago
    await es.update(
        index=jobs.index, id=job.id, doc={"last_seen": old, "started_at": old}, refresh=True
    )
    assert await fail_stale_jobs(jobs, 60, queued_run=queued_run, launch_timeout=600) == []
    assert asked == [job.id] and (await jobs.get(job.id)).status == JobStatus.IN_PROGRESS
    [failed] = await fail_stale_jobs(jobs, 60, queued_run=queued_run, launch_timeout=120)
    assert failed.status == JobStatus.ERROR
    assert "flow run run-42 waited more than 120s for a worker" in failed.doc["error"]


async def test_a_started_job_without_heartbeats_is_stale_even_if_a_run_is_queued(protocol, es):
    """Once a sync recorded its start on the job, only heartbeats keep it alive."""
    connectors, jobs = protocol
    await jobs.create(await make_connector(connectors))
    [job] = await claim_jobs(jobs, limit=1, worker="poller")
    job = await jobs.record_metadata(job, {"flow_run_id": "run-7"})
    assert job.doc["metadata"]["sync_started_at"] and job.doc["worker_hostname"]
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    await es.update(index=jobs.index, id=job.id, doc={"last_seen": old}, refresh=True)

    async def queued_run(candidate):
        raise AssertionError("a started job is not looked up in Prefect")

    [failed] = await fail_stale_jobs(jobs, 60, queued_run=queued_run)
    assert "no heartbeat" in failed.doc["error"]


async def test_one_bulk_heartbeat_refreshes_every_connector_and_skips_deleted_ones(protocol):
    connectors, _ = protocol
    made = [await make_connector(connectors, index=f"hb-{i}") for i in range(3)]
    before = {c.id: c.doc.get("last_seen") for c in made}
    await asyncio.sleep(0.01)
    await connectors.heartbeat([*before, "deleted-meanwhile"])
    for connector_id, seen in before.items():
        now = (await connectors.get(connector_id)).doc["last_seen"]
        assert now and now != seen
    assert await connectors.get("deleted-meanwhile") is None  # not created by the heartbeat


async def test_seed_era_schedule_shape_is_accepted(protocol):
    connectors, jobs = protocol
    since = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    await make_connector(
        connectors,
        scheduling={"enabled": True, "interval": "0 0 0 * * ?"},
        last_sync_scheduled_at=since,
    )
    assert len((await create_due_jobs(connectors, jobs)).scheduled) == 1


async def test_a_bad_cron_shows_on_the_connector_and_on_demand_syncs_still_run(protocol, settings):
    connectors, jobs = protocol
    scheduling = {
        "full": {"enabled": True, "interval": "0 0 * * * ?"},
        "incremental": {"enabled": True, "interval": "*/5 * * * *"},  # Unix, as users type it
    }
    connector = await make_connector(connectors, scheduling=scheduling, sync_now=True)
    statuses = await heartbeat_and_publish(settings, connectors)
    shown = await connectors.get(connector.id)
    assert statuses[connector.id] == "error" and shown.status == "error"
    assert "scheduling.incremental.interval: '*/5 * * * *' is a Unix cron" in shown.doc["error"]
    assert "'0 */5 * * * ?'" in shown.doc["error"]
    assert len((await create_due_jobs(connectors, jobs)).on_demand) == 1

    scheduling["incremental"]["interval"] = "0 */5 * * * ?"
    await connectors.patch(connector.id, {"scheduling": scheduling, "last_checked_at": None})
    assert (await heartbeat_and_publish(settings, connectors))[connector.id] == "connected"


async def test_a_stale_job_becomes_error_and_its_connector_is_unblocked(protocol, es):
    connectors, jobs = protocol
    connector = await make_connector(connectors)
    await jobs.create(connector)
    [job] = await claim_jobs(jobs, limit=1, worker="dead-host")
    old = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    await es.update(index=jobs.index, id=job.id, doc={"last_seen": old}, refresh=True)
    [failed] = await fail_stale_jobs(jobs, threshold_seconds=60)
    assert failed.status == JobStatus.ERROR
    assert "no heartbeat from worker dead-host" in failed.doc["error"]
    unblocked = await connectors.get(connector.id)
    assert unblocked.doc["last_sync_status"] == "error" and unblocked.status == "error"
    await jobs.create(unblocked)
    assert len(await claim_jobs(jobs, limit=1)) == 1


async def test_illegal_transitions_are_refused_and_not_written(protocol):
    connectors, jobs = protocol
    connector = await make_connector(connectors)
    job_id = await jobs.create(connector)
    with pytest.raises(IllegalTransition, match="pending -> completed"):
        await jobs.transition(job_id, JobStatus.COMPLETED)
    assert (await jobs.get(job_id)).status == JobStatus.PENDING
    [job] = await claim_jobs(jobs, limit=1)
    await jobs.finish(job, JobStatus.COMPLETED)
    for target in (JobStatus.IN_PROGRESS, JobStatus.ERROR, JobStatus.CANCELED):
        with pytest.raises(IllegalTransition):
            await jobs.transition(job_id, target)
    assert (await jobs.get(job_id)).status == JobStatus.COMPLETED


async def test_publish_schema_then_configured_once_required_values_exist(protocol, settings):
    connectors, _ = protocol
    document = new_connector_document("directory", "docs-index")
    connector_id = await connectors.create(document)
    statuses = await heartbeat_and_publish(settings, connectors)
    assert statuses[connector_id] == "needs_configuration"
    connector = await connectors.get(connector_id)
    assert connector.configuration["path"]["required"] is True
    assert connector.doc["last_seen"] is not None
    configuration = {
        **connector.configuration,
        "path": {**connector.configuration["path"], "value": "/tmp"},
    }
    await connectors.patch(connector_id, {"configuration": configuration})
    # configured once the required value exists, then connected: the pass pinged the folder
    assert (await heartbeat_and_publish(settings, connectors))[connector_id] == "connected"


async def test_an_unknown_service_type_puts_the_connector_in_error(protocol, settings):
    connectors, _ = protocol
    connector_id = await connectors.create(new_connector_document("nosuch", "i"))
    assert (await heartbeat_and_publish(settings, connectors))[connector_id] == "error"
    assert "unknown service type 'nosuch'" in (await connectors.get(connector_id)).doc["error"]


async def test_job_documents_never_hold_secrets(protocol):
    connectors, jobs = protocol
    connector = await make_connector(connectors)
    configuration = {
        "host": {"value": "mongodb://db:27017", "sensitive": False},
        "password": {"value": "hunter2-secret", "sensitive": True},
    }
    await connectors.patch(connector.id, {"configuration": configuration})
    job = await jobs.get(await jobs.create(await connectors.get(connector.id)))
    snapshot = job.doc["connector"]["configuration"]
    assert snapshot["password"]["value"] == "********"
    assert snapshot["host"]["value"] == "mongodb://db:27017"
    raw = await jobs.documents.get(job.id)
    assert "hunter2-secret" not in str(raw)


async def test_seed_era_secrets_and_uri_passwords_never_reach_a_job(protocol):
    """Seed-era `{label, value}` fields carry no `sensitive` flag: the source class says so."""
    connectors, jobs = protocol
    document = new_connector_document("mongodb", "shop")
    document["status"] = "configured"
    document["configuration"] = {
        "host": {"label": "Server", "value": "mongodb://reader:uri-secret@db:27017/"},
        "database": {"label": "Database", "value": "shop"},
        "collection": {"label": "Collection", "value": "products"},
        "password": {"label": "Password", "value": "hunter2-secret"},
    }
    connector = await connectors.get(await connectors.create(document))
    job = await jobs.get(await jobs.create(connector))
    raw = str(await jobs.documents.get(job.id))
    assert "hunter2-secret" not in raw and "uri-secret" not in raw
    snapshot = job.doc["connector"]["configuration"]
    assert snapshot["host"]["value"] == "mongodb://reader:********@db:27017/"
    assert snapshot["password"]["value"] == "********"


async def test_each_pass_checks_the_source_so_an_outage_shows_before_a_sync(protocol, tmp_path):
    connectors, _ = protocol
    settings = make_settings(service={"check_interval": 0.001})
    folder = tmp_path / "shared"
    folder.mkdir()
    document = new_connector_document("directory", "checked", configuration={"path": str(folder)})
    document["status"] = "configured"
    connector_id = await connectors.create(document)
    assert (await heartbeat_and_publish(settings, connectors))[connector_id] == "connected"
    folder.rmdir()
    assert (await heartbeat_and_publish(settings, connectors))[connector_id] == "error"
    assert "does not exist" in (await connectors.get(connector_id)).doc["error"]
    folder.mkdir()
    assert (await heartbeat_and_publish(settings, connectors))[connector_id] == "connected"
    assert (await connectors.get(connector_id)).doc["error"] is None


async def test_protocol_indices_are_laid_out_as_elasticsearchs_templates_do(protocol, es):
    connectors, jobs = protocol
    for alias in (connectors.index, jobs.index):
        resolved = await es.indices.resolve_index(name=alias)
        assert resolved["aliases"] == [{"name": alias, "indices": [f"{alias}-v1"]}]
        mapping = await es.indices.get_mapping(index=alias)
        properties = mapping[f"{alias}-v1"]["mappings"]["properties"]
        assert properties["error"] == {"type": "keyword"}
        assert mapping[f"{alias}-v1"]["mappings"]["dynamic"] == "false"


async def test_jobs_claimed_but_never_started_go_back_to_suspended(protocol):
    """A stop between claiming and starting (SIGTERM mid-pass) must not strand the job."""
    connectors, jobs = protocol
    connector = await make_connector(connectors)
    await jobs.create(connector)
    [job] = await claim_jobs(jobs, limit=1)
    assert await suspend_unstarted(jobs, {job.id: "someone-elses-claim"}) == []
    assert await suspend_unstarted(jobs, {job.id: job.claim}) == [job.id]
    assert (await jobs.get(job.id)).status == JobStatus.SUSPENDED
    assert (await connectors.get(connector.id)).doc["last_sync_status"] == "suspended"
    [again] = await claim_jobs(jobs, limit=1)
    assert again.id == job.id and again.status == JobStatus.IN_PROGRESS
