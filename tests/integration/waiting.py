"""Waiting for the stack to reach a state: one polling helper instead of a loop in each test,
so every wait fails the same way, saying what it waited for and for how long."""

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


def _timed_out(what: str, timeout: float, detail: Callable[[], str] | None) -> AssertionError:
    message = f"{what} not reached in {timeout:.0f} s"
    return AssertionError(f"{message}\n{detail()}" if detail is not None else message)


async def wait_for(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    every: float = 0.2,
    detail: Callable[[], str] | None = None,
) -> Any:
    """Poll `condition` (async or plain, no arguments) until it returns something truthy, and
    return that; after `timeout` s fail with `what` and `detail()` (a log, the last state)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, detail)
        await asyncio.sleep(every)


def wait_for_sync(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    every: float = 0.2,
    detail: Callable[[], str] | None = None,
) -> Any:
    """`wait_for` for code without an event loop (a fixture starting a server, a scraper)."""
    deadline = time.monotonic() + timeout
    while True:
        if result := condition():
            return result
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, detail)
        time.sleep(every)
