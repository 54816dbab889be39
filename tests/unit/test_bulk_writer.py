"""The bulk writer against a fake of our own `send` interface (no Elasticsearch client patched)."""

import pytest

from elastic_ingest.connectors.config import BulkSettings
from elastic_ingest.connectors.es.bulk import BulkError, BulkWriter, Fenced, TooManyRejections


class FakeSend:
    """Answers bulk bodies like Elasticsearch would; `plan` scripts failures per call."""

    def __init__(self, plan=None):
        self.calls = []
        self.bodies = []
        self.plan = list(plan or [])

    async def __call__(self, body: bytes) -> dict:
        lines = body.decode().splitlines()
        actions = [line for line in lines if '"_id"' in line]
        ids = [line.split('"_id":"')[1].split('"')[0] for line in actions]
        self.calls.append(ids)
        self.bodies.append(body)
        step = self.plan.pop(0) if self.plan else {}
        if isinstance(step, Exception):
            raise step
        items = []
        for action, document_id in zip(actions, ids, strict=True):
            kind = "delete" if action.startswith('{"delete"') else "index"
            status = step.get(document_id, 200 if kind == "delete" else 201)
            outcome = "deleted" if kind == "delete" else "created"
            result = {"status": status, "_id": document_id}
            if status < 300:
                result["result"] = outcome
            else:
                result["error"] = {"type": "some_exception", "reason": f"status {status}"}
            items.append({kind: result})
        return {"errors": bool(step), "items": items}


def settings(**overrides):
    values = {"operations_per_request": 3, "retry_backoff_seconds": 0, "max_retries": 3}
    return BulkSettings(**{**values, **overrides})


async def write(writer, n):
    for i in range(n):
        await writer.index(f"d{i}", b'{"n": 1}')
    return await writer.close()


async def test_batches_by_operation_count():
    send = FakeSend()
    stats = await write(BulkWriter(send, settings()), 7)
    assert [len(call) for call in send.calls] == [3, 3, 1]
    assert stats.created == 7 and stats.requests == 3


async def test_batches_by_bytes():
    send = FakeSend()
    writer = BulkWriter(send, settings(operations_per_request=100, max_bytes_per_request=1024))
    for i in range(10):
        await writer.index(f"d{i}", b'{"text": "' + b"x" * 400 + b'"}')
    await writer.close()
    assert all(len(call) <= 2 for call in send.calls) and sum(map(len, send.calls)) == 10


async def test_only_the_transiently_failed_items_are_retried():
    send = FakeSend(plan=[{"d1": 429}, {}])
    stats = await write(BulkWriter(send, settings()), 3)
    assert send.calls == [["d0", "d1", "d2"], ["d1"]]
    assert stats.created == 3 and stats.failed == 0 and stats.retried_items == 1


async def test_a_rejected_item_is_counted_failed_with_its_reason():
    send = FakeSend(plan=[{"d2": 400}])
    stats = await write(BulkWriter(send, settings()), 3)
    assert stats.failed == 1 and stats.created == 2
    assert stats.failures[0].id == "d2" and "status 400" in stats.failures[0].reason


async def test_whole_request_timeouts_are_retried_then_give_up():
    send = FakeSend(plan=[TimeoutError(), {}])
    stats = await write(BulkWriter(send, settings()), 2)
    assert stats.created == 2 and len(send.calls) == 2
    always = FakeSend(plan=[TimeoutError()] * 10)
    with pytest.raises(BulkError, match="after 4 attempts"):
        await write(BulkWriter(always, settings()), 2)


async def test_items_still_throttled_after_the_last_retry_are_counted_apart_from_failures():
    send = FakeSend(plan=[{"d0": 429}] * 4)
    stats = await write(BulkWriter(send, settings(max_retries=3)), 1)
    assert (stats.throttled, stats.failed) == (1, 0) and len(send.calls) == 4
    assert [(item.id, item.status) for item in stats.throttled_items] == [("d0", 429)]


async def test_throttled_items_never_count_against_the_rejection_limit():
    send = FakeSend(plan=[{f"d{i}": 429 for i in range(5)}] * 4)  # 2 requests, 2 tries each
    writer = BulkWriter(send, settings(max_retries=1), max_rejected=2)
    stats = await write(writer, 5)
    assert (stats.throttled, stats.failed, stats.created) == (5, 0, 0)


async def test_the_failure_limit_stops_the_writer_at_the_first_failure_past_it():
    plan = [{f"d{i}": 400} for i in range(100)]
    send = FakeSend(plan=plan)
    writer = BulkWriter(
        send, settings(operations_per_request=1, requests_in_flight=1), max_rejected=2
    )
    with pytest.raises(TooManyRejections, match="3 documents failed \\(limit 2\\)"):
        await write(writer, 100)
    assert writer.stats.failed == 3 and len(send.calls) == 3


async def test_a_version_conflict_fences_the_writer():
    send = FakeSend(plan=[{"d1": 409}])
    writer = BulkWriter(send, settings(), version=7)
    with pytest.raises(Fenced, match="written by a newer job"):
        await write(writer, 3)


class ScriptedOwner:
    """An ownership check (our own interface) that says "no" from its `lost_at`-th question on,
    before requests or after their answers, and counts the questions."""

    def __init__(self, lost_at: int):
        self.lost_at, self.asked = lost_at, 0

    def _lost(self) -> RuntimeError | None:
        self.asked += 1
        return RuntimeError("job taken over") if self.asked >= self.lost_at else None

    async def __call__(self) -> None:
        if lost := self._lost():
            raise lost

    async def lost_before_landing(self) -> RuntimeError | None:
        return self._lost()


async def test_the_owner_check_runs_before_each_request_and_stops_the_writer():
    send = FakeSend()
    owner = ScriptedOwner(lost_at=3)  # before request 1, after it, before request 2
    writer = BulkWriter(send, settings(requests_in_flight=1), check_owner=owner)
    with pytest.raises(RuntimeError, match="job taken over"):
        await write(writer, 9)
    assert len(send.calls) == 1  # the second request never left
    assert writer.stats.landed_late == 0


async def test_a_request_answered_after_a_takeover_is_undone_with_the_same_fence():
    """The process froze between its check and its send, and its job was taken over: what the
    request indexed is deleted again at the same version, so a newer job's documents stay."""
    send = FakeSend(plan=[{"d1": 400}, {"d2": 409}])  # d2: a newer job wrote it since
    owner = ScriptedOwner(lost_at=2)  # yes before the request, no after its answer
    writer = BulkWriter(send, settings(requests_in_flight=1), version=7, check_owner=owner)
    with pytest.raises(RuntimeError, match="job taken over"):
        await write(writer, 3)
    assert send.calls == [["d0", "d1", "d2"], ["d0", "d2"]]  # d1 never landed
    assert send.bodies[1].count(b'"delete"') == 2
    assert send.bodies[1].count(b'"version":7,"version_type":"external_gte"') == 2
    assert (writer.stats.landed_late, writer.stats.undone, writer.stats.created) == (2, 1, 0)
