"""The short stages of a sync retry network trouble, never a configuration or source mistake."""

import pytest

from elastic_ingest.connectors.job.setup import JobSetupError
from elastic_ingest.connectors.source import SourceError
from elastic_ingest.tasks.sync_tasks import retrying


def failing_first(times: int, error: Exception):
    calls = []

    async def call():
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return call, calls


@pytest.mark.parametrize("error", [TimeoutError("slow"), ConnectionRefusedError("refused")])
async def test_network_trouble_is_retried(error):
    call, calls = failing_first(2, error)
    assert await retrying("stage", call, retries=2, delay=0) == "done"
    assert len(calls) == 3


async def test_trouble_that_outlasts_the_retries_fails_the_stage():
    call, calls = failing_first(5, TimeoutError("slow"))
    with pytest.raises(TimeoutError):
        await retrying("stage", call, retries=2, delay=0)
    assert len(calls) == 3


@pytest.mark.parametrize(
    "error",
    [SourceError("folder does not exist"), JobSetupError("unknown service type"), ValueError("x")],
)
async def test_mistakes_fail_at_once(error):
    call, calls = failing_first(1, error)
    with pytest.raises(type(error)):
        await retrying("stage", call, retries=3, delay=0)
    assert len(calls) == 1
