"""The service as users run it: CLI + poll passes + Prefect flows, on the real stack."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterStartTime,
)
from prefect.states import Cancelling

from elastic_ingest.connectors.protocol import JobStatus
from elastic_ingest.flows.poll import poll_forever
from elastic_ingest.tasks.sync_tasks import report_key
from tests.integration.processes import wait_ended
from tests.integration.stack import elasticsearch_section
from tests.integration.waiting import wait_for

PROJECT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "elastic_ingest.app.cli"]


@pytest.fixture
def config_file(tmp_path):
    suffix = uuid.uuid4().hex[:8]
    config = {
        "elasticsearch": elasticsearch_section(),
        "service": {"heartbeat_interval": 0.5, "poll_interval": 1, "use_deployments": False},
        "protocol": {
            "connectors_index": f".elastic-connectors-svc-{suffix}",
            "jobs_index": f".elastic-connectors-sync-jobs-svc-{suffix}",
        },
        "sources": {
            "slow": "tests.integration.slow_source:SlowDataSource",
            "notes": "examples.notes_source:NotesDataSource",
        },
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def cli(config_file, *args, check=True):
    result = subprocess.run(
        [*CLI, "-c", config_file, *args], capture_output=True, text=True, cwd=PROJECT
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def create_connector(config_file, service_type, index, *options, **values) -> str:
    """`elastic-ingest connector create` with `--set field=value` per keyword; returns the id."""
    settings = [arg for field, value in values.items() for arg in ("--set", f"{field}={value}")]
    created = cli(
        config_file,
        "connector",
        "create",
        "--service-type",
        service_type,
        "--index-name",
        index,
        *settings,
        *options,
    )
    return created.stdout.strip()


async def index_ids(es, index):
    await es.indices.refresh(index=index)
    response = await es.search(index=index, size=10_000, source=False)
    return {hit["_id"] for hit in response["hits"]["hits"]}


async def latest_job(jobs, connector_id):
    [job, *_] = await jobs.for_connector(connector_id, size=1)
    return job


def test_help_shows_the_seed_contract_flags():
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, cwd=PROJECT)
    assert result.returncode == 0
    for flag in ("--action {poll,list}", "-c CONFIG_FILE", "--debug", "-h"):
        assert flag in result.stdout


def test_action_list_shows_the_three_builtin_sources():
    result = subprocess.run([*CLI, "--action", "list"], capture_output=True, text=True, cwd=PROJECT)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    for service_type, qualified in (
        ("mongodb", "elastic_ingest.connectors.sources.mongo:MongoDataSource"),
        ("s3", "elastic_ingest.connectors.sources.s3:S3DataSource"),
        ("directory", "elastic_ingest.connectors.sources.directory:DirectoryDataSource"),
    ):
        assert any(line.split()[:2] == [service_type, qualified] for line in lines)


def test_a_bad_config_file_exits_2_listing_every_problem(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("bulk:\n  operations_per_request: lots\n  requests_in_flight: 0\nnope: 1\n")
    result = subprocess.run(
        [*CLI, "-c", str(bad), "--action", "list"], capture_output=True, text=True, cwd=PROJECT
    )
    assert result.returncode == 2
    assert "3 problem(s)" in result.stderr
    for path in ("bulk.operations_per_request", "bulk.requests_in_flight", "nope: unknown key"):
        assert path in result.stderr
    assert "Traceback" not in result.stderr


async def test_end_to_end_directory_sync_through_cli_and_poll(service, config_file, tmp_path):
    es, connectors, jobs, made = service
    folder = tmp_path / "corpus"
    (folder / "guide").mkdir(parents=True)
    for name in ("a.md", "b.md", "guide/c.txt", "guide/d.md"):
        (folder / name).write_text(f"contents of {name}")
    index = f"svc-docs-{uuid.uuid4().hex[:8]}"
    made.append(index)
    connector_id = create_connector(config_file, "directory", index, path=folder)
    cli(config_file, "connector", "sync", connector_id)
    started = datetime.now(UTC)
    assert await poll_forever(config_file, once=True) == 0

    job = await latest_job(jobs, connector_id)
    assert job.status == JobStatus.COMPLETED
    async with get_client() as client:  # the loop's pass itself is not a flow run
        passes = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["poll"])),
            flow_run_filter=FlowRunFilter(
                start_time=FlowRunFilterStartTime(after_=started - timedelta(seconds=1))
            ),
        )
    assert passes == []
    assert (job.doc["indexed_document_count"], job.doc["deleted_document_count"]) == (4, 0)
    assert await index_ids(es, index) == {"a.md", "b.md", "guide/c.txt", "guide/d.md"}
    flow_run_id = job.doc["metadata"]["flow_run_id"]
    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)
    assert flow_run.state.is_completed()
    assert f"job:{job.id}" in flow_run.tags and flow_run.name == f"{index} (full)"
    assert flow_run.state.message.startswith("full: 4 new, 0 updated, 0 deleted")

    (folder / "b.md").unlink()
    (folder / "a.md").write_text("new contents of a")
    os.utime(folder / "a.md", (time.time() + 10, time.time() + 10))
    cli(config_file, "connector", "sync", connector_id)
    assert await poll_forever(config_file, once=True) == 0
    job = await latest_job(jobs, connector_id)
    assert job.status == JobStatus.COMPLETED
    assert (job.doc["indexed_document_count"], job.doc["deleted_document_count"]) == (1, 1)
    assert job.doc["total_document_count"] == 3
    assert await index_ids(es, index) == {"a.md", "guide/c.txt", "guide/d.md"}
    await es.indices.refresh(index=index)
    assert (await es.get(index=index, id="a.md"))["_source"]["body"] == "new contents of a"
    listing = cli(config_file, "connector", "list").stdout
    assert connector_id in listing and "connected" in listing

    (folder / "e.md").write_text("a new file")
    requested = cli(config_file, "connector", "sync", connector_id, "--type", "incremental")
    assert "incremental sync job" in requested.stdout
    assert await poll_forever(config_file, once=True) == 0
    job = await latest_job(jobs, connector_id)
    assert (job.doc["job_type"], job.status) == ("incremental", JobStatus.COMPLETED)
    assert (job.doc["indexed_document_count"], job.doc["deleted_document_count"]) == (1, 0)
    assert await index_ids(es, index) == {"a.md", "e.md", "guide/c.txt", "guide/d.md"}
    async with get_client() as client:
        flow_run = await client.read_flow_run(job.doc["metadata"]["flow_run_id"])
    assert "job_type:incremental" in flow_run.tags and flow_run.name == f"{index} (incremental)"
    jobs_listed = cli(config_file, "job", "list", connector_id).stdout.splitlines()
    assert jobs_listed[0].split()[:2] == ["ID", "TYPE"]
    assert [line.split()[1] for line in jobs_listed[1:]] == ["incremental", "full", "full"]
    async with get_client() as client:  # one report key per connector: its history, 3 syncs
        reports = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[report_key(connector_id)]))
        )
    assert len(reports) == 3


async def _start_slow_sync(config_file, connectors, jobs, made, count=3000):
    index = f"svc-slow-{uuid.uuid4().hex[:8]}"
    made.append(index)
    connector_id = create_connector(config_file, "slow", index, count=40, pause=0, prefix="old")
    cli(config_file, "connector", "sync", connector_id)
    assert await poll_forever(config_file, once=True) == 0  # 40 "old" documents indexed
    connector = await connectors.get(connector_id)
    configuration = connector.configuration
    configuration["count"]["value"] = count
    configuration["pause"]["value"] = 0.05
    configuration["prefix"]["value"] = "new"
    await connectors.patch(connector_id, {"configuration": configuration, "sync_now": True})
    return connector_id, index


async def test_canceling_an_in_process_sync_ends_canceled_with_zero_deletes(service, config_file):
    es, connectors, jobs, made = service
    connector_id, index = await _start_slow_sync(config_file, connectors, jobs, made)
    loop = asyncio.create_task(poll_forever(config_file, once=True))

    async def running():
        job = await latest_job(jobs, connector_id)
        return job.status == JobStatus.IN_PROGRESS and job.doc["last_seen"] > job.doc["started_at"]

    await wait_for(running, what="the slow sync running")
    job = await latest_job(jobs, connector_id)
    # `--`: an Elasticsearch id may start with "-"
    assert "canceling" in cli(config_file, "job", "cancel", "--", job.id).stdout
    await asyncio.wait_for(loop, 30)
    job = await jobs.get(job.id)
    assert job.status == JobStatus.CANCELED
    assert job.doc["deleted_document_count"] == 0
    ids = await index_ids(es, index)
    assert {f"old-{i}" for i in range(40)} <= ids  # nothing the source did not produce was deleted
    assert len(ids) < 40 + 3000


async def test_cancelling_the_prefect_flow_run_ends_the_job_canceled(service, config_file):
    es, connectors, jobs, made = service
    connector_id, index = await _start_slow_sync(config_file, connectors, jobs, made)
    loop = asyncio.create_task(poll_forever(config_file, once=True))

    async def running():
        job = await latest_job(jobs, connector_id)
        return job.status == JobStatus.IN_PROGRESS and job.doc.get("metadata", {}).get(
            "flow_run_id"
        )

    await wait_for(running, what="the slow sync running in a flow run")
    job = await latest_job(jobs, connector_id)
    async with get_client() as client:
        await client.set_flow_run_state(
            job.doc["metadata"]["flow_run_id"], Cancelling(), force=True
        )
    await asyncio.wait_for(loop, 30)
    job = await jobs.get(job.id)
    assert job.status == JobStatus.CANCELED and job.doc["deleted_document_count"] == 0
    assert {f"old-{i}" for i in range(40)} <= await index_ids(es, index)


@pytest.mark.slow
async def test_sigterm_stops_the_poll_loop_and_the_running_job_ends_suspended(service, config_file):
    es, connectors, jobs, made = service
    connector_id, index = await _start_slow_sync(config_file, connectors, jobs, made)
    process = subprocess.Popen(
        [sys.executable, "-m", "elastic_ingest.flows.poll", "-c", config_file],
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    async def running():
        job = await latest_job(jobs, connector_id)
        return job.status == JobStatus.IN_PROGRESS and job.doc["last_seen"] > job.doc["started_at"]

    try:
        await wait_for(running, what="the slow sync running")
        await asyncio.sleep(1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = wait_ended(process, 60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    job = await latest_job(jobs, connector_id)
    assert job.status == JobStatus.SUSPENDED
    connector = await connectors.get(connector_id)
    assert connector.doc["last_sync_status"] == "suspended"
    assert {f"old-{i}" for i in range(40)} <= await index_ids(es, index)

    configuration = connector.configuration
    configuration["pause"]["value"] = 0
    await connectors.patch(connector_id, {"configuration": configuration})
    assert await poll_forever(config_file, once=True) == 0  # the suspended job is picked up again
    job = await jobs.get(job.id)
    assert job.status == JobStatus.COMPLETED
    assert job.doc["deleted_document_count"] == 40
    assert (await es.count(index=index))["count"] == 3000


async def test_two_poll_loops_run_each_requested_sync_exactly_once(service, config_file, tmp_path):
    es, connectors, jobs, made = service
    ids = []
    for i in range(4):
        folder = tmp_path / f"folder{i}"
        folder.mkdir()
        (folder / "file.txt").write_text(f"file {i}")
        index = f"svc-two-{i}-{uuid.uuid4().hex[:6]}"
        made.append(index)
        ids.append(create_connector(config_file, "directory", index, "--sync-now", path=folder))
    # Each loop may claim every job: a loop lists the jobs it can claim right after creating
    # its own, so with the default capacity (2) a job the other loop created after that
    # listing could be left for the next pass, and this test runs one pass per loop.
    config = yaml.safe_load(Path(config_file).read_text())
    config["service"]["max_concurrent_syncs"] = len(ids)
    Path(config_file).write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "elastic_ingest.flows.poll", "--once", "-c", config_file]
    loops = [subprocess.Popen(command, cwd=PROJECT, stderr=subprocess.PIPE) for _ in range(2)]
    for process in loops:
        _, stderr = wait_ended(process, 120)
        assert process.returncode == 0, stderr.decode()[-2000:]
    for connector_id in ids:
        connector_jobs = await jobs.for_connector(connector_id)
        assert [job.status for job in connector_jobs] == [JobStatus.COMPLETED]


async def test_the_example_source_loads_from_config_and_syncs_end_to_end(
    service, config_file, tmp_path
):
    es, connectors, jobs, made = service
    notes = tmp_path / "notes.jsonl"
    notes.write_text(
        '{"id": 1, "text": "buy milk", "updated": "2026-01-01"}\n'
        '{"id": 2, "text": "call bob", "updated": "2026-01-02"}\n'
    )
    assert "examples.notes_source:NotesDataSource" in cli(config_file, "--action", "list").stdout
    index = f"svc-notes-{uuid.uuid4().hex[:8]}"
    made.append(index)
    connector_id = create_connector(config_file, "notes", index, "--sync-now", path=notes)
    assert await poll_forever(config_file, once=True) == 0
    job = await latest_job(jobs, connector_id)
    assert job.status == JobStatus.COMPLETED and job.doc["indexed_document_count"] == 2
    await es.indices.refresh(index=index)
    assert (await es.get(index=index, id="2"))["_source"]["text"] == "call bob"


async def test_a_broken_connector_fails_alone_and_the_others_sync(service, config_file, tmp_path):
    es, connectors, jobs, made = service
    good_folder = tmp_path / "good"
    good_folder.mkdir()
    (good_folder / "ok.txt").write_text("fine")
    indices = [f"svc-good-{uuid.uuid4().hex[:6]}", f"svc-bad-{uuid.uuid4().hex[:6]}"]
    made.extend(indices)
    good_id = create_connector(config_file, "directory", indices[0], "--sync-now", path=good_folder)
    bad_id = create_connector(
        config_file, "directory", indices[1], "--sync-now", path=tmp_path / "gone"
    )
    assert await poll_forever(config_file, once=True) == 0
    good_job = await latest_job(jobs, good_id)
    bad_job = await latest_job(jobs, bad_id)
    assert good_job.status == JobStatus.COMPLETED and good_job.doc["indexed_document_count"] == 1
    assert bad_job.status == JobStatus.ERROR
    assert (
        bad_job.doc["error"]
        == f"SourceError: folder {str(tmp_path / 'gone')!r} does not exist or is not a folder"
    )
    connector = await connectors.get(bad_id)
    assert connector.status == "error" and "does not exist" in connector.doc["error"]


def test_an_unreachable_elasticsearch_is_one_line_and_exit_1(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"elasticsearch": {"hosts": ["http://127.0.0.1:9"]}}))
    for command in (
        [*CLI, "-c", str(config), "connector", "list"],
        [sys.executable, "-m", "elastic_ingest.flows.poll", "--once", "-c", str(config)],
    ):
        result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT, timeout=120)
        assert result.returncode == 1
        assert "Elasticsearch does not answer at http://127.0.0.1:9" in result.stderr
        assert "Traceback" not in result.stderr


async def test_connector_show_masks_secrets(service, config_file):
    connector_id = create_connector(
        config_file,
        "mongodb",
        "never-synced",
        database="d",
        collection="c",
        user="reader",
        password="hunter2-secret",
    )
    shown = cli(config_file, "connector", "show", connector_id).stdout
    assert "hunter2-secret" not in shown and "********" in shown and "reader" in shown
    uri_id = create_connector(
        config_file, "mongodb", "never-synced-2", database="d", collection="c",
        host="mongodb://reader:uri-secret@db:27017/",
    )  # fmt: skip
    shown = cli(config_file, "connector", "show", uri_id).stdout
    assert "uri-secret" not in shown and "mongodb://reader:********@db:27017/" in shown


def test_mistakes_typed_at_the_cli_exit_2_with_one_line(config_file):
    bad_name = cli(
        config_file, "connector", "create", "--service-type", "directory",
        "--index-name", "Bad Index!", "--set", "path=/tmp", check=False,
    )  # fmt: skip
    assert bad_name.returncode == 2 and "must be lowercase" in bad_name.stderr
    unknown = cli(config_file, "job", "list", "no-such-connector", check=False)
    assert unknown.returncode == 2
    assert "connector no-such-connector does not exist" in unknown.stderr
    typo = cli(
        config_file, "connector", "create", "--service-type", "directory",
        "--index-name", "fine", "--set", "path=/tmp", "--set", "colour=red", check=False,
    )  # fmt: skip
    assert typo.returncode == 2 and "colour: unknown field" in typo.stderr
    for result in (bad_name, unknown, typo):
        assert "Traceback" not in result.stderr
