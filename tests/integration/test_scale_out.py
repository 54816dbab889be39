"""Scale-out on a PostgreSQL-backed Prefect server: two warm workers (`elastic-ingest worker`,
each sync a fork of a warm process) as two "machines" (own
working directory, own ELASTIC_INGEST_HOSTNAME, which a job records as `worker_hostname`), a
work pool with a concurrency limit, two poll loops and a `poll/service` run at once, 12
connectors asking for a sync; then one machine is lost in the middle of a sync."""

import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml

from devstack import postgres
from elastic_ingest.connectors.config import load_settings
from elastic_ingest.connectors.es.client import create_client
from elastic_ingest.connectors.es.indices import delete_indices
from elastic_ingest.connectors.protocol import JobStatus, ensure_protocol_indices, protocol_for
from elastic_ingest.connectors.protocol.connector import new_connector_document
from elastic_ingest.connectors.sources.directory import DirectoryDataSource
from elastic_ingest.deployments.register import POOL, PREFECT_FILE, SYNC_SLOTS
from tests.integration.private_prefect import PREFECT, PrivatePrefect, stop
from tests.integration.stack import elasticsearch_section
from tests.integration.waiting import wait_for

PROJECT = Path(__file__).resolve().parents[2]
# Four times the pool's limit: jobs queue for slots, both workers take some, none runs twice.
CONNECTORS = 12
POOL_LIMIT = 3
MACHINES = ("machine-a", "machine-b")
pytestmark = pytest.mark.slow


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (a worker's flow-run processes), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_machine(worker: subprocess.Popen) -> None:
    """A machine lost: the worker and every sync process it started die at once (SIGKILL)."""
    for pid in [worker.pid, *descendants(worker.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.wait()


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def run_story(api: str, job) -> str:
    """A failed job's error, its flow run's state and last log lines (what went wrong where)."""
    run_id = (job.doc.get("metadata") or {}).get("flow_run_id")
    if not run_id:
        return f"{job.doc.get('error')} (no flow run recorded)"
    run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()
    logs = httpx.post(
        f"{api}/logs/filter",
        json={"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200},
        timeout=30,
    ).json()
    lines = "\n".join(f"{log['timestamp']} {log['message'][:300]}" for log in logs[-25:])
    state = run["state"]
    return f"{job.doc.get('error')}\nflow run {state['type']}: {state['message']}\n{lines}"


def forget_earlier_runs(server: PrivatePrefect) -> None:
    """Delete what an earlier test of this module left on the shared server: its flow runs (a
    run of a lost machine stays Running, holding a slot of the pool's limit, which a poll loop
    waits for) and the global limit every sync takes a slot of (the lost machine's syncs still
    hold theirs until their leases expire); `deploy --max-syncs` makes the limit again."""
    runs = httpx.post(f"{server.api}/flow_runs/filter", json={"limit": 200}, timeout=30)
    runs.raise_for_status()
    for run in runs.json():
        httpx.delete(f"{server.api}/flow_runs/{run['id']}", timeout=30).raise_for_status()
    httpx.delete(f"{server.api}/v2/concurrency_limits/{SYNC_SLOTS}", timeout=30)  # 404: none


@pytest.fixture(scope="module")
def prefect_on_postgres(tmp_path_factory):
    """A private Prefect server on a fresh PostgreSQL database of the stack's PostgreSQL."""
    try:
        postgres.up()
    except Exception as error:
        pytest.fail(f"the stack's PostgreSQL did not start: {error}")
    database = f"prefect_scale_{uuid.uuid4().hex[:8]}"
    home = tmp_path_factory.mktemp("prefect-home")
    server = PrivatePrefect(home, postgres.fresh_database(database))
    try:
        server.start(timeout=180)
    except RuntimeError as error:
        pytest.fail(str(error))
    yield server
    server.stop()
    postgres.drop_database(database)


async def test_many_workers_run_every_job_exactly_once_and_survive_a_lost_machine(
    prefect_on_postgres, tmp_path
):
    server = prefect_on_postgres
    suffix = uuid.uuid4().hex[:8]
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "elasticsearch": elasticsearch_section(),
                "protocol": {
                    "connectors_index": f".elastic-connectors-scale-{suffix}",
                    "jobs_index": f".elastic-connectors-sync-jobs-scale-{suffix}",
                },
                "sources": {
                    "slow": "tests.integration.slow_source:SlowDataSource",
                },
                "service": {
                    "poll_interval": 2,
                    "heartbeat_interval": 2,
                    "stale_job_seconds": 20,
                    "use_deployments": True,
                },
            }
        )
    )
    env = {**server.client_env, "PREFECT_WORKER_QUERY_SECONDS": "1", "PYTHONPATH": str(PROJECT)}
    env.pop("ELASTIC_INGEST_HOSTNAME", None)
    settings = load_settings(config_file)
    es = create_client(settings.elasticsearch)
    indices = [f"scale-docs-{suffix}-{i}" for i in range(CONNECTORS)] + [f"scale-slow-{suffix}"]
    processes: dict[str, subprocess.Popen] = {}
    try:
        await ensure_protocol_indices(es, settings.protocol)
        connectors, jobs = protocol_for(es, settings)
        deployed = subprocess.run(
            [sys.executable, "-m", "elastic_ingest.app.cli", "deploy", "--max-syncs",
             str(POOL_LIMIT)],
            env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        pool = httpx.get(f"{server.api}/work_pools/{POOL}", timeout=30).json()
        assert pool["concurrency_limit"] == POOL_LIMIT

        ids = []
        for i, index in enumerate(indices[:CONNECTORS]):
            folder = tmp_path / "folders" / str(i)
            folder.mkdir(parents=True)
            for n in range(2):
                (folder / f"doc{n}.md").write_text(f"connector {i} document {n}")
            schema = DirectoryDataSource.configuration_schema()
            schema["path"]["value"] = str(folder)
            document = new_connector_document("directory", index)
            document.update(configuration=schema, status="configured", sync_now=True)
            ids.append(await connectors.create(document))

        for machine in MACHINES:
            home = tmp_path / machine
            home.mkdir()
            log = open(home / "worker.log", "wb")  # noqa: SIM115 - closed with the process
            processes[machine] = subprocess.Popen(
                [sys.executable, "-m", "elastic_ingest.app.cli", "worker", "--pool", POOL,
                 "--name", machine],
                env={**env, "ELASTIC_INGEST_HOSTNAME": machine}, cwd=home,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            poll_log = open(home / "poll.log", "wb")  # noqa: SIM115 - closed with the process
            processes[f"poll-{machine}"] = subprocess.Popen(
                [sys.executable, "-m", "elastic_ingest.flows.poll", "-c", str(config_file)],
                env={**env, "ELASTIC_INGEST_HOSTNAME": f"poller-{machine}"}, cwd=PROJECT,
                stdout=poll_log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        service_run = subprocess.run(
            [PREFECT, "deployment", "run", "poll/service", "--param",
             f"config_file={config_file}"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert service_run.returncode == 0, service_run.stdout + service_run.stderr

        done: list = []

        async def every_connector_synced():
            done[:] = [
                found
                for connector_id in ids
                if (found := await jobs.for_connector(connector_id))
                and found[0].status in (JobStatus.COMPLETED, JobStatus.ERROR)
            ]
            return len(done) == CONNECTORS

        await wait_for(
            every_connector_synced, 300, what="every connector synced", every=0.5,
            detail=lambda: f"{len(done)} of {CONNECTORS} synced",
        )  # fmt: skip

        ran_on, finished = set(), []
        for connector_id, index in zip(ids, indices, strict=False):
            history = await jobs.for_connector(connector_id)
            assert len(history) == 1, f"{connector_id}: {len(history)} jobs for one request"
            [job] = history
            finished.append(job)
            assert job.status == JobStatus.COMPLETED, run_story(server.api, job)
            assert job.doc["indexed_document_count"] == 2
            ran_on.add(job.doc["worker_hostname"])
            await es.indices.refresh(index=index)
            assert (await es.count(index=index))["count"] == 2
        assert ran_on == set(MACHINES), f"runs were not spread over both workers: {ran_on}"
        intervals = [  # from the moment a sync had its slot and began, to its end
            (
                datetime.fromisoformat(job.doc["metadata"]["sync_started_at"]),
                datetime.fromisoformat(job.doc["completed_at"]),
            )
            for job in finished
        ]
        assert max_overlap(intervals) <= POOL_LIMIT
        waits = sorted(
            (datetime.fromisoformat(job.doc["metadata"]["sync_started_at"])
             - datetime.fromisoformat(job.doc["started_at"])).total_seconds()
            for job in finished
        )  # fmt: skip
        spans = sorted((end - start).total_seconds() for start, end in intervals)
        print(f"claim -> sync began: median {waits[len(waits) // 2]:.1f}s, max {waits[-1]:.1f}s; "
              f"sync: median {spans[len(spans) // 2]:.1f}s, max {spans[-1]:.1f}s")  # fmt: skip

        # A machine is lost in the middle of a sync: its job ends `error` through the stale-job
        # rule, its flow run is marked Crashed, and the next scheduled sync runs elsewhere.
        slow = new_connector_document("slow", indices[-1])
        slow.update(
            status="configured",
            sync_now=True,
            configuration={
                "count": {"value": 2000},
                "pause": {"value": 0.25},  # 50 s unless changed
                "prefix": {"value": "s"},
            },
        )
        slow_id = await connectors.create(slow)

        async def slow_sync_started():
            found = await jobs.for_connector(slow_id)
            started = (
                found
                and found[0].status == JobStatus.IN_PROGRESS
                and found[0].doc["worker_hostname"] in MACHINES  # its sync began on a worker
            )
            return found if started else None

        [lost] = await wait_for(slow_sync_started, 120, what="the slow sync started", every=0.5)
        victim = lost.doc["worker_hostname"]
        kill_machine(processes.pop(victim))
        await connectors.patch(  # faster from now on, and due every 5 seconds
            slow_id,
            {
                "configuration": {**slow["configuration"], "pause": {"value": 0}},
                "scheduling": {"full": {"enabled": True, "interval": "*/5 * * * * ?"}},
            },
        )
        lost_id = lost.id

        async def lost_job_ended():
            job = await jobs.get(lost_id)
            return None if job.status == JobStatus.IN_PROGRESS else job

        lost = await wait_for(lost_job_ended, 180, what="the lost machine's job failed", every=0.5)
        assert lost.status == JobStatus.ERROR
        assert "no heartbeat" in lost.doc["error"]
        run_id = lost.doc["metadata"]["flow_run_id"]
        state: dict = {}

        def lost_run_crashed():
            state.update(httpx.get(f"{server.api}/flow_runs/{run_id}").json()["state"])
            return state["type"] == "CRASHED"

        await wait_for(
            lost_run_crashed, 180, what="the lost run Crashed", every=0.5,
            detail=lambda: f"the lost run stays {state.get('type')}",
        )  # fmt: skip

        async def completed_after_the_loss():
            return [
                job
                for job in await jobs.for_connector(slow_id)
                if job.id != lost_id and job.status == JobStatus.COMPLETED
            ]

        later = await wait_for(
            completed_after_the_loss, 180, what="a scheduled sync completed after the loss",
            every=0.5,
        )  # fmt: skip
        latest = later[-1]  # the first one to complete after the loss (newest first)
        survivor = next(machine for machine in MACHINES if machine != victim)
        assert latest.doc["worker_hostname"] == survivor
        await es.indices.refresh(index=indices[-1])
        assert (await es.count(index=indices[-1]))["count"] == 2000
    finally:
        for process in processes.values():
            stop(process)
        await delete_indices(
            es, [*indices, settings.protocol.connectors_index, settings.protocol.jobs_index]
        )
        await es.close()


def run_process_of(api: str, flow_run_id: str) -> tuple[int, int]:
    """(pid, parent pid) of the process running `flow_run_id`, as its worker recorded it."""
    recorded = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=30).json()
    pid = int(recorded["infrastructure_pid"].rsplit(":", 1)[-1])  # "[host:]pid"
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return pid, parent


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


async def test_a_sync_killed_among_ten_on_one_warm_worker_fails_alone(
    prefect_on_postgres, tmp_path
):
    """Ten syncs at once on one `elastic-ingest worker`, each a fork of its warm process; one
    is SIGKILLed mid-sync: the nine others complete, the tenth ends `error` with its run's
    reason within a few poll passes (not after the stale-job timeout), and its connector
    syncs again."""
    server = prefect_on_postgres
    suffix = uuid.uuid4().hex[:8]
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "elasticsearch": elasticsearch_section(),
                "protocol": {
                    "connectors_index": f".elastic-connectors-warm-{suffix}",
                    "jobs_index": f".elastic-connectors-sync-jobs-warm-{suffix}",
                },
                "sources": {"slow": "tests.integration.slow_source:SlowDataSource"},
                "service": {
                    "poll_interval": 1,
                    "heartbeat_interval": 1,
                    "stale_job_seconds": 600,  # the kill must be noticed another way
                    "use_deployments": True,
                },
            }
        )
    )
    env = {**server.client_env, "PREFECT_WORKER_QUERY_SECONDS": "1", "PYTHONPATH": str(PROJECT)}
    forget_earlier_runs(server)
    settings = load_settings(config_file)
    es = create_client(settings.elasticsearch)
    indices = [f"warm-slow-{suffix}-{i}" for i in range(10)]
    processes: list[subprocess.Popen] = []
    try:
        await ensure_protocol_indices(es, settings.protocol)
        connectors, jobs = protocol_for(es, settings)
        deployed = subprocess.run(
            [sys.executable, "-m", "elastic_ingest.app.cli", "deploy", "--max-syncs", "10"],
            env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        ids = []
        for i, index in enumerate(indices):
            document = new_connector_document("slow", index)
            document.update(
                status="configured",
                sync_now=True,
                configuration={
                    "count": {"value": 400},
                    "pause": {"value": 0.5},  # 20 s at least: all ten run at once
                    "prefix": {"value": f"c{i}"},
                },
            )
            ids.append(await connectors.create(document))
        log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed with the process
        worker = subprocess.Popen(
            [sys.executable, "-m", "elastic_ingest.app.cli", "worker", "--pool", POOL,
             "--limit", "10"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(worker)
        poll_log = open(tmp_path / "poll.log", "wb")  # noqa: SIM115 - closed with the process
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "elastic_ingest.flows.poll", "-c", str(config_file)],
                env=env,
                cwd=PROJECT,
                stdout=poll_log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )

        running: list = []

        async def all_running():
            running[:] = [
                found[0]
                for connector_id in ids
                if (found := await jobs.for_connector(connector_id, size=1))
                and found[0].status == JobStatus.IN_PROGRESS
                and (found[0].doc.get("metadata") or {}).get("flow_run_id")  # its run began
            ]
            return len(running) == len(ids)

        await wait_for(
            all_running, 240, what="10 syncs running at once", every=0.5,
            detail=lambda: f"{len(running)} of 10 syncs running at once",
        )  # fmt: skip
        victim = running[3]
        pid, parent = run_process_of(server.api, victim.doc["metadata"]["flow_run_id"])
        assert "elastic_ingest.workers.forkserver" in command_line(parent)  # a fork, warm
        os.kill(pid, signal.SIGKILL)

        ended: list = []

        async def all_ended():
            ended[:] = [
                found[0]
                for connector_id in ids
                if (found := await jobs.for_connector(connector_id, size=1))
                and found[0].status in (JobStatus.COMPLETED, JobStatus.ERROR)
            ]
            return len(ended) == len(ids)

        await wait_for(
            all_ended, 180, what="10 syncs ended", every=0.5,
            detail=lambda: f"{len(ended)} of 10 syncs ended",
        )  # fmt: skip
        by_id = {job.id: job for job in ended}
        killed = by_id.pop(victim.id)
        assert killed.status == JobStatus.ERROR, killed.doc
        assert "ended Crashed" in killed.doc["error"] and "-9" in killed.doc["error"], killed.doc
        for job in by_id.values():
            assert job.status == JobStatus.COMPLETED, run_story(server.api, job)
            assert job.doc["indexed_document_count"] == 400

        await connectors.patch(  # unblocked: it syncs again, on the same worker
            victim.connector_id,
            {"sync_now": True, "configuration": {"count": {"value": 400},
                                                 "pause": {"value": 0},
                                                 "prefix": {"value": "again"}}},
        )  # fmt: skip

        async def synced_again():
            latest = (await jobs.for_connector(victim.connector_id, size=1))[0]
            finished = latest.status in (JobStatus.COMPLETED, JobStatus.ERROR)
            return latest if latest.id != victim.id and finished else None

        latest = await wait_for(
            synced_again, 120, what="the killed sync's connector synced again", every=0.5
        )
        assert latest.status == JobStatus.COMPLETED, run_story(server.api, latest)
        assert worker.poll() is None  # the worker lives on
    finally:
        for process in processes:
            stop(process)
        await delete_indices(
            es, [*indices, settings.protocol.connectors_index, settings.protocol.jobs_index]
        )
        await es.close()


CONTAINER_POOLS = {  # docs/containers.md: the work pool block of each variant
    "docker": {
        "name": "elastic-ingest-docker",
        "work_queue_name": "default",
        "job_variables": {
            "image": "elastic-ingest:0.1.0",
            "image_pull_policy": "IfNotPresent",
            "env": {"ELASTICSEARCH_URL": "http://elasticsearch:9200"},
            "networks": ["elastic"],
        },
    },
    "kubernetes": {
        "name": "elastic-ingest-k8s",
        "work_queue_name": "default",
        "job_variables": {
            "image": "registry.example.com/elastic-ingest:0.1.0",
            "namespace": "search",
            "env": {"ELASTICSEARCH_URL": "https://es-http.search.svc:9200"},
            "cpu_request": "1",
            "memory_limit": "512Mi",
        },
    },
}


@pytest.mark.parametrize("pool_type", sorted(CONTAINER_POOLS))
def test_the_container_variants_of_prefect_yaml_deploy(prefect_on_postgres, tmp_path, pool_type):
    """Docker and Kubernetes pools: the packaged prefect.yaml with only its work pool block
    changed deploys every deployment there (nothing is run: no container engine here)."""
    packaged = yaml.safe_load(PREFECT_FILE.read_text())
    pool = CONTAINER_POOLS[pool_type]
    for deployment in packaged["deployments"]:
        deployment["work_pool"] = pool
    variant = tmp_path / f"prefect.{pool_type}.yaml"
    variant.write_text(yaml.safe_dump({**packaged, "definitions": {"work_pool": pool}}))
    env = prefect_on_postgres.client_env
    for args in (
        ["work-pool", "create", pool["name"], "--type", pool_type, "--overwrite"],
        ["--no-prompt", "deploy", "--all", "--prefect-file", str(variant)],
    ):
        result = subprocess.run(
            [PREFECT, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    api = prefect_on_postgres.api
    created = httpx.get(f"{api}/work_pools/{pool['name']}", timeout=30).json()
    assert created["type"] == pool_type
    for name in ("sync/mongodb", "sync/connector", "poll/service"):
        deployment = httpx.get(f"{api}/deployments/name/{name}", timeout=30).json()
        assert deployment["work_pool_name"] == pool["name"], name
        assert deployment["job_variables"]["image"] == pool["job_variables"]["image"]
        assert deployment["entrypoint"].startswith("elastic_ingest.flows.")
