"""Run one claimed job through the `sync` flow in a fresh process; print seconds and peak RSS.

`--empty-flow` instead times an empty Prefect flow run in the same way (the overhead baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

from prefect import flow


@flow(name="empty")
async def empty() -> None:
    return None


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file")
    parser.add_argument("--job")
    parser.add_argument("--empty-flow", action="store_true")
    parser.add_argument("--warmup", action="store_true", help="run an empty flow first")
    args = parser.parse_args()
    from flows.sync import sync

    if args.warmup:
        await empty()
    started = time.perf_counter()
    if args.empty_flow:
        await empty()
    else:
        await sync(job_id=args.job, config_file=args.config_file, return_state=True)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb}))


if __name__ == "__main__":
    asyncio.run(main())
