"""The check a writer makes before each bulk request: a recent "yes" is reused, a "yes" that
took too long to come (the process may have been frozen while it waited) is asked for again,
and a "no" stops the writer."""

from datetime import timedelta

import pytest

from elastic_ingest.connectors.job.ownership import OwnerCheck
from elastic_ingest.connectors.protocol import clock as wall_clock
from elastic_ingest.connectors.protocol.job import JobLost


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def asking(clock, answers):
    """An `ask` that takes each of `answers` seconds in turn to say yes, and counts its calls."""
    calls = []

    async def ask():
        calls.append(clock.now)
        clock.now += answers[len(calls) - 1]

    return ask, calls


async def test_a_recent_yes_is_reused_and_an_old_one_asked_again():
    clock = Clock()
    ask, calls = asking(clock, [0.01, 0.01])
    check = OwnerCheck(ask, reuse_for=1.0, answer_within=1.0, clock=clock)
    await check()
    clock.now += 0.5
    await check()  # reused
    assert len(calls) == 1
    clock.now += 1.0
    await check()
    assert len(calls) == 2


async def test_a_yes_that_came_late_is_asked_for_again():
    clock = Clock()
    ask, calls = asking(clock, [30.0, 0.01])  # frozen for 30 s while the first answer came
    check = OwnerCheck(ask, reuse_for=1.0, answer_within=1.0, clock=clock)
    await check()
    assert len(calls) == 2
    assert check.asked_at == calls[1]  # trusted from when the timely answer was asked for


async def test_no_reuse_still_asks_once_per_request():
    clock = Clock()
    ask, calls = asking(clock, [0.01, 0.01])
    check = OwnerCheck(ask, reuse_for=0.0, answer_within=1.0, clock=clock)
    await check()
    await check()
    assert len(calls) == 2


async def test_a_no_stops_the_writer():
    async def lost():
        raise RuntimeError("job j is error; this worker no longer owns it")

    with pytest.raises(RuntimeError, match="no longer owns it"):
        await OwnerCheck(lost, reuse_for=1.0, answer_within=1.0)()


async def test_after_an_answer_a_yes_within_its_trust_covers_the_request():
    clock = Clock()
    ask, calls = asking(clock, [0.01])
    check = OwnerCheck(ask, reuse_for=0.0, answer_within=1.0, clock=clock)
    await check()
    clock.now += 0.5  # the request's round trip
    assert await check.lost_before_landing() is None
    assert len(calls) == 1  # no question asked for it


async def test_after_an_answer_that_came_late_the_job_is_asked_about_again():
    """Frozen between the check and the send: the answer comes long after the last yes, so
    ownership is asked again, and a "no" is handed back for the writer to undo the request."""
    clock = Clock()
    answers = iter([None, JobLost("job j is error; this worker no longer owns it")])

    async def ask():
        if isinstance(answer := next(answers), JobLost):
            raise answer

    check = OwnerCheck(ask, reuse_for=1.0, answer_within=1.0, clock=clock)
    await check()
    clock.now += 30.0
    lost = await check.lost_before_landing()
    assert isinstance(lost, JobLost) and "no longer owns it" in str(lost)


class AnsweredJob:
    """What `ask` returns: the job as read, here only its last heartbeat."""

    def __init__(self, seconds_ago: float):
        last_seen = wall_clock.now() - timedelta(seconds=seconds_ago)
        self.doc = {"last_seen": wall_clock.iso(last_seen)}


async def test_a_yes_holds_no_longer_than_the_stale_rule_leaves_the_job():
    """Heartbeats that failed for a while leave the job closer to the stale-job rule: a "yes"
    then holds only until three quarters of the rule's threshold have passed since the last
    heartbeat, not a quarter of the threshold from the answer."""
    monotonic = Clock()
    calls = []
    heartbeat_ages = iter([85, 95, 95])  # 5 s of the 120 s threshold's first 90, then none

    async def ask():
        calls.append(monotonic.now)
        return AnsweredJob(seconds_ago=next(heartbeat_ages))

    check = OwnerCheck(ask, reuse_for=1.0, answer_within=30.0, clock=monotonic, stale_after=120)
    await check()
    monotonic.now += 10  # a request answered 10 s later
    assert await check.lost_before_landing() is None
    assert len(calls) == 2  # asked again: the first "yes" held ~5 s, not 30
    monotonic.now += 0.5
    await check()
    assert len(calls) == 3  # a job that may be stale-able now is asked about before each request
