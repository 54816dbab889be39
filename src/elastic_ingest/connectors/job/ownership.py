"""Whether the job is still this worker's, asked before each bulk request and confirmed after
it. A job is taken over only after `stale_job_seconds` without a heartbeat, so a "yes" asked
for less than a fraction of that ago still holds; a "yes" that took longer than that to come is
asked for again (a process frozen while it waited would otherwise resume and write on an old
answer). A process can also freeze after the check and before its request leaves: the answer
that comes back after a takeover is told apart (`lost_before_landing`) so the writer can undo
what it wrote too late."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from elastic_ingest.connectors.protocol.job import JobLost


class OwnerCheck:
    """`await check()` returns while the job is still ours and raises (JobLost) once it is not.
    `ask` asks Elasticsearch; a "yes" is reused for `reuse_for` seconds from when it was asked,
    and trusted only when it came within `answer_within` seconds."""

    def __init__(
        self,
        ask: Callable[[], Awaitable[object]],
        reuse_for: float,
        answer_within: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.ask, self.clock = ask, clock
        self.reuse_for, self.answer_within = reuse_for, answer_within
        self.asked_at = -float("inf")  # when the last trusted "yes" was asked for

    async def __call__(self) -> None:
        await self._yes_within(self.reuse_for)

    async def lost_before_landing(self) -> JobLost | None:
        """After a request's answer: None when the job was still ours when it landed, the
        JobLost otherwise. A job is never ours again once lost, so a trusted "yes" still
        holding now covers every request answered before now; failing that, ask again."""
        try:
            await self._yes_within(self.answer_within)
        except JobLost as lost:
            return lost
        return None

    async def _yes_within(self, reuse_for: float) -> None:
        if self.clock() - self.asked_at < reuse_for:
            return
        while True:
            asked_at = self.clock()
            await self.ask()  # raises when the job is no longer ours
            if self.clock() - asked_at < self.answer_within:
                self.asked_at = asked_at
                return
