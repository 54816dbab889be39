"""The poll loop's metrics endpoint, scraped for real while it runs a sync and after."""

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import yaml

from elastic_ingest.connectors.config import load_settings
from elastic_ingest.connectors.protocol import protocol_for
from elastic_ingest.connectors.protocol.connector import new_connector_document
from tests.integration.private_prefect import free_port
from tests.integration.processes import wait_ended
from tests.integration.stack import elasticsearch_section
from tests.integration.waiting import wait_for_sync

PROJECT = Path(__file__).resolve().parents[2]


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the metric `name` whose labels include `labels`, in Prometheus text."""
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(3))
    return None


def scrape_until(url: str, seconds: float, predicate, what: str) -> str:
    text = ""

    def scrape() -> str | None:
        nonlocal text
        try:
            text = httpx.get(url, timeout=2).text
        except httpx.HTTPError:
            text = ""
        return text if text and predicate(text) else None

    return wait_for_sync(scrape, seconds, what=what, detail=lambda: f"last scrape:\n{text[-3000:]}")


async def test_the_poll_loop_serves_sync_metrics_a_monitor_can_scrape(es, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    address = f"127.0.0.1:{free_port()}"
    index = f"metrics-{suffix}"
    protocol = {
        "connectors_index": f".elastic-connectors-metrics-{suffix}",
        "jobs_index": f".elastic-connectors-sync-jobs-metrics-{suffix}",
    }
    es.created_indices += [index, *protocol.values()]
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "elasticsearch": elasticsearch_section(),
                "protocol": protocol,
                "service": {
                    "poll_interval": 1,
                    "heartbeat_interval": 0.5,
                    "use_deployments": False,
                },
                "metrics": {"address": address},
                "sources": {"slow": "tests.integration.slow_source:SlowDataSource"},
            }
        )
    )
    loop = subprocess.Popen(
        [sys.executable, "-m", "elastic_ingest.flows.poll", "-c", str(config_file)],
        cwd=PROJECT, env={**os.environ, "PYTHONPATH": str(PROJECT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://{address}/metrics"
    try:
        scrape_until(
            url, 60, lambda text: sample(text, "elastic_ingest_poll_passes_total"), "a poll pass"
        )
        connectors, _ = protocol_for(es, load_settings(str(config_file)))
        document = new_connector_document("slow", index, "metered")
        document.update(
            status="configured",
            sync_now=True,
            configuration={"count": {"value": 300}, "pause": {"value": 0.2}},  # ~6 s
        )
        connector = await connectors.create(document)

        during = scrape_until(
            url, 60, lambda t: sample(t, "elastic_ingest_jobs", status="in_progress") == 1,
            "a job in progress",
        )  # fmt: skip
        assert sample(during, "elastic_ingest_connectors", status="connected") == 1

        def finished(text: str) -> bool:
            return sample(text, "elastic_ingest_syncs_total", connector=connector) == 1

        after = scrape_until(url, 90, finished, "the sync counted")
        labels = {"connector": connector, "job_type": "full"}
        assert sample(after, "elastic_ingest_syncs_total", status="completed", **labels) == 1
        assert sample(after, "elastic_ingest_documents_total", outcome="read", **labels) == 300
        assert sample(after, "elastic_ingest_documents_total", outcome="written", **labels) == 300
        assert sample(after, "elastic_ingest_documents_total", outcome="deleted", **labels) == 0
        age = sample(after, "elastic_ingest_last_success_age_seconds", connector=connector)
        assert age is not None and 0 <= age < 60
        count = sample(after, "elastic_ingest_sync_duration_seconds_count", job_type="full")
        assert count == 1
        assert sample(after, "elastic_ingest_poll_passes_total", result="ok") >= 2
    finally:
        loop.send_signal(signal.SIGTERM)
        output, _ = wait_ended(loop, 60)
    assert f"metrics at http://{address}/metrics" in output
