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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aioboto3
import prefect
import yaml

from devstack import ferretdb
from devstack.__main__ import environment

for _key, _value in environment().items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from bench.baselines import (  # noqa: E402
    cpu_seconds,
    ferretdb_pid,
    raw_bulk_load,
    raw_mongo_scan,
    raw_range_query,
    raw_s3_scan,
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
from connectors.config import load_settings  # noqa: E402
from connectors.es.client import create_client  # noqa: E402
from connectors.protocol import ensure_protocol_indices, protocol_for  # noqa: E402
from connectors.protocol.connector import new_connector_document  # noqa: E402
from connectors.protocol.states import JobType, TriggerMethod  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = Path(__file__).resolve().parent.parent

# sync-kind row -> (what it is, the largest ratio to the first full sync that meets the goal);
# its ratio is stored in the results as "<row>_vs_first"
KIND_TARGETS = {
    "noop_incremental": ("no-op incremental (mongodb)", 0.1),
    "incremental_1pct": ("incremental after 1% updated (mongodb)", 0.15),
    "full_resync_versions_first": ("full resync, no changes, versions first (mongodb)", 0.5),
    "deletion_1pct": ("deletion sync after 1% deleted (mongodb)", 0.4),
}
LAZY_FETCH_TARGET = 0.15  # a no-op full resync of S3 or a folder vs its first full sync


def write_config() -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bench-config.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "elasticsearch": {
                    "hosts": [os.environ["ELASTICSEARCH_URL"]],
                    "request_timeout": 120,
                },
                "service": {"use_deployments": False},
                "protocol": {"connectors_index": "bench-connectors", "jobs_index": "bench-jobs"},
                "sources": {
                    "mongodb": "connectors.sources.mongo:MongoDataSource",
                    "s3": "connectors.sources.s3:S3DataSource",
                    "directory": "connectors.sources.directory:DirectoryDataSource",
                },
            }
        )
    )
    return path


