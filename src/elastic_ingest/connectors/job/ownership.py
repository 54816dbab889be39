"""Whether the job is still this worker's, asked before each bulk request and confirmed after
it. A job is taken over only after `stale_job_seconds` without a heartbeat, so a "yes" holds
until the job's last heartbeat plus three quarters of that, and never longer than a quarter; a
"yes" that took longer than that quarter to come is asked for again (a process frozen while it
waited would otherwise resume and write on an old answer). A process can also freeze after the
check and before its request leaves: an answer that may have landed after a takeover is told
apart (`lost_before_landing`) so that the writer can undo what it wrote too late."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from elastic_ingest.connectors.protocol import clock
from elastic_ingest.connectors.protocol.job import JobLost


class OwnerCheck:
    """`await check()` returns while the job is still ours and raises (JobLost) once it is not.
    `ask` asks Elasticsearch (and returns the job as read); a "yes" is reused for `reuse_for`
    seconds from when it was asked, trusted only when it came within `answer_within` seconds,
    and held for at most `answer_within` seconds: less when the job's last heartbeat is so old
    that the stale-job rule (`stale_after` seconds of silence) could take it sooner."""

    def __init__(
        self,
        ask: Callable[[], Awaitable[object]],
        reuse_for: float,
        answer_within: float,
        clock: Callable[[], float] = time.monotonic,
        stale_after: float | None = None,
    ):
        self.ask, self.clock = ask, clock
        self.reuse_for, self.answer_within = reuse_for, answer_within
        self.stale_after = stale_after
        self.asked_at = -float("inf")  # when the last trusted "yes" was asked for
        self.holds_for = 0.0  # and for how long from then it holds

    async def __call__(self) -> None:
        await self._yes_within(min(self.reuse_for, self.holds_for))

    async def lost_before_landing(self) -> JobLost | None:
        """After a request's answer: None when the job was still ours when it landed, the
        JobLost otherwise. A job is never ours again once lost, so a trusted "yes" still
        holding now covers every request answered before now; failing that, ask again."""
        try:
            await self._yes_within(self.holds_for)
        except JobLost as lost:
            return lost
        return None

    async def _yes_within(self, reuse_for: float) -> None:
        if self.clock() - self.asked_at < reuse_for:
            return
        while True:
            asked_at = self.clock()
            job = await self.ask()  # raises when the job is no longer ours
            if self.clock() - asked_at < self.answer_within:
                self.asked_at = asked_at
                self.holds_for = self._holds_for(job)
                return

    def _holds_for(self, job: object) -> float:
        """How long a "yes" about `job` holds: at most `answer_within`, and only until the job
        is three quarters of the way to the stale-job rule (its last heartbeat, or its start,
        plus `stale_after`), the last quarter left for another machine's clock running ahead."""
        doc = getattr(job, "doc", None) or {}
        last_seen = clock.parse(doc.get("last_seen") or doc.get("started_at"))
        if self.stale_after is None or last_seen is None:
            return self.answer_within
        left = (last_seen - clock.now()).total_seconds() + self.stale_after * 3 / 4
        return max(0.0, min(self.answer_within, left))
