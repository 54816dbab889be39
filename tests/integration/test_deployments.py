"""prefect.yaml for real: a private Prefect server, a process worker, `prefect deploy --all`,
and `sync/directory` run by the worker to a completed job."""

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from elastic_ingest.connectors.config import load_settings
from elastic_ingest.connectors.es.client import create_client
from elastic_ingest.connectors.es.indices import delete_indices
from elastic_ingest.connectors.poll import claim_jobs
from elastic_ingest.connectors.protocol import Job, JobStatus, ensure_protocol_indices, protocol_for
from elastic_ingest.connectors.protocol.connector import new_connector_document
from elastic_ingest.connectors.sources.directory import DirectoryDataSource
from tests.integration.private_prefect import PREFECT, PrivatePrefect, stop
from tests.integration.stack import elasticsearch_section
from tests.integration.test_partitions import make_tree
from tests.integration.waiting import wait_for

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def prefect_env(tmp_path):
    """A private Prefect server, so these deployments never leak into the shared stack."""
    server = PrivatePrefect(tmp_path / "prefect-home")
    try:
        server.start()
    except RuntimeError as error:
        pytest.fail(str(error))
    yield {**server.client_env, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    server.stop()


def prefect(env, *args):
    result = subprocess.run(
        [PREFECT, *args], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


async def final_flow_runs(api: str, flow_run_filter: dict) -> list[dict]:
    """The flow runs matching `flow_run_filter` once all have a final state."""

    def all_final():
        runs = httpx.post(f"{api}/flow_runs/filter", json=flow_run_filter).json()
        return runs if runs and all(run["state"]["type"] in FINAL_STATES for run in runs) else None

    return await wait_for(all_final, 60, what="final states of the flow runs", every=0.5)


async def final_flow_run(api: str, flow_run_id: str) -> dict:
    [run] = await final_flow_runs(api, {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    return run


async def run_deployment_job(env, jobs, connector_id: str, config_file) -> Job:
    """`prefect deployment run sync/directory` for one connector; its new job once it ended."""
    before = len(await jobs.for_connector(connector_id))
    prefect(
        env, "deployment", "run", "sync/directory",
        "--param", f"connector_id={connector_id}", "--param", f"config_file={config_file}",
    )  # fmt: skip

    async def new_job_ended():
        found = await jobs.for_connector(connector_id)
        finished = len(found) > before and found[0].status in (JobStatus.COMPLETED, JobStatus.ERROR)
        return found[0] if finished else None

    return await wait_for(
        new_job_ended, 180, what="the end of the deployment's sync run", every=0.5
    )


async def test_deploy_and_run_sync_directory_through_a_worker(prefect_env, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "elasticsearch": elasticsearch_section(),
                "protocol": {
                    "connectors_index": f".elastic-connectors-dep-{suffix}",
                    "jobs_index": f".elastic-connectors-sync-jobs-dep-{suffix}",
                },
                "sources": {
                    "slow": "tests.integration.slow_source:SlowDataSource",
                },
                "service": {"heartbeat_interval": 1},
            }
        )
    )
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.md").write_text(f"file {i}")
    settings = load_settings(config_file)
    es = create_client(settings.elasticsearch)
    index = f"dep-docs-{suffix}"
    worker = None
    try:
        await ensure_protocol_indices(es, settings.protocol)
        connectors, jobs = protocol_for(es, settings)
        schema = DirectoryDataSource.configuration_schema()
        schema["path"]["value"] = str(folder)
        document = new_connector_document("directory", index)
        document.update(configuration=schema, status="configured")
        connector_id = await connectors.create(document)

        prefect(prefect_env, "work-pool", "create", "elastic-ingest", "--type", "process")
        prefect(prefect_env, "--no-prompt", "deploy", "--all")
        deployments = prefect(prefect_env, "deployment", "ls")
        for name in ("sync/mongodb", "sync/s3", "sync/directory", "sync/connector", "poll/service"):
            assert name in deployments
        api = prefect_env["PREFECT_API_URL"]
        service = httpx.get(f"{api}/deployments/name/poll/service").json()
        # the run history shows syncs: passes run in the long-lived loop unless turned on
        assert [schedule["active"] for schedule in service["schedules"]] == [False]
        ui_settings = httpx.get(api.removesuffix("/api") + "/ui-settings").json()
        assert ui_settings["api_url"] == api  # the UI follows the server's port (not 4200)
        deployed = httpx.get(f"{api}/deployments/name/sync/directory").json()
        assert deployed["entrypoint"] == "elastic_ingest.flows.sync:sync"
        assert not deployed["pull_steps"]  # nothing tied to this checkout's path
        worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed with the worker
        # No pull step and no variable: the worker imports the installed package from its own
        # directory. The test's plugin source must be importable there, as a user's plugin
        # package would be installed next to elastic-ingest.
        worker = subprocess.Popen(  # ours; Prefect's own is run by test_installed_package
            [sys.executable, "-m", "elastic_ingest.app.cli", "worker", "--pool", "elastic-ingest"],
            env={**prefect_env, "PYTHONPATH": str(PROJECT)},
            cwd=tmp_path,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        prefect(
            prefect_env,
            "deployment",
            "run",
            "sync/directory",
            "--param",
            f"connector_id={connector_id}",
            "--param",
            f"config_file={config_file}",
        )

        async def job_finished():
            found = await jobs.for_connector(connector_id)
            return found and found[0].status in (JobStatus.COMPLETED, JobStatus.ERROR)

        await wait_for(job_finished, 120, what="the sync finished by the worker", every=0.5)
        [job] = await jobs.for_connector(connector_id)
        assert job.status == JobStatus.COMPLETED, job.doc.get("error")
        assert job.doc["indexed_document_count"] == 3
        assert job.doc["metadata"]["flow_run_url"].startswith(
            prefect_env["PREFECT_API_URL"].removesuffix("/api")
        )
        await es.indices.refresh(index=index)
        assert (await es.count(index=index))["count"] == 3
        # the job document is final a moment before Prefect records the run's final state
        flow_run = await final_flow_run(api, job.doc["metadata"]["flow_run_id"])
        assert flow_run["state"]["type"] == "COMPLETED"
        assert f"job:{job.id}" in flow_run["tags"] and flow_run["name"] == f"{index} (full)"

        # An incremental sync started the way a Prefect user starts one.
        (folder / "f3.md").write_text("file 3")
        prefect(
            prefect_env, "deployment", "run", "sync/directory",
            "--param", f"connector_id={connector_id}", "--param", "job_type=incremental",
            "--param", f"config_file={config_file}",
        )  # fmt: skip

        async def incremental_finished():
            latest = (await jobs.for_connector(connector_id))[0]
            finished = latest.status in (JobStatus.COMPLETED, JobStatus.ERROR)
            return latest if latest.id != job.id and finished else None

        latest = await wait_for(
            incremental_finished, 120, what="the incremental sync finished", every=0.5
        )
        assert (latest.doc["job_type"], latest.status) == ("incremental", JobStatus.COMPLETED)
        assert latest.doc["indexed_document_count"] == 1
        # it had a cursor to start from
        assert latest.doc["metadata"]["ran_as"] == "incremental"

        # A connector read in three parts: each part a flow run on the pool, the deletion once.
        make_tree(tmp_path / "tree")
        schema = DirectoryDataSource.configuration_schema()
        schema["path"]["value"] = str(tmp_path / "tree")
        schema["sync_partitions"]["value"] = 3
        parted = new_connector_document("directory", f"{index}-parts")
        parted.update(configuration=schema, status="configured")
        parted_id = await connectors.create(parted)
        for removed in (None, tmp_path / "tree" / "beta" / "sub0" / "beta-2.txt"):
            if removed is not None:
                removed.unlink()
            parted_job = await run_deployment_job(prefect_env, jobs, parted_id, config_file)
            assert parted_job.status == JobStatus.COMPLETED, parted_job.doc.get("error")
            assert len(parted_job.doc["metadata"]["partitions"]) == 3
            assert len(parted_job.doc["metadata"]["parts_done"]) == 3
            part_runs = await final_flow_runs(
                api, {"flow_runs": {"tags": {"all_": ["part", f"job:{parted_job.id}"]}}}
            )
            assert sorted(run["state"]["type"] for run in part_runs) == ["COMPLETED"] * 3
            assert {run["deployment_id"] for run in part_runs} == {deployed["id"]}
        assert parted_job.doc["deleted_document_count"] == 1
        await es.indices.refresh(index=f"{index}-parts")
        assert (await es.count(index=f"{index}-parts"))["count"] == 24

        # Under a pool limit the parts run inside the job's own run: a part waiting for a slot
        # that running jobs hold would never start.
        prefect(prefect_env, "work-pool", "set-concurrency-limit", "elastic-ingest", "4")
        (tmp_path / "tree" / "alpha" / "sub1" / "alpha-1.txt").unlink()
        limited_job = await run_deployment_job(prefect_env, jobs, parted_id, config_file)
        assert limited_job.status == JobStatus.COMPLETED, limited_job.doc.get("error")
        assert limited_job.doc["deleted_document_count"] == 1
        assert len(limited_job.doc["metadata"]["partitions"]) == 3
        assert "parts_done" not in limited_job.doc["metadata"]  # no part ran elsewhere
        prefect(prefect_env, "work-pool", "clear-concurrency-limit", "elastic-ingest")

        # A failed sync the poller launched, retried from Prefect once its folder exists, syncs
        # the connector again as a new job; the failed job keeps its end.
        missing = tmp_path / "later"
        schema = DirectoryDataSource.configuration_schema()
        schema["path"]["value"] = str(missing)
        broken = new_connector_document("directory", f"{index}-retry")
        broken.update(configuration=schema, status="configured")
        broken_id = await connectors.create(broken)
        failed_job_id = await jobs.create(await connectors.get(broken_id))
        [claimed] = [job for job in await claim_jobs(jobs, 10) if job.id == failed_job_id]
        output = prefect(
            prefect_env, "deployment", "run", "sync/directory",
            "--param", f"job_id={failed_job_id}", "--param", f"claim={claimed.claim}",
            "--param", f"connector_id={broken_id}", "--param", "service_type=directory",
            "--param", f"config_file={config_file}",
        )  # fmt: skip
        failed_run_id = output.split("/flow-run/")[1].split()[0].strip()

        async def failed_job_ended():
            return (await jobs.get(failed_job_id)).status == JobStatus.ERROR

        def run_state(run_id: str) -> dict:
            return httpx.get(f"{api}/flow_runs/{run_id}").json()["state"]

        await wait_for(failed_job_ended, 120, what="the failing sync ended", every=0.5)
        await wait_for(
            lambda: run_state(failed_run_id)["type"] == "FAILED", 120,
            what="the failing run ended Failed", every=0.5,
        )  # fmt: skip
        missing.mkdir()
        (missing / "now.md").write_text("here now")
        prefect(prefect_env, "flow-run", "retry", failed_run_id)  # it is AwaitingRetry now
        ended = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")

        def retried_run_ended():
            state = run_state(failed_run_id)
            return state if state["type"] in ended else None

        state = await wait_for(retried_run_ended, 180, what="the retried run ended", every=0.5)
        assert state["type"] == "COMPLETED", state["message"]
        retried, first = await jobs.for_connector(broken_id)
        assert first.id == failed_job_id and first.status == JobStatus.ERROR
        assert retried.status == JobStatus.COMPLETED and retried.doc["indexed_document_count"] == 1

        # A poll pass launches a plugin source's job (no sync/slow deployment) on the generic
        # sync/connector deployment, where the worker runs it.
        plugin = new_connector_document("slow", f"{index}-plugin")
        plugin.update(
            status="configured",
            sync_now=True,
            configuration={"count": {"value": 5}, "pause": {"value": 0}},
        )
        plugin_id = await connectors.create(plugin)
        polled = subprocess.run(
            [sys.executable, "-m", "elastic_ingest.flows.poll", "--once", "-c", str(config_file)],
            env=prefect_env, cwd=PROJECT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert polled.returncode == 0, polled.stderr[-2000:]

        async def plugin_finished():
            found = await jobs.for_connector(plugin_id)
            finished = found and found[0].status in (JobStatus.COMPLETED, JobStatus.ERROR)
            return found if finished else None

        [plugin_job] = await wait_for(
            plugin_finished, 120, what="the plugin sync finished", every=0.5
        )
        assert plugin_job.status == JobStatus.COMPLETED, plugin_job.doc.get("error")
        run_id = plugin_job.doc["metadata"]["flow_run_id"]
        run = httpx.get(f"{api}/flow_runs/{run_id}").json()
        generic = httpx.get(f"{api}/deployments/name/sync/connector").json()
        assert run["deployment_id"] == generic["id"]

        slow = new_connector_document("slow", f"{index}-slow")
        slow.update(
            status="configured",
            configuration={
                "count": {"value": 5000},
                "pause": {"value": 0.05},
                "prefix": {"value": "s"},
            },
        )
        slow_id = await connectors.create(slow)
        # A connector run under another type's deployment fails at once, saying where it runs.
        output = prefect(
            prefect_env, "deployment", "run", "sync/directory",
            "--param", f"connector_id={slow_id}", "--param", f"config_file={config_file}",
        )  # fmt: skip
        wrong_run_id = output.split("/flow-run/")[1].split()[0].strip()

        def mistaken_run_ended():
            state = run_state(wrong_run_id)
            return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED") else None

        state = await wait_for(mistaken_run_ended, 120, what="the mistaken run ended", every=0.5)
        assert state["type"] == "FAILED" and "is a 'slow' connector" in state["message"]
        assert await jobs.for_connector(slow_id) == []  # no job was created for it

        # A plugin source's connector runs on the generic deployment; cancelling that run from
        # Prefect (as the UI does) ends the job `canceled`.
        output = prefect(
            prefect_env, "deployment", "run", "sync/connector",
            "--param", f"connector_id={slow_id}", "--param", f"config_file={config_file}",
        )  # fmt: skip
        parent_run_id = output.split("/flow-run/")[1].split()[0].strip()

        async def slow_job(statuses):
            found = await jobs.for_connector(slow_id)
            return found[0] if found and found[0].status in statuses else None

        await wait_for(
            lambda: slow_job((JobStatus.IN_PROGRESS,)), 120, what="the slow sync started",
            every=0.5,
        )  # fmt: skip
        await asyncio.sleep(1)
        prefect(prefect_env, "flow-run", "cancel", parent_run_id)
        final = (JobStatus.CANCELED, JobStatus.SUSPENDED, JobStatus.ERROR, JobStatus.COMPLETED)
        job = await wait_for(lambda: slow_job(final), 60, what="the canceled sync ended", every=0.5)
        log_tail = (tmp_path / "worker.log").read_text()[-3000:]
        assert job.status == JobStatus.CANCELED, f"{job.doc.get('error')}\n{log_tail}"
        assert job.doc["deleted_document_count"] == 0
    finally:
        if worker is not None:
            stop(worker)
        await delete_indices(es, [settings.protocol.connectors_index, settings.protocol.jobs_index])
        await es.options(ignore_status=404).indices.delete(index=f"{index}*")
        await es.close()
