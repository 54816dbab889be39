"""`make bench [N=100000]`: our sync against the machine's limits, measured side by side.

Prints one table and writes bench/results/latest.json. Nothing here is asserted by `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aioboto3
import prefect
import yaml

from devstack import elasticsearch, ferretdb
from devstack.__main__ import environment

for _key, _value in environment().items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from elasticsearch import AsyncElasticsearch  # noqa: E402

from bench.baselines import (  # noqa: E402
    raw_bulk_load,
    raw_mongo_scan,
    raw_range_query,
    raw_s3_scan,
    reference_client,
)
from bench.data import (  # noqa: E402
    change_one_percent_each,
    drop_collection,
    kinds_documents,
    make_document,
    rewrite_collection,
    seed_mongo,
    seed_s3,
)
from bench.processes import (  # noqa: E402
    MARKERS,
    SOURCE_SERVERS,
    cpu_snapshot,
    cpu_spent,
    memory_mb,
    stack_pid,
)
from bench.report import (  # noqa: E402
    KIND_TARGETS,
    print_processes,
    print_table,
    process_verdicts,
    verdicts,
)
from bench.scale_out import SLOTS_PER_WORKER, print_rows, scale_rows  # noqa: E402
from elastic_ingest.connectors.config import load_settings  # noqa: E402
from elastic_ingest.connectors.es.client import create_client  # noqa: E402
from elastic_ingest.connectors.protocol import ensure_protocol_indices, protocol_for  # noqa: E402
from elastic_ingest.connectors.protocol.connector import new_connector_document  # noqa: E402
from elastic_ingest.connectors.protocol.states import JobType, TriggerMethod  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = Path(__file__).resolve().parent.parent

POLL_INTERVAL = 2.0  # the idle poll loop's, so that its ~10 s run holds several passes
POLL_IDLE_SECONDS = 10.0
# what the processes section keeps of the first full sync (mongodb)
PROCESS_KEYS = (
    "seconds",
    "sync_cpu",
    "es_cpu",
    "src_cpu",
    "limit_seconds",
    "wall_vs_limit",
    "process_cpu",
    "peak_rss_mb",
)
SOURCES = ("mongodb", "s3", "directory")  # the built-in sources' service types


def write_config(name: str = "bench", **service) -> Path:
    """bench/results/<name>-config.yml, its protocol indices `<name>-connectors` and
    `<name>-jobs`, so the benchmark never touches a real service's connectors."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-config.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "elasticsearch": {
                    "hosts": [os.environ["ELASTICSEARCH_URL"]],
                    "api_key": os.environ["ELASTICSEARCH_API_KEY"],
                    "request_timeout": 120,
                },
                "service": {"use_deployments": False, **service},
                "protocol": {
                    "connectors_index": f".elastic-connectors-{name}",
                    "jobs_index": f".elastic-connectors-sync-jobs-{name}",
                },
            }
        )
    )
    return path


