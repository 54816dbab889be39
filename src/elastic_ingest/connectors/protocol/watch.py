"""A running job's heartbeat: refreshes `last_seen` + counters and notices cancel requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from elastic_ingest.connectors.protocol.job import Job, JobIndex, JobLost, JobStatus

logger = logging.getLogger(__name__)


class JobWatch:
    """Use as `async with JobWatch(jobs, job, counters, interval) as watch:`; `watch.canceled`
    turns True within one interval of someone setting the job to `canceling`, and `watch.lost`
    holds a JobLost once the job is no longer this worker's (the sync must stop writing)."""

    def __init__(
        self,
        jobs: JobIndex,
        job: Job,
        counters: Callable[[], dict],
        interval: float,
        stop_requested: Callable[[], Awaitable[bool]] | None = None,
    ):
        """`stop_requested` is a second source of cancel requests (e.g. the orchestrator's)."""
        self.stop_requested = stop_requested
        self.jobs = jobs
        self.job = job
        self.counters = counters
        self.interval = interval
        self.canceled = job.status == JobStatus.CANCELING
        self.lost: JobLost | None = None
        self._task: asyncio.Task | None = None

    async def beat(self) -> None:
        self.job = await self.jobs.heartbeat(self.job, self.counters())
        if self.job.status == JobStatus.CANCELING:
            self.canceled = True
        elif self.stop_requested is not None and await self.stop_requested():
            self.canceled = True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except JobLost as error:
                self.lost = error
                return
            except Exception as error:  # a missed heartbeat must not kill the sync
                logger.warning("job %s heartbeat failed: %s", self.job.id, error)

    async def __aenter__(self) -> JobWatch:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
