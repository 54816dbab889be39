"""What a poll pass costs as a flow run and run plainly (as the poll loop runs it): medians of five.

`python -m bench.poll_pass` with the stack up (`make stack`)."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from devstack.__main__ import environment

for _key, _value in environment().items():  # the stack's URLs, as `make bench` sets them
    os.environ.setdefault(_key, _value)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from elastic_ingest.flows.poll import _steps, poll  # noqa: E402
from elastic_ingest.tasks.runtime import flow_runtime  # noqa: E402


async def main() -> None:
    plain, flows = [], []
    for _ in range(6):  # the first of each warms up
        started = time.perf_counter()
        async with flow_runtime(None):
            await _steps(0, plain=True)
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        await poll(None, 0, run_here=False, return_state=True)
        flows.append(time.perf_counter() - started)
    print(
        f"poll pass: plain {statistics.median(plain[1:]):.3f}s, "
        f"as a flow run {statistics.median(flows[1:]):.3f}s (median of 5)"
    )


if __name__ == "__main__":
    asyncio.run(main())