def run_in_subprocess(config_file: Path, *args: str, warmup: bool = True) -> dict:
    command = [
        sys.executable,
        "-m",
        "bench.sync_run",
        "--config-file",
        str(config_file),
        *(["--warmup"] if warmup else []),
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT)
    if result.returncode != 0:
        raise RuntimeError(f"sync process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def watch_arguments(servers: dict[str, int | None]) -> list[str]:
    """`--watch NAME=PID` for each server found, for `bench.sync_run` to time its CPU."""
    return [f"--watch={name}={pid}" for name, pid in servers.items() if pid is not None]


def cpu_columns(spent: dict[str, float | None], seconds: float) -> dict:
    """A row's CPU seconds per process and the machine's limit they imply: all of them spread
    over every core is the least wall time any schedule of that work could take."""
    columns = {
        "sync_cpu": spent.get("own"),
        "es_cpu": spent.get("es"),
        "src_cpu": spent.get("src"),
    }
    total = sum(value for value in columns.values() if value is not None)
    limit = total / (os.cpu_count() or 1)
    columns["limit_seconds"] = limit
    columns["wall_vs_limit"] = seconds / limit if limit > 0 else None
    return columns


class Bench:
    def __init__(self, documents: int, objects: int, files: int = 2000):
        self.documents, self.objects, self.files = documents, objects, files
        self.partitions: list[int] = []  # first full syncs also read in this many parts
        self.config_file = write_config()
        self.settings = load_settings(self.config_file)
        self.rows: list[dict] = []
        self.results: dict = {}
        self.pids = {service: stack_pid(service) for service in MARKERS}
        self.service_types: dict[str, str] = {}  # connector id -> its source's service type
        self.processes: dict = {"cores": os.cpu_count(), "pids": self.pids}
        missing = [service for service, pid in self.pids.items() if pid is None]
        if missing:
            print(f"no process found for {', '.join(missing)}: its CPU shows as -", flush=True)

    def servers(self, service_type: str | None) -> dict[str, int | None]:
        """The servers a sync of `service_type` keeps busy: Elasticsearch and its source's."""
        servers = {"es": self.pids["elasticsearch"]}
        if service_type in SOURCE_SERVERS:
            servers["src"] = self.pids[SOURCE_SERVERS[service_type]]
        return servers

    async def measured_raw(self, service_type: str, baseline) -> tuple[float, int, dict]:
        """Await a raw baseline (seconds, count) and the CPU columns of its row: this process
        stands in for the sync process."""
        servers = self.servers(service_type)
        before = cpu_snapshot(servers)
        seconds, count = await baseline
        return seconds, count, cpu_columns(cpu_spent(before, cpu_snapshot(servers)), seconds)

    async def job_for(self, connector_id: str, job_type: str = JobType.FULL) -> str:
        es = create_client(self.settings.elasticsearch)
        try:
            connectors, jobs = protocol_for(es, self.settings)
            connector = await connectors.get(connector_id)
            created = await jobs.create(connector, job_type, TriggerMethod.ON_DEMAND)
            job = await jobs.claim(await jobs.get(created), "bench")
            assert job is not None, "could not claim the benchmark job"
            return job.id
        finally:
            await es.close()

    async def measured_sync(
        self, name: str, connector_id: str, index: str, job_type: str = JobType.FULL
    ) -> dict:
        job_id = await self.job_for(connector_id, job_type)
        es = create_client(self.settings.elasticsearch)
        try:
            before = await _index_operations(es, index)
            servers = self.servers(self.service_types.get(connector_id))
            measured = run_in_subprocess(
                # `--job=ID`: an Elasticsearch id may start with "-"
                self.config_file,
                f"--job={job_id}",
                *watch_arguments(servers),
            )
            _, jobs = protocol_for(es, self.settings)
            job = (await jobs.get(job_id)).doc
            writes = await _index_operations(es, index) - before
        finally:
            await es.close()
        row = {
            "scenario": name,
            "seconds": measured["seconds"],
            "documents": job["total_document_count"],
            "indexed": job["indexed_document_count"],
            "deleted": job["deleted_document_count"],
            "fetched": (job.get("metadata") or {}).get("fetched_document_count"),
            "not_fetched": (job.get("metadata") or {}).get("not_fetched_document_count"),
            "bulk_writes": writes,
            "peak_rss_mb": measured["peak_rss_mb"],
            **cpu_columns(measured["cpu_seconds"], measured["seconds"]),
            "process_cpu": measured["process_cpu_seconds"],
            "status": job["status"],
            "job_type": str(job_type),
            "ran_as": (job.get("metadata") or {}).get("ran_as", str(job_type)),
            "receipt_seconds": ((job.get("metadata") or {}).get("stage_seconds") or {}).get(
                "receipt"
            ),
        }
        self.rows.append(row)
        assert row["status"] == "completed", job  # a failed job also writes nothing
        assert row["ran_as"] == row["job_type"], job  # e.g. an incremental run as a full sync
        return row

    def timed_verify(
        self, connector_id: str, scenario: str = "verify, index equal to source"
    ) -> float:
        """Wall seconds of `connector verify` (a new CLI process, as a user runs it) on an
        index that equals its source."""
        command = [sys.executable, "-m", "elastic_ingest.app.cli", "-c", str(self.config_file)]
        started = time.monotonic()
        result = subprocess.run(
            [*command, "connector", "verify", connector_id],
            capture_output=True,
            text=True,
            cwd=PROJECT,
        )
        seconds = time.monotonic() - started
        assert result.returncode == 0, result.stdout + result.stderr
        self.rows.append({"scenario": scenario, "seconds": seconds})
        print(f"verify: {result.stdout.strip()} in {seconds:.1f}s", flush=True)
        return seconds

    async def forget_cursor(self, connector_id: str) -> None:
        """Clear the connector's `sync_cursor`, so the next full sync cannot stop at the
        source's `changed()` fingerprint and must list and diff everything."""
        es = create_client(self.settings.elasticsearch)
        try:
            connectors, _ = protocol_for(es, self.settings)
            await connectors.patch(connector_id, {"sync_cursor": None})
        finally:
            await es.close()

    async def create_connector(
        self, service_type: str, index: str, values: dict, settings=None
    ) -> str:
        """A configured connector on a new, empty `index`, replacing earlier runs' connectors
        of that index (a full sync refuses an index another connector also targets)."""
        settings = settings or self.settings
        es = create_client(settings.elasticsearch)
        try:
            await ensure_protocol_indices(es, settings.protocol)
            await es.options(ignore_status=404).indices.delete(index=index)
            connectors, jobs = protocol_for(es, settings)
            for earlier in await connectors.all():
                if earlier.index_name == index:
                    await connectors.delete(earlier)
                    await jobs.delete_for_connector(earlier.id)
            document = new_connector_document(service_type, index, f"bench {index}")
            document["configuration"] = {k: {"value": v} for k, v in values.items()}
            document["status"] = "configured"
            connector_id = await connectors.create(document)
        finally:
            await es.close()
        self.service_types[connector_id] = service_type
        return connector_id

    async def mongodb(self) -> None:
        url, n = os.environ["MONGODB_URL"], self.documents
        collection = f"docs_{n}"
        seeded = await seed_mongo(url, "bench", collection, n)
        print(f"seeded {n} documents in FerretDB in {seeded:.1f}s (0 = reused)", flush=True)
        scan, scanned, cpu = await self.measured_raw(
            "mongodb", raw_mongo_scan(url, "bench", collection)
        )
        self.rows.append(
            {"scenario": "raw source scan (mongodb)", "seconds": scan, "documents": scanned, **cpu}
        )
        es = reference_client(self.settings.elasticsearch)
        try:
            bulk, loaded = await raw_bulk_load(es, "bench-raw-bulk", url, "bench", collection)
            await es.indices.delete(index="bench-raw-bulk")
        finally:
            await es.close()
        self.rows.append(
            {
                "scenario": "raw bulk load (async_streaming_bulk)",
                "seconds": bulk,
                "documents": loaded,
            }
        )
        print(f"raw scan {scan:.1f}s, raw bulk {bulk:.1f}s", flush=True)

        index = f"bench-mongo-{n}"
        connector = await self.create_connector(
            "mongodb", index, {"host": url, "database": "bench", "collection": collection}
        )
        first = await self.measured_sync("first full sync (mongodb)", connector, index)
        assert first["indexed"] == n, first
        await self.partitioned(url, collection, first)
        noop = await self.measured_sync("no-op resync", connector, index)
        assert noop["indexed"] == 0 and noop["deleted"] == 0, noop
        verified = self.timed_verify(connector)
        expected = await change_one_percent_each(url, "bench", collection, n)
        churn = await self.measured_sync("resync after 1% upd/del/ins", connector, index)
        assert churn["indexed"] == expected["updated"] + expected["created"], (churn, expected)
        assert churn["deleted"] == expected["deleted"], (churn, expected)
        await drop_collection(url, "bench", collection)  # it was changed: reseed next time
        limit = max(scan, bulk)
        self.results["mongodb"] = {
            "first_sync_vs_limit": first["seconds"] / limit,
            "noop_vs_first": noop["seconds"] / first["seconds"],
            "receipt_share": first["receipt_seconds"] / first["seconds"],
            "verify_vs_first": verified / first["seconds"],
            "churn_vs_first": churn["seconds"] / first["seconds"],
            "noop_bulk_writes": noop["bulk_writes"],
            "first_sync_seconds": first["seconds"],
            "peak_rss_mb": max(r.get("peak_rss_mb") or 0 for r in self.rows),
        }
        self.processes["first_full_sync"] = {key: first[key] for key in PROCESS_KEYS}

    async def partitioned(self, url: str, collection: str, whole: dict) -> None:
        """The same first full sync read in 2 and 4 `_id` ranges at once (issue 13): wall
        time against the one-part sync, with every process's CPU, into fresh indices."""
        speedups = {}
        for parts in self.partitions:
            index = f"bench-mongo-{self.documents}-p{parts}"
            values = {"host": url, "database": "bench", "collection": collection}
            connector = await self.create_connector(
                "mongodb", index, {**values, "sync_partitions": parts}
            )
            row = await self.measured_sync(f"first full sync, {parts} parts", connector, index)
            assert row["indexed"] == self.documents, row
            speedups[parts] = whole["seconds"] / row["seconds"]
            es = create_client(self.settings.elasticsearch)
            try:
                await es.indices.delete(index=index)
            finally:
                await es.close()
        self.results["partitions"] = speedups

    async def kinds(self) -> None:
        """Incremental, versions-first full and deletion jobs on a collection with `updated_at`,
        each against the first full sync of the same collection."""
        url, n = os.environ["MONGODB_URL"], self.documents
        collection, index = f"kinds_{n}", f"bench-kinds-{n}"
        seeded = await rewrite_collection(url, "bench", collection, kinds_documents(n))
        print(f"seeded {n} documents with updated_at in {seeded:.1f}s", flush=True)
        try:
            raw = await self.raw_range_baseline(url, collection)
            connector = await self.create_connector(
                "mongodb",
                index,
                {
                    "host": url,
                    "database": "bench",
                    "collection": collection,
                    "timestamp_field": "updated_at",
                },
            )
            rows = await self.kind_rows(url, collection, connector, index)
        finally:
            await drop_collection(url, "bench", collection)
        first = rows["first"]["seconds"]
        self.results["kinds"] = {
            **{f"{key}_vs_first": rows[key]["seconds"] / first for key in KIND_TARGETS},
            "first_sync_seconds": first,
            "ferretdb_cpu_seconds": {key: row.get("src_cpu") for key, row in rows.items()},
            "raw_range_query_seconds": raw["seconds"],
            "raw_range_query_ferretdb_cpu_seconds": raw["src_cpu"],
        }

    async def raw_range_baseline(self, url: str, collection: str) -> dict:
        """PyMongo's `updated_at >= (after every document)` query, 0 results: the least an
        incremental sync can cost on this server, in wall time and FerretDB CPU."""
        after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        seconds, found, cpu = await self.measured_raw(
            "mongodb", raw_range_query(url, "bench", collection, "updated_at", after)
        )
        row = {
            "scenario": "raw range query, 0 results (mongodb)",
            "seconds": seconds,
            "documents": found,
            **cpu,
        }
        self.rows.append(row)
        return row

    async def kind_rows(self, url: str, collection: str, connector: str, index: str) -> dict:
        """The five sync rows, in order, each asserting what it must have written."""
        n, full, incremental = self.documents, JobType.FULL, JobType.INCREMENTAL
        sync = self.measured_sync
        first = await sync("first full sync (mongodb, timestamp_field)", connector, index, full)
        assert first["indexed"] == n, first
        noop = await sync("no-op incremental (mongodb)", connector, index, incremental)
        assert noop["indexed"] == 0 and noop["deleted"] == 0, noop
        updated = frozenset(range(0, n, 100))
        now = datetime.datetime.now(datetime.UTC)
        await rewrite_collection(
            url, "bench", collection, kinds_documents(n, updated=updated, updated_at=now)
        )
        changed = await sync("incremental after 1% updated", connector, index, incremental)
        assert changed["indexed"] == len(updated) and changed["deleted"] == 0, changed
        resync = await sync("full resync, no changes (versions first)", connector, index, full)
        assert resync["indexed"] == 0 and resync["deleted"] == 0, resync
        assert resync["fetched"] == 0 and resync["not_fetched"] == n, resync  # versions first
        verified = self.timed_verify(connector, "verify, versions first (mongodb)")
        deleted = frozenset(range(1, n, 100))
        documents = kinds_documents(n, updated=updated, updated_at=now, deleted=deleted)
        await rewrite_collection(url, "bench", collection, documents)
        removed = await sync("deletion sync after 1% deleted", connector, index, JobType.DELETION)
        assert removed["deleted"] == len(deleted) and removed["indexed"] == 0, removed
        return {
            "first": first,
            "noop_incremental": noop,
            "incremental_1pct": changed,
            "full_resync_versions_first": resync,
            "deletion_1pct": removed,
            "verify_versions_first": {"seconds": verified},
        }

    async def directory(self) -> None:
        """Lazy fetch on a folder: a resync after one file was touched reads only that file."""
        with tempfile.TemporaryDirectory() as folder:
            paths = write_text_files(Path(folder), self.files)
            index = f"bench-directory-{self.files}"
            connector = await self.create_connector("directory", index, {"path": folder})
            first = await self.measured_sync("first full sync (directory)", connector, index)
            assert first["indexed"] == self.files, first
            os.utime(paths[0])  # else `changed()` sees the same fingerprint and stops early
            resync = await self.measured_sync("no-op full resync (directory)", connector, index)
        assert resync["fetched"] == 1 and resync["indexed"] == 1, resync
        assert resync["not_fetched"] == self.files - 1 and resync["deleted"] == 0, resync
        self.results["directory"] = {"noop_vs_first": resync["seconds"] / first["seconds"]}

    async def extraction(self, files: int) -> None:
        """Text from ~100 KB PDF/DOCX files: kreuzberg called directly in one process, our
        Extractor, and a whole folder sync of the same files (issue 12's target: the sync's
        throughput >= 0.8 x the direct call)."""
        from bench.extraction import measure, write_files

        measured = await measure(files)
        for side, label in (("direct", "kreuzberg batch, one process"), ("ours", "Extractor")):
            self.rows.append(
                {"scenario": f"extract {files} PDF/DOCX files: {label}",
                 "seconds": measured[side]["seconds"], "documents": files}
            )  # fmt: skip
        with tempfile.TemporaryDirectory() as folder:
            write_files(Path(folder), files)
            index = f"bench-extraction-{files}"
            connector = await self.create_connector("directory", index, {"path": folder})
            synced = await self.measured_sync(
                f"first full sync, {files} PDF/DOCX files (directory)", connector, index
            )
        assert synced["indexed"] == files and synced["fetched"] == files, synced
        direct = measured["direct"]["seconds"]
        self.results["extraction"] = {
            "megabytes": measured["megabytes"],
            "workers": measured["workers"],
            "direct_files_per_s": measured["direct"]["files_per_s"],
            "extractor_vs_direct": measured["ratio"],
            "sync_files_per_s": round(files / synced["seconds"], 1),
            "sync_mb_per_s": round(measured["megabytes"] / synced["seconds"], 2),
            "sync_vs_direct": round(direct / synced["seconds"], 2),
        }

    async def overhead(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "a.txt").write_text("a")
            index = "bench-overhead"
            connector = await self.create_connector("directory", index, {"path": folder})
            await self.measured_sync("directory first sync", connector, index)
            unchanged = await self.measured_sync(
                "no-change sync (changed() false)", connector, index
            )
        empty = run_in_subprocess(self.config_file, "--empty-flow")
        self.rows.append(
            {
                "scenario": "empty Prefect flow run",
                "seconds": empty["seconds"],
                "peak_rss_mb": empty["peak_rss_mb"],
            }
        )
        self.results["overhead_seconds"] = unchanged["seconds"] - empty["seconds"]

    async def startup(self) -> None:
        """A fresh sync process from its start to the first document requested: no warm-up
        flow run, one small file to sync."""
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "a.txt").write_text("a")
            connector = await self.create_connector("directory", "bench-startup", {"path": folder})
            job = await self.job_for(connector)
            measured = run_in_subprocess(
                self.config_file, f"--job={job}", "--startup", warmup=False
            )
        self.processes["startup"] = {
            **measured["startup"],
            "process_cpu_seconds": measured["process_cpu_seconds"],
        }

    async def s3(self) -> None:
        session = aioboto3.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        endpoint, bucket = os.environ["S3_ENDPOINT_URL"], f"bench-{self.objects}"
        seeded = await seed_s3(session, endpoint, bucket, self.objects)
        print(f"seeded {self.objects} S3 objects in {seeded:.1f}s (0 = reused)", flush=True)
        scan, count, cpu = await self.measured_raw("s3", raw_s3_scan(session, endpoint, bucket))
        self.rows.append(
            {"scenario": "raw S3 list + read", "seconds": scan, "documents": count, **cpu}
        )
        index = f"bench-s3-{self.objects}"
        connector = await self.create_connector("s3", index, s3_configuration(bucket))
        first = await self.measured_sync("first full sync (s3)", connector, index)
        assert first["indexed"] == self.objects, first
        await self.forget_cursor(connector)
        resync = await self.measured_sync("no-op full resync (s3)", connector, index)
        assert resync["indexed"] == 0 and resync["deleted"] == 0, resync
        assert resync["fetched"] == 0 and resync["not_fetched"] == self.objects, resync
        verified = self.timed_verify(connector, "verify (s3, listing without bodies)")
        self.results["s3"] = {
            "first_sync_vs_scan": first["seconds"] / scan,
            "noop_vs_first": resync["seconds"] / first["seconds"],
            "verify_vs_first": verified / first["seconds"],
        }

    async def idle_processes(self) -> None:
        """What a sync process holds before it reads anything, per source, and what the poll
        loop holds between passes with nothing to do."""
        self.processes["sync_idle"] = {
            service_type: run_in_subprocess(self.config_file, "--idle", service_type)
            for service_type in SOURCES
        }
        config = write_config("bench-poll", poll_interval=POLL_INTERVAL)
        await seed_mongo(os.environ["MONGODB_URL"], "bench", "poll_idle", 10)  # else `error`
        with tempfile.TemporaryDirectory() as folder:
            await self.poll_connectors(load_settings(config), folder)
            self.processes["poll_loop"] = poll_loop_rss(config, POLL_IDLE_SECONDS)

    async def poll_connectors(self, settings, folder: str) -> None:
        """One connector per source, none due, in the poll config's own protocol indices: an
        idle service that checks real sources, and no benchmark job for it to claim."""
        configurations = {
            "mongodb": {
                "host": os.environ["MONGODB_URL"],
                "database": "bench",
                "collection": "poll_idle",
            },
            "s3": s3_configuration(f"bench-{self.objects}"),
            "directory": {"path": folder},
        }
        for service_type, values in configurations.items():
            await self.create_connector(
                service_type, f"bench-poll-{service_type}", values, settings
            )


