"""Subprocesses a test starts never outlive it: a process that does not end in time is killed
(a stuck service loop would otherwise eat a core under every later test)."""

from __future__ import annotations

import subprocess


def wait_ended(process: subprocess.Popen, timeout: float) -> tuple:
    """`process.communicate()`, but a process still running after `timeout` s is killed and the
    test fails saying so."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        tail = stderr[-2000:] if stderr else ""
        raise AssertionError(
            f"{process.args} did not end in {timeout:.0f} s; killed\n{tail}"
        ) from None
