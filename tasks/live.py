"""What a running sync shares between its flow and its tasks in this process: live counters
(read by the job heartbeat) and the cancel check. Tasks receive only the job id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connectors.sync import SyncProgress


@dataclass
class LiveJob:
    progress: SyncProgress
    canceled: Callable[[], bool]


_LIVE: dict[str, LiveJob] = {}


def register(job_id: str, live: LiveJob) -> None:
    _LIVE[job_id] = live


def unregister(job_id: str) -> None:
    _LIVE.pop(job_id, None)


def live_job(job_id: str) -> LiveJob:
    """The job's shared state; a standalone one when the task runs outside its flow."""
    return _LIVE.get(job_id) or LiveJob(SyncProgress(), lambda: False)
