"""`make bench [N=100000]`: our sync against the machine's limits, measured side by side.

Prints one table and writes bench/results/latest.json. Nothing here is asserted by `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
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

from bench.baselines import raw_bulk_load, raw_mongo_scan, raw_s3_scan  # noqa: E402
from bench.data import (  # noqa: E402
    change_one_percent_each,
    drop_collection,
    seed_mongo,
    seed_s3,
)
from connectors.config import load_settings  # noqa: E402
from connectors.es.client import create_client  # noqa: E402
from connectors.protocol import ensure_protocol_indices, protocol_for  # noqa: E402
from connectors.protocol.connector import new_connector_document  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = Path(__file__).resolve().parent.parent


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
    def __init__(self, documents: int, objects: int):
        self.documents, self.objects = documents, objects
        self.config_file = write_config()
        self.settings = load_settings(self.config_file)
        self.rows: list[dict] = []
        self.results: dict = {}

    async def job_for(self, connector_id: str) -> str:
        es = create_client(self.settings.elasticsearch)
        try:
            connectors, jobs = protocol_for(es, self.settings)
            connector = await connectors.get(connector_id)
            job = await jobs.claim(await jobs.get(await jobs.create(connector)), "bench")
            assert job is not None, "could not claim the benchmark job"
            return job.id
        finally:
            await es.close()

    async def measured_sync(self, name: str, connector_id: str, index: str) -> dict:
        job_id = await self.job_for(connector_id)
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
            "bulk_writes": writes,
            "peak_rss_mb": measured["peak_rss_mb"],
            "status": job["status"],
        }
        self.rows.append(row)
        return row

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
        self.results["s3"] = {"first_sync_vs_scan": first["seconds"] / scan}


async def _index_operations(es, index: str) -> int:
    """Index + delete operations Elasticsearch performed on `index` (its bulk write count)."""
    stats = await es.options(ignore_status=404).indices.stats(index=index, metric="indexing")
    totals = stats.get("_all", {}).get("primaries", {}).get("indexing", {})
    return totals.get("index_total", 0) + totals.get("delete_total", 0)


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'scenario':<40} {'seconds':>8} {'docs':>9} {'docs/s':>9} {'indexed':>8} "
        f"{'deleted':>8} {'writes':>8} {'peak RSS':>9}"
    )
    for r in rows:
        docs = r.get("documents")
        rate = f"{docs / r['seconds']:,.0f}" if docs else "-"
        print(
            f"{r['scenario']:<40} {r['seconds']:>8.2f} {docs if docs is not None else '-':>9} "
            f"{rate:>9} {r.get('indexed', '-'):>8} {r.get('deleted', '-'):>8} "
            f"{r.get('bulk_writes', '-'):>8} "
            f"{(str(round(r['peak_rss_mb'])) + ' MB') if 'peak_rss_mb' in r else '-':>9}"
        )


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
    if "s3" in results:
        lines.append(f"s3 first sync = {results['s3']['first_sync_vs_scan']:.2f} x raw S3 scan")
    return lines


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
    parser.add_argument("--skip-s3", action="store_true")
    args = parser.parse_args()
    bench = Bench(args.documents, args.objects)
    started = time.time()
    await bench.mongodb()
    await bench.overhead()
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
