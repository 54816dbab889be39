"""`python -m bench.scale_out`: many small connectors synced through the work pool, with 1 and
then 2 process workers, on a PostgreSQL-backed Prefect server (part of `make bench`).

For each worker count it prints jobs per minute and the CPU-seconds each process group spent
(workers with their flow-run processes, the poll loop, the Prefect server, PostgreSQL,
Elasticsearch), and from those per-job costs a model of what a 16-core machine would reach.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from devstack import postgres
from devstack.__main__ import environment
from devstack.common import pid_file, read_pid

for _key, _value in environment().items():
    os.environ.setdefault(_key, _value)

from bench.processes import stack_pid  # noqa: E402
from elastic_ingest.connectors.config import load_settings  # noqa: E402
from elastic_ingest.connectors.es.client import create_client  # noqa: E402
from elastic_ingest.connectors.es.indices import delete_indices  # noqa: E402
from elastic_ingest.connectors.protocol import (  # noqa: E402
    JobStatus,
    ensure_protocol_indices,
    protocol_for,
)
from elastic_ingest.connectors.protocol.connector import new_connector_document  # noqa: E402
from elastic_ingest.connectors.sources.directory import DirectoryDataSource  # noqa: E402
from elastic_ingest.deployments.register import POOL, register, set_max_syncs  # noqa: E402
from tests.integration.private_prefect import PREFECT, PrivatePrefect, stop  # noqa: E402

SLOTS_PER_WORKER = 2
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int | None) -> float:
    """CPU-seconds of a process and everything below it, including children it already reaped
    (a worker's finished flow-run processes)."""
    if pid is None:
        return 0.0
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(stat.parent.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        fields = stats.get(current)
        if fields:
            total += sum(int(value) for value in fields[11:15]) / TICK
        todo.extend(children.get(current, []))
    return total


def spawn(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def one_run(server: PrivatePrefect, connectors: int, workers: int, work: Path) -> dict:
    """Sync `connectors` folders of two small files each, all requested at once, through
    `workers` process workers; return the wall time, jobs per minute and CPU per group."""
    suffix = uuid.uuid4().hex[:8]
    config_file = work / f"config-{suffix}.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "elasticsearch": {
                    "hosts": [os.environ["ELASTICSEARCH_URL"]],
                    "api_key": os.environ["ELASTICSEARCH_API_KEY"],
                },
                "protocol": {
                    "connectors_index": f".elastic-connectors-bench-scale-{suffix}",
                    "jobs_index": f".elastic-connectors-sync-jobs-bench-scale-{suffix}",
                },
                "service": {"poll_interval": 2, "heartbeat_interval": 5},
            }
        )
    )
    settings = load_settings(config_file)
    es = create_client(settings.elasticsearch)
    env = {**server.client_env, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    indices = [f"bench-scale-{suffix}-{i}" for i in range(connectors)]
    processes: list[subprocess.Popen] = []
    try:
        await ensure_protocol_indices(es, settings.protocol)
        index_of_connectors, jobs = protocol_for(es, settings)
        set_max_syncs(SLOTS_PER_WORKER * workers, env)
        ids = []
        for i, index in enumerate(indices):
            folder = work / suffix / str(i)
            folder.mkdir(parents=True)
            for n in range(2):
                (folder / f"doc{n}.md").write_text(f"connector {i} document {n}")
            schema = DirectoryDataSource.configuration_schema()
            schema["path"]["value"] = str(folder)
            document = new_connector_document("directory", index)
            document.update(configuration=schema, status="configured", sync_now=True)
            ids.append(await index_of_connectors.create(document))
        groups = {
            "Prefect server": server.process.pid,
            "PostgreSQL": read_pid(pid_file(postgres.NAME)),
            "Elasticsearch": stack_pid("elasticsearch"),
        }
        before = {name: tree_cpu(pid) for name, pid in groups.items()}
        started = time.monotonic()
        for number in range(workers):
            worker = [PREFECT, "worker", "start", "--pool", POOL, "--name", f"bench-{number}"]
            processes.append(spawn([*worker, "--limit", str(SLOTS_PER_WORKER)], env, work))
        poll_loop = [sys.executable, "-m", "elastic_ingest.flows.poll", "-c", str(config_file)]
        poller = spawn(poll_loop, env, work)
        processes.append(poller)
        deadline = started + 1200
        while True:
            finished = [
                found[0]
                for connector_id in ids
                if (found := await jobs.for_connector(connector_id, size=1))
                and found[0].status in (JobStatus.COMPLETED, JobStatus.ERROR)
            ]
            if len(finished) == connectors or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        seconds = time.monotonic() - started
        cpu = {name: tree_cpu(pid) - before[name] for name, pid in groups.items()}
        cpu["workers + syncs"] = sum(tree_cpu(process.pid) for process in processes[:-1])
        cpu["poll loop"] = tree_cpu(poller.pid)
        completed = sum(job.status == JobStatus.COMPLETED for job in finished)
        return {
            "workers": workers,
            "connectors": connectors,
            "completed": completed,
            "seconds": seconds,
            "jobs_per_minute": completed / seconds * 60,
            "cpu": cpu,
        }
    finally:
        for process in processes:
            stop(process)
        await delete_indices(
            es, [*indices, settings.protocol.connectors_index, settings.protocol.jobs_index]
        )
        await es.close()


def sixteen_core_model(row: dict) -> str:
    """Jobs per minute 16 cores could reach from the measured CPU per job: every process but
    the Prefect server spreads over cores; the server (one process) is capped at one core."""
    per_job = {name: spent / max(row["completed"], 1) for name, spent in row["cpu"].items()}
    spread = sum(spent for name, spent in per_job.items() if name != "Prefect server")
    server = per_job["Prefect server"]
    by_cores = 16 * 60 / (spread + server)
    by_server = 60 / server if server else float("inf")
    bound = "the Prefect server (one process)" if by_server < by_cores else "CPU over 16 cores"
    return (
        f"16-core model: {min(by_cores, by_server):.0f} jobs/min, bound by {bound} "
        f"(CPU per job: {spread + server:.2f} s in all, of which the server {server:.2f} s)"
    )


async def scale_rows(connectors: int, worker_counts: list[int]) -> list[dict]:
    print(postgres.up(), flush=True)
    database = f"bench_scale_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        work = Path(scratch)
        server = PrivatePrefect(work / "prefect-home", postgres.fresh_database(database))
        server.start(timeout=180)
        try:
            register({**server.client_env})
            return [await one_run(server, connectors, count, work) for count in worker_counts]
        finally:
            server.stop()
            postgres.drop_database(database)


def print_rows(rows: list[dict]) -> None:
    names = list(rows[0]["cpu"])
    print(f"{'workers':>7} {'jobs':>5} {'seconds':>8} {'jobs/min':>9}  "
          + "  ".join(f"{name} CPU" for name in names))  # fmt: skip
    for row in rows:
        print(f"{row['workers']:>7} {row['completed']:>5} {row['seconds']:>8.1f} "
              f"{row['jobs_per_minute']:>9.1f}  "
              + "  ".join(f"{row['cpu'][name]:>{len(name) + 4}.1f}" for name in names))  # fmt: skip
    for row in rows:
        print(f" - {row['workers']} worker(s): {sixteen_core_model(row)}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--connectors", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = asyncio.run(scale_rows(args.connectors, args.workers))
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
