"""Run one claimed job through the `sync` flow in a fresh process; print what it cost as JSON.

It prints the seconds, the peak RSS, and the CPU seconds that this process and each
`--watch NAME=PID` server spent during the sync, all over the same stretch of time.
`--empty-flow` instead times an empty Prefect flow run in the same way (the overhead baseline);
`--idle SERVICE_TYPE` only imports what a sync of that source imports and prints the RSS held.
`--startup` (without `--warmup`) also prints when, counted from the process's start, the imports
were done, the flow run was running, and the stage that reads the source started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from prefect import flow

from bench.processes import cpu_snapshot, cpu_spent, memory_mb, own_cpu_seconds, started_at

STARTED = started_at()
READS_SOURCE = ("stream-and-index", "write-changes", "list-ids", "write-identities")


@flow(name="empty")
async def empty() -> None:
    return None


def watched(value: str) -> tuple[str, int]:
    """`NAME=PID` -> (name, pid): a server whose CPU time the sync costs."""
    name, _, pid = value.partition("=")
    if not name or not pid.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAME=PID")
    return name, int(pid)


def import_source(config_file: str | None, service_type: str) -> None:
    """Import the source class as a sync resolves it, so the idle RSS includes its libraries."""
    from elastic_ingest.connectors.config import load_settings
    from elastic_ingest.connectors.registry import source_class_for

    source_class_for(load_settings(config_file).sources, service_type)


async def stage_starts(state) -> dict:
    """Seconds from this process's start to its flow run running and to the first task run
    that reads the source (the API records each run's start time)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run_id = state.state_details.flow_run_id
    async with get_client() as client:
        for _ in range(50):  # task run states reach the API as events, a moment later
            flow_run = await client.read_flow_run(run_id)
            filter_ = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            tasks = await client.read_task_runs(flow_run_filter=filter_)
            reading = [t for t in tasks if t.name.startswith(READS_SOURCE) and t.start_time]
            if reading and flow_run.start_time:
                first = min(t.start_time for t in reading)
                return {
                    "flow_running": flow_run.start_time.timestamp() - STARTED,
                    "first_document_requested": first.timestamp() - STARTED,
                }
            await asyncio.sleep(0.1)
    return {}


def peak_rss_mb() -> float | None:
    """VmHWM, not getrusage's ru_maxrss: Linux carries that over exec from the forking parent,
    so it reported the bench process's RSS whenever that was the larger."""
    return memory_mb("self", "VmHWM")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file")
    parser.add_argument("--job")
    parser.add_argument("--empty-flow", action="store_true")
    parser.add_argument("--idle", metavar="SERVICE_TYPE", help="import, report RSS, sync nothing")
    parser.add_argument("--warmup", action="store_true", help="run an empty flow first")
    parser.add_argument("--startup", action="store_true", help="time the start-up stretches")
    parser.add_argument("--watch", type=watched, action="append", default=[], metavar="NAME=PID")
    args = parser.parse_args()
    from elastic_ingest.flows.sync import sync

    imported = time.time() - STARTED
    if args.idle:
        import_source(args.config_file, args.idle)
    if args.warmup:
        await empty()
    if args.idle:
        print(json.dumps({"rss_mb": memory_mb(), "peak_rss_mb": peak_rss_mb()}))
        return
    before = cpu_snapshot(dict(args.watch))
    started = time.perf_counter()
    if args.empty_flow:
        await empty()
    else:
        state = await sync(job_id=args.job, config_file=args.config_file, return_state=True)
    seconds = time.perf_counter() - started
    spent = cpu_spent(before, cpu_snapshot(dict(args.watch)))
    report = {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "cpu_seconds": spent,  # "own" is this process; the rest as named by --watch
        "process_cpu_seconds": own_cpu_seconds(),  # with start-up and warm-up
    }
    if args.startup:
        report["startup"] = {"imports_done": imported, **await stage_starts(state)}
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
