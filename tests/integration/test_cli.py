"""The `elastic-ingest` CLI as a user runs it: a subprocess with its own config file, against the
real stack. Mistakes exit 2 with one `error:` line; runtime failures exit 1."""

import datetime
import json
import os
import pty
import subprocess
import sys
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from elastic_ingest.connectors.protocol import JobStatus
from elastic_ingest.connectors.protocol.connector import new_connector_document
from elastic_ingest.flows.poll import poll_forever
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
        "service": {
            "heartbeat_interval": 0.5,
            "poll_interval": 1,
            "use_deployments": False,
            "max_concurrent_syncs": 4,
        },
        "protocol": {
            "connectors_index": f".elastic-connectors-cli-{suffix}",
            "jobs_index": f".elastic-connectors-sync-jobs-cli-{suffix}",
        },
        "sources": {
            "slow": "tests.integration.slow_source:SlowDataSource",
        },
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def cli(config_file, *args, check=True, env=None, stdin=subprocess.DEVNULL):
    result = subprocess.run(
        [*CLI, "-c", config_file, *args],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**os.environ, **(env or {})},
        stdin=stdin,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def cli_all(config_file, *commands):
    """Independent commands run at once, each in its own process; their results, in order."""
    processes = [
        subprocess.Popen(
            [*CLI, "-c", config_file, *command],
            cwd=PROJECT,
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for command in commands
    ]
    results = []
    for process in processes:
        out, err = wait_ended(process, 120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def refused(result, *fragments):
    """Exit 2, one `error:` line on stderr naming every fragment, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def create(config_file, service_type, index, *options, env=None, **values) -> str:
    """`connector create` with `--set field=value` per keyword; returns the new id."""
    pairs = [arg for field, value in values.items() for arg in ("--set", f"{field}={value}")]
    created = cli(
        config_file, "connector", "create", "--service-type", service_type,
        "--index-name", index, *pairs, *options, env=env,
    )  # fmt: skip
    return created.stdout.strip()


def shown(config_file, connector_id) -> dict:
    return json.loads(cli(config_file, "connector", "show", connector_id, "-o", "json").stdout)


def connector_ids(config_file) -> set[str]:
    listed = json.loads(cli(config_file, "connector", "list", "-o", "json").stdout)
    return {connector["id"] for connector in listed}


def folder_with(tmp_path, name, *files) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file in files:
        (folder / file).write_text(f"contents of {file}")
    return folder


def test_version_prints_the_installed_version():
    result = subprocess.run([*CLI, "--version"], capture_output=True, text=True, cwd=PROJECT)
    assert result.returncode == 0
    assert result.stdout.strip() == f"elastic-ingest {version('elastic-ingest')}"


async def test_update_changes_values_schedules_and_name_and_refuses_mistakes(
    service, config_file, tmp_path
):
    folder = folder_with(tmp_path, "docs", "a.md")
    connector_id = create(config_file, "directory", "cli-update", path=folder)

    updated = cli(
        config_file, "connector", "update", connector_id, "--set", "max_content_bytes=2048",
        "--set", "include=*.md,*.txt", "--schedule", "deletion=0 0 3 * * ?",
        "--schedule", "0 30 * * * ?", "--name", "Handbook", "--index-name", "cli-update-2",
    )  # fmt: skip
    assert f"connector {connector_id} updated" in updated.stdout
    cli(config_file, "connector", "update", connector_id, "--disable-schedule", "deletion")

    update = ("connector", "update", connector_id)
    results = cli_all(
        config_file,
        (*update, "--schedule", "full=0 0 25 * * ?"),
        (*update, "--schedule", "weekly=0 0 * * * ?"),
        (*update, "--set", "colour=red"),
        (*update, "--set", "max_content_bytes=lots"),
        (*update, "--index-name", "Bad Name"),
        update,
        ("connector", "update", "no-such-id", "--name", "x"),
        (*update, "--disable-schedule", "weekly"),
    )
    for result, fragment in zip(
        results,
        ["hours", "weekly", "colour: unknown field", "expected int", "--index-name",
         "nothing to update", "connector no-such-id does not exist", "invalid choice"],
        strict=True,
    ):  # fmt: skip
        refused(result, fragment)
    after = shown(config_file, connector_id)  # as the two updates left it; refusals wrote nothing
    assert after["configuration"]["max_content_bytes"] == 2048
    assert after["configuration"]["include"] == ["*.md", "*.txt"]
    assert after["configuration"]["path"] == str(folder)  # untouched values stay
    assert after["scheduling"]["full"] == {"enabled": True, "interval": "0 30 * * * ?"}
    assert after["scheduling"]["deletion"] == {"enabled": False, "interval": "0 0 3 * * ?"}
    assert (after["name"], after["index_name"]) == ("Handbook", "cli-update-2")

    # A connector with the seed-era single schedule gets per-kind schedules, its full one kept.
    _, connectors, _, _ = service
    legacy = {"enabled": True, "interval": "0 0 4 * * ?"}
    await connectors.patch(connector_id, {"scheduling": None})
    await connectors.patch(connector_id, {"scheduling": legacy})
    cli(config_file, "connector", "update", connector_id, "--schedule", "incremental=0 0 * * * ?")
    scheduling = shown(config_file, connector_id)["scheduling"]
    assert scheduling["full"] == legacy and "interval" not in scheduling
    assert scheduling["incremental"] == {"enabled": True, "interval": "0 0 * * * ?"}


async def test_set_stores_values_with_the_field_type_and_secret_references(service, config_file):
    es, connectors, jobs, made = service
    connector_id = create(
        config_file, "mongodb", "cli-mongo", database="shop", collection="products",
        batch_size="500", tls="true", password="prefect-secret:mongo-password",
    )  # fmt: skip
    configuration = shown(config_file, connector_id)["configuration"]
    assert configuration["batch_size"] == 500 and configuration["tls"] is True
    assert configuration["password"] == "********"

    cli(config_file, "connector", "update", connector_id, "--set", "batch_size=250")
    assert shown(config_file, connector_id)["configuration"]["batch_size"] == 250
    stored = await connectors.get(connector_id)  # what a sync reads: the reference, unresolved
    assert stored.configuration["password"]["value"] == "prefect-secret:mongo-password"
    reference, boolean = cli_all(
        config_file,
        ("connector", "update", connector_id, "--set", "user=prefect-secret:x"),
        ("connector", "update", connector_id, "--set", "tls=maybe"),
    )
    refused(reference, "user", "only for sensitive fields")
    refused(boolean, "tls: expected true or false")


async def test_values_file_expands_environment_variables(service, config_file, tmp_path):
    folder = folder_with(tmp_path, "handbook", "a.md")
    values = tmp_path / "values.yml"
    values.write_text("path: ${CLI_TEST_FOLDER}\nmax_content_bytes: ${CLI_TEST_MAX:-4096}\n")
    env = {"CLI_TEST_FOLDER": str(folder)}
    connector_id = create(config_file, "directory", "cli-env", "--values-file", values, env=env)
    configuration = shown(config_file, connector_id)["configuration"]
    assert configuration["path"] == str(folder) and configuration["max_content_bytes"] == 4096

    unset = tmp_path / "unset.yml"
    unset.write_text("path: ${CLI_TEST_NEVER_SET}\n")
    assert "CLI_TEST_NEVER_SET" not in os.environ
    command = ("connector", "create", "--service-type", "directory", "--index-name", "cli-env-2")
    result = cli(config_file, *command, "--values-file", unset, check=False)
    refused(result, "path", "CLI_TEST_NEVER_SET")
    result = cli(config_file, *command, "--set", "path=${CLI_TEST_NEVER_SET}", check=False)
    refused(result, "path", "CLI_TEST_NEVER_SET")
    assert connector_ids(config_file) == {connector_id}


async def test_an_index_another_connector_targets_is_refused(service, config_file, tmp_path):
    folder = folder_with(tmp_path, "docs", "a.md")
    first = create(config_file, "directory", "cli-shared", path=folder)
    command = ("connector", "create", "--service-type", "directory", "--index-name", "cli-shared")
    refused(cli(config_file, *command, "--set", f"path={folder}", check=False), first)
    second = create(config_file, "directory", "cli-own", path=folder)
    update = ("connector", "update", second, "--index-name", "cli-shared")
    refused(cli(config_file, *update, check=False), "is also the target of connector", first)
    assert connector_ids(config_file) == {first, second}


async def test_create_check_refuses_a_missing_folder_and_creates_nothing(
    service, config_file, tmp_path
):
    missing = tmp_path / "not-there"
    command = ("connector", "create", "--service-type", "directory", "--index-name", "cli-check")
    result = cli(config_file, *command, "--set", f"path={missing}", "--check", check=False)
    refused(result, "--check", "does not exist")
    assert connector_ids(config_file) == set()
    folder = folder_with(tmp_path, "there", "a.md")
    created = cli(config_file, *command, "--set", f"path={folder}", "--check")
    assert connector_ids(config_file) == {created.stdout.strip()}


async def test_sync_wait_follows_the_job_to_its_end(service, config_file, tmp_path):
    es, connectors, jobs, made = service
    good_index, bad_index = f"cli-good-{uuid.uuid4().hex[:6]}", f"cli-bad-{uuid.uuid4().hex[:6]}"
    made += [good_index, bad_index]
    good = create(config_file, "directory", good_index, path=folder_with(tmp_path, "g", "a", "b"))
    doomed = folder_with(tmp_path, "doomed", "c")
    bad = create(config_file, "directory", bad_index, "--check", path=doomed)
    (doomed / "c").unlink()
    doomed.rmdir()  # removed after creation: the sync fails

    def follow(connector_id):
        command = ["connector", "sync", connector_id, "--wait", "--timeout", "90"]
        return subprocess.Popen(
            [*CLI, "-c", config_file, *command], cwd=PROJECT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    async def every_job_created():
        return all([await jobs.for_connector(c) for c in waits])

    waits = {connector_id: follow(connector_id) for connector_id in (good, bad)}
    try:
        await wait_for(every_job_created, 30, what="a job created by each sync --wait")
        assert await poll_forever(config_file, once=True) == 0  # runs both pending jobs
    finally:
        ended = {connector_id: wait_ended(process, 60) for connector_id, process in waits.items()}

    [good_job] = await jobs.for_connector(good)
    out, err = ended[good]
    assert waits[good].returncode == 0, err
    assert out.strip().splitlines()[-1] == (
        f"job {good_job.id}: completed (indexed 2, deleted 0, unchanged 0)"
    )
    assert good_job.status == JobStatus.COMPLETED

    [bad_job] = await jobs.for_connector(bad)
    out, err = ended[bad]
    assert waits[bad].returncode == 1
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"job {bad_job.id}: error (indexed 0, deleted 0")
    assert "does not exist" in last
    assert err.strip() == f"error: job {bad_job.id} ended error"

    listing = cli(config_file, "job", "list", bad).stdout.splitlines()
    assert listing[0].split()[-1] == "ERROR"
    error = bad_job.doc["error"]
    assert len(error) > 60 and listing[1].endswith(error[:60])


async def test_incremental_syncs_follow_a_new_timestamp_field_at_once_and_say_how_they_ran(
    service, config_file, mongo_collection
):
    _, _, jobs, made = service
    index = f"cli-incremental-{uuid.uuid4().hex[:6]}"
    made.append(index)
    now = datetime.datetime.now(datetime.UTC)
    await mongo_collection.insert_many([{"_id": i, "changed": now} for i in range(3)])
    connector_id = create(
        config_file, "mongodb", index, host=os.environ["MONGODB_URL"],
        database=mongo_collection.database.name, collection=mongo_collection.name,
    )  # fmt: skip
    sync = ("connector", "sync", connector_id, "--type", "incremental")
    refused(cli(config_file, *sync, check=False), "cannot run incremental", "timestamp_field")

    cli(config_file, "connector", "update", connector_id, "--set", "timestamp_field=changed")
    assert shown(config_file, connector_id)["features"]["incremental_sync"] == {"enabled": True}

    async def pending():
        return [j for j in await jobs.for_connector(connector_id) if j.status == "pending"]

    async def synced_line() -> str:
        command = [*CLI, "-c", config_file, *sync, "--wait", "--timeout", "90"]
        waiting = subprocess.Popen(
            command, cwd=PROJECT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            await wait_for(pending, 30, what="a pending job created by sync --wait")
            assert await poll_forever(config_file, once=True) == 0
        finally:
            out, err = wait_ended(waiting, 60)
        assert waiting.returncode == 0, err
        return out.strip().splitlines()[-1]

    first = await synced_line()  # the new field: no cursor from it yet
    assert "(indexed 3, " in first and "ran as full: no sync cursor to start from" in first
    await mongo_collection.insert_one({"_id": 3, "changed": now + datetime.timedelta(hours=1)})
    second = await synced_line()
    assert "(indexed 1, " in second and "ran as" not in second


async def test_sync_wait_without_a_poll_loop_says_so_once_and_what_to_start(
    service, config_file, tmp_path
):
    connector_id = create(config_file, "directory", "cli-unpolled", path=tmp_path)
    waited = cli(config_file, "connector", "sync", connector_id, "--wait", "--timeout", "9",
                 check=False)  # fmt: skip
    assert waited.returncode == 1 and "did not end within 9 s" in waited.stderr
    lines = waited.stdout.strip().splitlines()
    assert len([line for line in lines if "pending, waiting for a poll loop" in line]) == 1
    [hint] = [line for line in lines if line.startswith("no poll loop has checked in")]
    assert f"connector {connector_id} yet" in hint and "`elastic-ingest`" in hint


async def test_sync_wait_shows_progress_as_the_job_reads(service, config_file):
    _, _, jobs, made = service
    index = f"cli-progress-{uuid.uuid4().hex[:6]}"
    made.append(index)
    connector_id = create(config_file, "slow", index, count=400, pause=0.15)  # ~6 s
    command = [*CLI, "-c", config_file, "connector", "sync", connector_id, "--wait"]
    waiting = subprocess.Popen(
        command, cwd=PROJECT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        await wait_for(
            lambda: jobs.for_connector(connector_id), 30, what="a job created by sync --wait"
        )
        assert await poll_forever(config_file, once=True) == 0
    finally:
        out, err = wait_ended(waiting, 60)
    assert waiting.returncode == 0, err
    reads = [
        int(line.split(", read ")[1].split(",")[0].split(" ")[0].replace(",", ""))
        for line in out.splitlines()
        if ": in_progress, read " in line
    ]  # a pipe gets plain lines, one every two seconds
    assert len(reads) >= 2 and reads == sorted(reads) and 0 < reads[-1] < 400, out
    assert "documents/s" in out and out.strip().splitlines()[-1].endswith("unchanged 0)")


async def test_list_and_show_print_json_with_secrets_masked(service, config_file, tmp_path):
    folder = folder_with(tmp_path, "docs", "a.md")
    directory_id = create(config_file, "directory", "cli-json", path=folder)
    mongo_id = create(
        config_file, "mongodb", "cli-json-2", database="d", collection="c",
        password="hunter2-secret", host="mongodb://reader:uri-secret@db:27017/",
    )  # fmt: skip
    requested = cli(config_file, "connector", "sync", directory_id, "--type", "deletion")
    job_id = requested.stdout.split()[3]

    results = cli_all(
        config_file,
        ("connector", "list", "-o", "json"),
        ("connector", "show", mongo_id, "--output", "json"),
        ("job", "list", directory_id, "-o", "json"),
        ("job", "show", "-o", "json", "--", job_id),  # `--`: an id may start with "-"
    )
    assert [result.returncode for result in results] == [0, 0, 0, 0]
    outputs = [result.stdout for result in results]
    connectors, mongo, jobs, job = (json.loads(output) for output in outputs)
    assert {c["id"] for c in connectors} == {directory_id, mongo_id}
    assert mongo["configuration"]["password"] == "********"
    assert mongo["configuration"]["host"] == "mongodb://reader:********@db:27017/"
    for output in outputs:
        assert "hunter2-secret" not in output and "uri-secret" not in output
    assert [(j["id"], j["job_type"], j["status"]) for j in jobs] == [
        (job_id, "deletion", "pending")
    ]
    assert (job["id"], job["connector"]["id"]) == (job_id, directory_id)


async def test_delete_removes_the_connector_its_jobs_and_index(service, config_file, tmp_path):
    es, connectors, jobs, made = service
    index = f"cli-delete-{uuid.uuid4().hex[:6]}"
    made += [index]
    connector_id = create(config_file, "directory", index, path=folder_with(tmp_path, "d", "a"))
    other_id = await connectors.create(  # another connector, with a job, that must stay
        new_connector_document("directory", f"{index}-other", configuration={"path": "/srv"})
    )
    other_job_id = await jobs.create(await connectors.get(other_id))
    request = ("connector", "sync", connector_id, "--type", "deletion")
    ran = cli(config_file, "job", "run", "--", cli(config_file, *request).stdout.split()[3])
    assert "completed" in ran.stdout and await es.indices.exists(index=index)
    pending_id = cli(config_file, *request).stdout.split()[3]
    claimed = await jobs.claim(await jobs.get(pending_id))  # a worker starts it

    not_asked, running = cli_all(
        config_file,
        ("connector", "delete", connector_id),  # stdin is not a terminal
        ("connector", "delete", connector_id, "--yes"),
    )
    refused(not_asked, "--yes")
    refused(running, "running job", pending_id)
    await jobs.finish(claimed, JobStatus.ERROR, error="stopped by the test")

    deleted = cli(config_file, "connector", "delete", connector_id, "--with-index", "--yes")
    assert deleted.stdout.strip() == f"deleted connector {connector_id}, 2 job(s), index {index}"
    connector_shown, job_shown = cli_all(
        config_file, ("connector", "show", connector_id), ("job", "show", "--", pending_id)
    )
    refused(connector_shown, "does not exist")
    refused(job_shown, "does not exist")
    assert not await es.indices.exists(index=index)
    assert connector_ids(config_file) == {other_id}  # the other connector and its job stay
    assert [job.id for job in await jobs.for_connector(other_id)] == [other_job_id]


async def test_delete_on_a_terminal_asks_first(service, config_file, tmp_path):
    connector_id = create(config_file, "directory", "cli-ask", path=folder_with(tmp_path, "d"))

    def delete_answering(answer: str):
        controller, terminal = pty.openpty()
        try:
            os.write(controller, answer.encode())
            return cli(config_file, "connector", "delete", connector_id, check=False,
                       stdin=terminal)  # fmt: skip
        finally:
            os.close(controller)
            os.close(terminal)

    declined = delete_answering("n\n")
    assert declined.returncode == 1
    assert f"delete connector {connector_id}? [y/N]" in declined.stderr
    assert connector_ids(config_file) == {connector_id}
    accepted = delete_answering("y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert connector_ids(config_file) == set()
