"""`python -m bench.scale_out`: many small connectors synced through the work pool on a
PostgreSQL-backed Prefect server (part of `make bench`), side by side with Prefect's process
worker (`prefect worker start`: a new interpreter per sync) and ours (`elastic-ingest worker`:
each sync a fork of a warm process).

For each worker kind and count it prints jobs per minute, the CPU-seconds each process group
spent (workers with their flow-run processes, the poll loop, the Prefect server, PostgreSQL,
Elasticsearch), the memory the workers' process trees held (proportional set size, so that
pages a fork shares are counted once), and from the per-job costs a model of what a 16-core
machine would reach.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
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

SLOTS_PER_WORKER = 8  # a warm sync holds ~33 MB: eight fit in ~440 MB (README)
TICK = os.sysconf("SC_CLK_TCK")
WORKERS = {  # kind -> the command that starts one worker of it on the pool
    "prefect": [PREFECT, "worker", "start", "--pool", POOL],
    "warm": [sys.executable, "-m", "elastic_ingest.app.cli", "worker", "--pool", POOL],
}


def tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def pss_mb(pid: int) -> float:
    """Proportional set size: a page shared by k processes counts 1/k in each."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def is_sync(pid: int) -> bool:
    """A flow-run process: `python -m prefect.engine`, or a child of the fork server."""
    return "prefect.engine" in command_line(pid) or (
        "elastic_ingest.workers.forkserver" in command_line(parent_of(pid))
    )


class MemorySampler(threading.Thread):
    """Samples the workers' process trees twice a second: their PSS in all, the number of syncs
    running, and their PSS with none (the idle workers, fork server included)."""

    def __init__(self, worker_pids: list[int]):
        super().__init__(daemon=True)
        self.worker_pids = worker_pids
        self.samples: list[tuple[int, float]] = []  # (syncs running, PSS MB of the trees)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            pids = [pid for worker in self.worker_pids for pid in tree(worker)]
            self.samples.append((sum(map(is_sync, pids)), sum(map(pss_mb, pids))))

    def summary(self) -> dict:
        # idle: the workers between and after syncs, once ready (before the first sync a
        # worker is still importing, and its PSS then says nothing)
        first = next((n for n, (syncs, _) in enumerate(self.samples) if syncs), len(self.samples))
        idle = sorted(mb for syncs, mb in self.samples[first:] if syncs == 0)
        busiest = max((syncs for syncs, _ in self.samples), default=0)
        peak = max((mb for syncs, mb in self.samples if syncs == busiest), default=0.0)
        base = idle[len(idle) // 2] if idle else 0.0  # the median
        return {
            "idle_mb": base,
            "peak_mb": peak,
            "peak_syncs": busiest,
            "mb_per_sync": (peak - base) / busiest if busiest else 0.0,
        }


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


async def quiet(pids: list[int | None], rate: float = 0.15, limit: float = 60.0) -> None:
    """Wait (at most `limit` seconds) until the processes together spend less than `rate`
    CPU-seconds a second over two seconds: the server has written what earlier work left it
    (events, logs, states), so that no phase is charged for another's."""
    deadline = time.monotonic() + limit
    last = sum(map(tree_cpu, pids))
    while time.monotonic() < deadline:
        await asyncio.sleep(2)
        now = sum(map(tree_cpu, pids))
        if now - last < 2 * rate:
            return
        last = now


def spawn(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def one_run(
    server: PrivatePrefect, connectors: int, workers: int, work: Path, kind: str, slots: int
) -> dict:
    """Sync `connectors` folders of two small files each, all requested at once, through
    `workers` workers of `kind`; return the wall time, jobs per minute, CPU per group and the
    workers' memory."""
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
        set_max_syncs(slots * workers, env)
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
        await quiet([groups["Prefect server"], groups["PostgreSQL"]])
        before = {name: tree_cpu(pid) for name, pid in groups.items()}
        started = time.monotonic()
        for number in range(workers):
            worker = [*WORKERS[kind], "--name", f"bench-{kind}-{number}"]
            processes.append(spawn([*worker, "--limit", str(slots)], env, work))
        sampler = MemorySampler([process.pid for process in processes])
        sampler.start()
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
        await asyncio.sleep(3)  # a few samples of the workers idle and ready, after the run
        sampler.stopped.set()
        for process in processes:  # what the server still writes for these jobs is theirs
            stop(process)
        await quiet([groups["Prefect server"], groups["PostgreSQL"]])
        for name in ("Prefect server", "PostgreSQL"):
            cpu[name] = tree_cpu(groups[name]) - before[name]
        completed = sum(job.status == JobStatus.COMPLETED for job in finished)
        return {
            "kind": kind,
            "workers": workers,
            "slots": slots,
            "memory": sampler.summary(),
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


async def scale_rows(
    connectors: int,
    worker_counts: list[int],
    kinds: tuple[str, ...] = ("prefect", "warm"),
    slots: int = SLOTS_PER_WORKER,
) -> list[dict]:
    print(postgres.up(), flush=True)
    database = f"bench_scale_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        work = Path(scratch)
        server = PrivatePrefect(work / "prefect-home", postgres.fresh_database(database))
        server.start(timeout=180)
        try:
            register({**server.client_env})
            return [
                await one_run(server, connectors, count, work, kind, slots)
                for count in worker_counts
                for kind in kinds  # side by side: each count with both kinds, in turn
            ]
        finally:
            server.stop()
            postgres.drop_database(database)


def print_rows(rows: list[dict]) -> None:
    names = list(rows[0]["cpu"])
    print(f"{'worker':>7} {'count':>5} {'jobs':>5} {'seconds':>8} {'jobs/min':>9}  "
          + "  ".join(f"{name} CPU" for name in names))  # fmt: skip
    for row in rows:
        print(f"{row['kind']:>7} {row['workers']:>5} {row['completed']:>5} {row['seconds']:>8.1f} "
              f"{row['jobs_per_minute']:>9.1f}  "
              + "  ".join(f"{row['cpu'][name]:>{len(name) + 4}.1f}" for name in names))  # fmt: skip
    for row in rows:
        memory = row["memory"]
        print(f" - {row['kind']} x{row['workers']}: {sixteen_core_model(row)}; workers idle "
              f"{memory['idle_mb']:.0f} MB PSS, {memory['peak_mb']:.0f} MB with "
              f"{memory['peak_syncs']} syncs ({memory['mb_per_sync']:.0f} MB each)")  # fmt: skip
    for count in sorted({row["workers"] for row in rows}):
        by_kind = {row["kind"]: row for row in rows if row["workers"] == count}
        if {"prefect", "warm"} <= by_kind.keys():
            prefect, warm = by_kind["prefect"], by_kind["warm"]
            jobs = warm["jobs_per_minute"] / prefect["jobs_per_minute"]
            server = (warm["cpu"]["Prefect server"] / max(warm["completed"], 1)) / max(
                prefect["cpu"]["Prefect server"] / max(prefect["completed"], 1), 1e-9
            )
            print(f" - {count} worker(s), warm vs prefect: {jobs:.2f}x the jobs/min, "
                  f"{server:.2f}x the Prefect server CPU per job")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--connectors", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--kinds", nargs="+", choices=sorted(WORKERS), default=["prefect", "warm"])
    parser.add_argument(
        "--slots", type=int, default=SLOTS_PER_WORKER, help="syncs at once per worker"
    )
    args = parser.parse_args()
    rows = asyncio.run(scale_rows(args.connectors, args.workers, tuple(args.kinds), args.slots))
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