def run_in_subprocess(config_file: Path, *args: str) -> dict:
    command = [
        sys.executable,
        "-m",
        "bench.sync_run",
        "--config-file",
        str(config_file),
        "--warmup",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT)
    if result.returncode != 0:
        raise RuntimeError(f"sync process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class Bench:
    def __init__(self, documents: int, objects: int, files: int = 2000):
        self.documents, self.objects, self.files = documents, objects, files
        self.config_file = write_config()
        self.settings = load_settings(self.config_file)
        self.rows: list[dict] = []
        self.results: dict = {}

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
            measured = run_in_subprocess(self.config_file, "--job", job_id)
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
            "status": job["status"],
            "job_type": str(job_type),
            "ran_as": (job.get("metadata") or {}).get("ran_as", str(job_type)),
        }
        self.rows.append(row)
        assert row["status"] == "completed", job  # a failed job also writes nothing
        assert row["ran_as"] == row["job_type"], job  # e.g. an incremental run as a full sync
        return row

    async def measured_on_ferretdb(
        self, name: str, connector_id: str, index: str, job_type: str = JobType.FULL
    ) -> dict:
        """`measured_sync`, plus the CPU seconds the FerretDB server spent meanwhile: its own
        full-collection scans are the floor under every MongoDB row."""
        pid = ferretdb_pid()
        before = cpu_seconds(pid)
        row = await self.measured_sync(name, connector_id, index, job_type)
        row["ferretdb_cpu"] = _spent(before, cpu_seconds(pid))
        return row

    async def forget_cursor(self, connector_id: str) -> None:
        """Clear the connector's `sync_cursor`, so the next full sync cannot stop at the
        source's `changed()` fingerprint and must list and diff everything."""
        es = create_client(self.settings.elasticsearch)
        try:
            connectors, _ = protocol_for(es, self.settings)
            await connectors.patch(connector_id, {"sync_cursor": None})
        finally:
            await es.close()

    async def create_connector(self, service_type: str, index: str, values: dict) -> str:
        es = create_client(self.settings.elasticsearch)
        try:
            await ensure_protocol_indices(es, self.settings.protocol)
            await es.options(ignore_status=404).indices.delete(index=index)
            connectors, _ = protocol_for(es, self.settings)
            document = new_connector_document(service_type, index, f"bench {index}")
            document["configuration"] = {k: {"value": v} for k, v in values.items()}
            document["status"] = "configured"
            return await connectors.create(document)
        finally:
            await es.close()

    async def mongodb(self) -> None:
        url, n = os.environ["MONGODB_URL"], self.documents
        collection = f"docs_{n}"
        seeded = await seed_mongo(url, "bench", collection, n)
        print(f"seeded {n} documents in FerretDB in {seeded:.1f}s (0 = reused)", flush=True)
        scan, scanned = await raw_mongo_scan(url, "bench", collection)
        self.rows.append(
            {"scenario": "raw source scan (mongodb)", "seconds": scan, "documents": scanned}
        )
        es = create_client(self.settings.elasticsearch)
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
        noop = await self.measured_sync("no-op resync", connector, index)
        assert noop["indexed"] == 0 and noop["deleted"] == 0, noop
        expected = await change_one_percent_each(url, "bench", collection, n)
        churn = await self.measured_sync("resync after 1% upd/del/ins", connector, index)
        assert churn["indexed"] == expected["updated"] + expected["created"], (churn, expected)
        assert churn["deleted"] == expected["deleted"], (churn, expected)
        await drop_collection(url, "bench", collection)  # it was changed: reseed next time
        limit = max(scan, bulk)
        self.results["mongodb"] = {
            "first_sync_vs_limit": first["seconds"] / limit,
            "noop_vs_first": noop["seconds"] / first["seconds"],
            "churn_vs_first": churn["seconds"] / first["seconds"],
            "noop_bulk_writes": noop["bulk_writes"],
            "first_sync_seconds": first["seconds"],
            "peak_rss_mb": max(r.get("peak_rss_mb", 0) for r in self.rows),
        }

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
            "ferretdb_cpu_seconds": {key: row.get("ferretdb_cpu") for key, row in rows.items()},
            "raw_range_query_seconds": raw["seconds"],
            "raw_range_query_ferretdb_cpu_seconds": raw["ferretdb_cpu"],
        }

    async def raw_range_baseline(self, url: str, collection: str) -> dict:
        """PyMongo's `updated_at >= (after every document)` query, 0 results: the least an
        incremental sync can cost on this server, in wall time and FerretDB CPU."""
        after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        pid = ferretdb_pid()
        before = cpu_seconds(pid)
        seconds, found = await raw_range_query(url, "bench", collection, "updated_at", after)
        row = {
            "scenario": "raw range query, 0 results (mongodb)",
            "seconds": seconds,
            "documents": found,
            "ferretdb_cpu": _spent(before, cpu_seconds(pid)),
        }
        self.rows.append(row)
        return row

    async def kind_rows(self, url: str, collection: str, connector: str, index: str) -> dict:
        """The five sync rows, in order, each asserting what it must have written."""
        n, full, incremental = self.documents, JobType.FULL, JobType.INCREMENTAL
        sync = self.measured_on_ferretdb
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
        self.rows.append({"scenario": "empty Prefect flow run", "seconds": empty["seconds"]})
        self.results["overhead_seconds"] = unchanged["seconds"] - empty["seconds"]

    async def s3(self) -> None:
        session = aioboto3.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        endpoint, bucket = os.environ["S3_ENDPOINT_URL"], f"bench-{self.objects}"
        seeded = await seed_s3(session, endpoint, bucket, self.objects)
        print(f"seeded {self.objects} S3 objects in {seeded:.1f}s (0 = reused)", flush=True)
        scan, count = await raw_s3_scan(session, endpoint, bucket)
        self.rows.append({"scenario": "raw S3 list + read", "seconds": scan, "documents": count})
        index = f"bench-s3-{self.objects}"
        connector = await self.create_connector(
            "s3",
            index,
            {
                "buckets": [bucket],
                "endpoint_url": endpoint,
                "access_key_id": "bench",
                "secret_access_key": "bench",
            },
        )
        first = await self.measured_sync("first full sync (s3)", connector, index)
        assert first["indexed"] == self.objects, first
        await self.forget_cursor(connector)
        resync = await self.measured_sync("no-op full resync (s3)", connector, index)
        assert resync["indexed"] == 0 and resync["deleted"] == 0, resync
        assert resync["fetched"] == 0 and resync["not_fetched"] == self.objects, resync
        self.results["s3"] = {
            "first_sync_vs_scan": first["seconds"] / scan,
            "noop_vs_first": resync["seconds"] / first["seconds"],
        }


def write_text_files(folder: Path, count: int) -> list[Path]:
    """`count` small text files (bodies of the benchmark documents), 500 per subfolder."""
    paths = []
    for i in range(count):
        path = folder / f"{i // 500:03d}" / f"{i:06d}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(make_document(i)["body"])
        paths.append(path)
    return paths


def _spent(before: float | None, after: float | None) -> float | None:
    """CPU seconds between two readings; None when either could not be read."""
    return None if before is None or after is None else after - before