def s3_configuration(bucket: str) -> dict:
    """An S3 connector's values for `bucket` on the stack's moto, which takes any keys."""
    return {
        "buckets": [bucket],
        "endpoint_url": os.environ["S3_ENDPOINT_URL"],
        "access_key_id": "bench",
        "secret_access_key": "bench",
    }


def poll_loop_rss(config_file: Path, seconds: float) -> dict:
    """Run `python -m flows.poll` for `seconds`, read its RSS, then stop it as a service
    manager would (SIGTERM) and wait for it; its output is shown only if it failed."""
    command = [sys.executable, "-m", "elastic_ingest.flows.poll", "-c", str(config_file)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(seconds)  # passes run meanwhile
            rss, peak = memory_mb(process.pid), memory_mb(process.pid, "VmHWM")
        finally:
            stop(process)
        log.seek(0)
        output = log.read().decode(errors="replace")
    passes = output.count(" connectors: ")  # the heartbeat step's line, once per pass
    if rss is None or passes < 2 or process.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(
            f"poll loop: {passes} passes, exit code {process.returncode}:\n{output[-3000:]}"
        )
    return {
        "seconds": seconds,
        "poll_interval": POLL_INTERVAL,
        "passes": passes,
        "rss_mb": rss,
        "peak_rss_mb": peak,
    }


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it is still there after 30 s: a hung loop must not outlive us."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def write_text_files(folder: Path, count: int) -> list[Path]:
    """`count` small text files (bodies of the benchmark documents), 500 per subfolder."""
    paths = []
    for i in range(count):
        path = folder / f"{i // 500:03d}" / f"{i:06d}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(make_document(i)["body"])
        paths.append(path)
    return paths


async def _index_operations(_es, index: str) -> int:
    """Index + delete operations Elasticsearch performed on `index` (its bulk write count),
    read as the stack's superuser: the service's key has no `monitor` on content indices."""
    url = os.environ["ELASTICSEARCH_URL"]
    async with AsyncElasticsearch(url, basic_auth=elasticsearch.superuser()) as admin:
        stats = await admin.options(ignore_status=404).indices.stats(index=index, metric="indexing")
    totals = stats.get("_all", {}).get("primaries", {}).get("indexing", {})
    return totals.get("index_total", 0) + totals.get("delete_total", 0)


async def _versions(settings) -> dict:
    es = create_client(settings.elasticsearch)
    try:
        nodes = await es.nodes.info(node_id="_local", filter_path="nodes.*.version")
    finally:
        await es.close()
    return {
        "elasticsearch": next(iter(nodes["nodes"].values()))["version"],
        "ferretdb": ferretdb.VERSION,
        "prefect": prefect.__version__,
        "python": platform.python_version(),
    }


def write_report(report: dict, documents: int) -> None:
    output = RESULTS / f"bench-{documents}.json"
    output.write_text(json.dumps(report, indent=2))
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    print(f"\nwrote {output}", flush=True)


async def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=2000, help="text files for the folder rows")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument(
        "--extraction-files", type=int, default=300, help="PDF/DOCX files (0: skip extraction)"
    )
    parser.add_argument(
        "--skip-kinds", action="store_true", help="skip the incremental/deletion MongoDB rows"
    )
    parser.add_argument(
        "--partitions",
        default="2,4",
        help="first full syncs read in this many parts at once, compared with one (empty: skip)",
    )
    parser.add_argument(
        "--scale-connectors",
        type=int,
        default=50,
        help="small connectors synced through the work pool by one worker of each kind (0: skip)",
    )
    parser.add_argument(
        "--only-mongodb",
        action="store_true",
        help="only the MongoDB rows (raw scan, raw bulk, first sync, no-op, churn): bench.majors",
    )
    args = parser.parse_args()
    bench = Bench(args.documents, args.objects, args.files)
    bench.partitions = [int(parts) for parts in args.partitions.split(",") if parts.strip()]
    started = time.time()
    await bench.mongodb()
    if args.only_mongodb:
        print_table(bench.rows)
        report = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}
        report.update(versions=await _versions(bench.settings), rows=bench.rows)
        write_report({**report, "results": bench.results}, args.documents)
        return 0
    if not args.skip_kinds:
        await bench.kinds()
    await bench.overhead()
    await bench.startup()
    await bench.directory()
    if not args.skip_s3:
        await bench.s3()
    if args.extraction_files:
        await bench.extraction(args.extraction_files)
    await bench.idle_processes()
    print_table(bench.rows)
    print()
    print_processes(bench.processes)
    print()
    lines = verdicts(bench.results, args.documents)
    for line in lines + process_verdicts(bench.processes, bench.results, args.documents):
        print(" -", line, flush=True)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "versions": await _versions(bench.settings),
        "documents": args.documents,
        "objects": args.objects,
        "rows": bench.rows,
        "processes": bench.processes,
        "results": bench.results,
    }
    write_report(report, args.documents)
    if args.scale_connectors:  # last: what is above is printed and written even if this fails
        report["scale_out"] = await scale_rows(args.scale_connectors, [1])
        print(f"\n{args.scale_connectors} small connectors through the work pool "
              f"(PostgreSQL-backed Prefect, {SLOTS_PER_WORKER} slots per worker):")  # fmt: skip
        print_rows(report["scale_out"])
        write_report(report, args.documents)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
