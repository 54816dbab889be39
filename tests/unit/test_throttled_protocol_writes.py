"""Throttling is not failure: a protocol bulk item the cluster answers 429 is sent again after a
pause, and a check-in that still fails never stops the rest of a poll pass."""

import json

import httpx
import pytest

from elastic_ingest.connectors import poll
from elastic_ingest.connectors.config import parse_settings
from elastic_ingest.connectors.es import busy
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.transport import Transport
from elastic_ingest.connectors.protocol.connector import ConnectorIndex


def throttling_cluster(throttled_answers: int, sent: list[list[str]]) -> ESClient:
    """A cluster that answers 429 for item `b` of the first `throttled_answers` bulk requests."""

    def handle(request: httpx.Request) -> httpx.Response:
        lines = [json.loads(line) for line in request.content.splitlines() if line]
        ids = [line["update"]["_id"] for line in lines if "update" in line]
        sent.append(ids)
        items = []
        for document_id in ids:
            status = 429 if document_id == "b" and len(sent) <= throttled_answers else 200
            error = {"type": "es_rejected_execution_exception"} if status == 429 else None
            items.append({"update": {"_id": document_id, "status": status, "error": error}})
        return httpx.Response(200, json={"errors": True, "items": items})

    transport = Transport(["http://es.test:9200"], http_transport=httpx.MockTransport(handle))
    return ESClient(transport, max_retries=0)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(busy, "THROTTLED_PAUSE_SECONDS", 0.0)


async def test_a_throttled_check_in_item_is_sent_again_until_it_lands():
    sent: list[list[str]] = []
    es = throttling_cluster(throttled_answers=2, sent=sent)
    await ConnectorIndex(es, ".elastic-connectors").heartbeat(["a", "b", "c"])
    assert sent == [["a", "b", "c"], ["b"], ["b"]]  # only the throttled item, again
    await es.close()


async def test_throttled_past_the_retries_is_an_error_naming_the_document():
    sent: list[list[str]] = []
    es = throttling_cluster(throttled_answers=100, sent=sent)
    with pytest.raises(RuntimeError, match="b not updated"):
        await ConnectorIndex(es, ".elastic-connectors").heartbeat(["a", "b"])
    assert len(sent) == busy.THROTTLED_RETRIES + 1
    await es.close()


class NoCheckIn:
    """Our own connectors index, whose bulk check-in fails; it holds no connector."""

    async def heartbeat(self, connector_ids):
        raise RuntimeError(".elastic-connectors/b not updated: es_rejected_execution_exception")

    async def all(self):
        return []


async def test_a_failed_check_in_does_not_stop_the_pass(caplog):
    settings = parse_settings({})
    assert await poll.heartbeat_and_publish(settings, NoCheckIn()) == {}
    assert "check-in (last_seen) failed" in caplog.text