async def _index_operations(es, index: str) -> int:
    """Index + delete operations Elasticsearch performed on `index` (its bulk write count)."""
    stats = await es.options(ignore_status=404).indices.stats(index=index, metric="indexing")
    totals = stats.get("_all", {}).get("primaries", {}).get("indexing", {})
    return totals.get("index_total", 0) + totals.get("delete_total", 0)


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'scenario':<42} {'seconds':>8} {'docs':>7} {'docs/s':>8} {'indexed':>7} "
        f"{'deleted':>7} {'fetched':>7} {'unfetch':>7} {'writes':>7} {'peak RSS':>8} "
        f"{'srv CPU':>7}"
    )
    for r in rows:
        docs = r.get("documents")
        rate = f"{docs / r['seconds']:,.0f}" if docs else "-"
        rss = f"{r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else "-"
        cpu = f"{r['ferretdb_cpu']:.2f}" if r.get("ferretdb_cpu") is not None else "-"
        print(
            f"{r['scenario']:<42} {r['seconds']:>8.2f} {_shown(docs):>7} {rate:>8} "
            f"{_shown(r.get('indexed')):>7} {_shown(r.get('deleted')):>7} "
            f"{_shown(r.get('fetched')):>7} {_shown(r.get('not_fetched')):>7} "
            f"{_shown(r.get('bulk_writes')):>7} {rss:>8} {cpu:>7}"
        )
    print("(srv CPU: CPU seconds the FerretDB server spent during the row)")


def _shown(value) -> str:
    return "-" if value is None else str(value)


def verdicts(results: dict, documents: int) -> list[str]:
    m = results["mongodb"]
    lines = [
        f"first full sync = {m['first_sync_vs_limit']:.2f} x max(raw scan, raw bulk) "
        f"(target <= 1.3) and {m['first_sync_seconds']:.1f}s for {documents:,}",
        f"no-op resync = {m['noop_vs_first']:.2f} x first sync (target <= 0.2), "
        f"{m['noop_bulk_writes']} bulk write operations (target 0)",
        f"1%/1%/1% resync = {m['churn_vs_first']:.2f} x first sync (target <= 0.3)",
        f"peak RSS of the sync process = {m['peak_rss_mb']:.0f} MB for {documents:,} documents",
        f"no-change sync overhead = {results['overhead_seconds']:+.2f}s vs an empty flow run "
        "(target <= 0.5)",
    ]
    if "kinds" in results:
        lines += kind_verdicts(results["kinds"])
    if "s3" in results:
        lines.append(f"s3 first sync = {results['s3']['first_sync_vs_scan']:.2f} x raw S3 scan")
        ratio = results["s3"]["noop_vs_first"]
        lines.append(lazy_fetch_verdict("s3", ratio, "cursor cleared so all is diffed, 0 fetched"))
    if "directory" in results:
        ratio = results["directory"]["noop_vs_first"]
        lines.append(lazy_fetch_verdict("directory", ratio, "1 file touched, 1 fetched"))
    return lines


def _met(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "MISSED"


def kind_verdicts(kinds: dict) -> list[str]:
    """One line per sync-kind target, with the FerretDB floor (its CPU and the raw query) beside."""
    cpu = kinds["ferretdb_cpu_seconds"]
    raw_cpu = kinds["raw_range_query_ferretdb_cpu_seconds"]
    lines = []
    for key, (label, target) in KIND_TARGETS.items():
        ratio, spent = kinds[f"{key}_vs_first"], cpu.get(key)
        lines.append(
            f"{label} = {ratio:.2f} x first sync (target <= {target}, {_met(ratio, target)}); "
            f"FerretDB CPU {_seconds(spent)} during it, {_seconds(cpu.get('first'))} during "
            f"the first sync"
        )
    lines.append(
        f"raw 0-result range query on updated_at (PyMongo) = "
        f"{kinds['raw_range_query_seconds']:.2f}s, FerretDB CPU {_seconds(raw_cpu)}: FerretDB "
        "1.24 on SQLite scans the whole collection for every filtered query, so this is the "
        "floor of each MongoDB row; a real MongoDB with an index on updated_at would answer "
        "the range query from the index"
    )
    return lines


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def lazy_fetch_verdict(source: str, ratio: float, note: str) -> str:
    return (
        f"no-op full resync ({source}, {note}) = {ratio:.2f} x its first sync "
        f"(target <= {LAZY_FETCH_TARGET}, {_met(ratio, LAZY_FETCH_TARGET)})"
    )


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


async def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=2000, help="text files for the folder rows")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument(
        "--skip-kinds", action="store_true", help="skip the incremental/deletion MongoDB rows"
    )
    args = parser.parse_args()
    bench = Bench(args.documents, args.objects, args.files)
    started = time.time()
    await bench.mongodb()
    if not args.skip_kinds:
        await bench.kinds()
    await bench.overhead()
    await bench.directory()
    if not args.skip_s3:
        await bench.s3()
    print_table(bench.rows)
    print()
    for line in verdicts(bench.results, args.documents):
        print(" -", line)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "versions": await _versions(bench.settings),
        "documents": args.documents,
        "objects": args.objects,
        "rows": bench.rows,
        "results": bench.results,
    }
    output = RESULTS / f"bench-{args.documents}.json"
    output.write_text(json.dumps(report, indent=2))
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
