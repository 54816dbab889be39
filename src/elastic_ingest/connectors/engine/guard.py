"""The mass-delete guard. A read that succeeds but lists too little (an expired token answering
an empty page, a dropped collection whose cursor just ends, a wrong prefix) looks like a complete
listing; deleting everything it missed is how connector services lose their users' indices. So a
sync that would delete more than a fraction of its index, and more than a minimum count, holds
those deletes until a person lets them through (`elastic-ingest job release-deletes JOB_ID`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import orjson

from elastic_ingest.connectors.engine.snapshot import IndexSnapshot, load_stale

SAMPLE = 10


@dataclass(frozen=True)
class DeleteGuard:
    """Hold a batch of deletes that is both above `fraction` of the index and above `minimum`
    documents; `released`: this one job may pass (a release job)."""

    fraction: float = 0.5
    minimum: int = 1000
    released: bool = False

    def holds(self, stale: int, indexed: int) -> bool:
        if self.released or indexed <= 0:
            return False
        return stale > self.minimum and stale / indexed > self.fraction


class DeletesHeld(RuntimeError):
    """A sync's deletes were held by the guard; nothing was deleted. `held` says how many, of
    how many indexed documents, with a sample of the ids."""

    def __init__(self, message: str, held: dict):
        super().__init__(message)
        self.held = held


def stale_count(snapshot: IndexSnapshot) -> int:
    """How many indexed ids the complete listing did not produce."""
    return load_stale(snapshot.stale_path).count(1)


def stale_sample(snapshot: IndexSnapshot, size: int = SAMPLE) -> list[str]:
    """The first `size` stale ids, in snapshot order (a user checks these at the source)."""
    stale = load_stale(snapshot.stale_path)
    with open(snapshot.ids_path, "rb") as ids:
        chosen = (line for position, line in enumerate(ids) if stale[position])
        return [orjson.loads(line) for line in itertools.islice(chosen, size)]
