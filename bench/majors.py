"""`make bench-majors`: the MongoDB first sync and no-op resync on Elasticsearch 9.x and 8.19,
run back to back in alternating order (the machine is shared and noisy: compare, don't trust one
number). Each round runs `python -m bench --only-mongodb` against each version's node."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from devstack.es_node import COMPAT_VERSION, DEFAULT_VERSION

RESULTS = Path(__file__).resolve().parent / "results"
# the stack's variables of whichever node ran last must not leak into the next version's run
STACK_VARIABLES = ("ELASTICSEARCH_URL", "ELASTICSEARCH_API_KEY", "STACK_ES_PORT")
RAW_BULK = "raw bulk load (async_streaming_bulk)"


def run_once(version: str, documents: int) -> dict:
    """One `--only-mongodb` bench against `version`'s node (started if needed); its report."""
    env = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
    env["STACK_ES_VERSION"] = version
    subprocess.run([sys.executable, "-m", "devstack", "up", "elasticsearch"], env=env, check=True)
    command = [sys.executable, "-m", "bench", "--only-mongodb", f"--documents={documents}"]
    subprocess.run([*command, "--partitions="], env=env, check=True)
    return json.loads((RESULTS / "latest.json").read_text())


def summary(report: dict) -> dict:
    rows = {row["scenario"]: row for row in report["rows"]}
    first, noop = rows["first full sync (mongodb)"], rows["no-op resync"]
    limit = max(rows["raw source scan (mongodb)"]["seconds"], rows[RAW_BULK]["seconds"])
    return {
        "version": report["versions"]["elasticsearch"],
        "first": first["seconds"],
        "first_vs_raw": first["seconds"] / limit,
        "noop": noop["seconds"],
        "noop_vs_first": noop["seconds"] / first["seconds"],
        "raw_bulk": rows[RAW_BULK]["seconds"],
        "es_cpu": first.get("es_cpu"),
        "sync_cpu": first.get("sync_cpu"),
        "peak_rss_mb": max(first["peak_rss_mb"], noop["peak_rss_mb"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.majors", description=__doc__)
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--versions", default=f"{DEFAULT_VERSION},{COMPAT_VERSION}")
    args = parser.parse_args()
    versions = [version.strip() for version in args.versions.split(",") if version.strip()]
    measured = []
    for round_number in range(args.rounds):
        order = versions if round_number % 2 == 0 else list(reversed(versions))
        for version in order:
            print(f"\n== round {round_number + 1}: Elasticsearch {version}", flush=True)
            measured.append(summary(run_once(version, args.documents)))
    print(f"\nMongoDB, {args.documents} documents, {args.rounds} alternating rounds:")
    print(
        f"{'Elasticsearch':<14} {'first s':>8} {'first/raw':>9} {'no-op s':>8} {'no-op/first':>11} "
        f"{'raw bulk s':>10} {'sync CPU':>8} {'ES CPU':>7} {'peak RSS':>8}"
    )
    for row in measured:
        print(
            f"{row['version']:<14} {row['first']:>8.2f} {row['first_vs_raw']:>9.2f} "
            f"{row['noop']:>8.2f} {row['noop_vs_first']:>11.3f} {row['raw_bulk']:>10.2f} "
            f"{row['sync_cpu'] or 0:>8.2f} {row['es_cpu'] or 0:>7.2f} {row['peak_rss_mb']:>5.0f} MB"
        )
    (RESULTS / f"majors-{args.documents}.json").write_text(json.dumps(measured, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
