"""`make notify`: a Failed sync run reaches the user. The automation it installs, on a private
Prefect server, posts to a webhook (a local HTTP server here) when a `sync` run fails."""

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from tests.integration.jobs import revealed_settings
from tests.integration.private_prefect import PrivatePrefect
from tests.integration.waiting import wait_for

pytestmark = pytest.mark.slow


class Inbox(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - the http.server interface
        length = int(self.headers.get("Content-Length") or 0)
        Inbox.received.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        return None


@pytest.fixture
def inbox():
    server = HTTPServer(("127.0.0.1", 0), Inbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Inbox.received = []
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


async def test_each_failed_job_is_posted_to_the_webhook_once(tmp_path, inbox, settings, harness):
    """A deployment-style run over a connector whose job fails notifies once (the job's run;
    the run over the connectors ends JobRunsFailed), and a run that fails on its own (a
    connector that does not exist) notifies too, with a link that opens it."""
    broken = await harness.create("directory", "notify-broken", path=str(tmp_path / "gone"))
    server = PrivatePrefect(tmp_path / "prefect-home")
    server.start()
    try:
        env = server.client_env
        installed = subprocess.run(
            [sys.executable, "-m", "elastic_ingest.deployments.notify", "--webhook", inbox],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert installed.returncode == 0, installed.stderr
        config_file = tmp_path / "config.yml"
        config_file.write_text(yaml.safe_dump(revealed_settings(settings)))
        for connector_id in (broken, "no-such-connector"):
            failing = (
                "import asyncio; from elastic_ingest.flows.sync import sync; "
                f"asyncio.run(sync(connector_id='{connector_id}', config_file='{config_file}',"
                " return_state=True))"
            )
            subprocess.run(
                [sys.executable, "-c", failing], env=env, capture_output=True, timeout=120
            )
        await wait_for(
            lambda: len(Inbox.received) >= 2, 60, what="2 notifications", every=0.5,
            detail=lambda: f"received: {Inbox.received}",
        )  # fmt: skip
        time.sleep(2)  # a third (the run over the connectors) would have come with these
        bodies = sorted(message["body"] for message in Inbox.received)
        assert len(bodies) == 2, bodies
        job_failure = next(body for body in bodies if "does not exist or is not a folder" in body)
        assert job_failure.startswith("Sync run ") and "ended Failed: job " in job_failure
        own_failure = next(body for body in bodies if "no-such-connector does not exist" in body)
        assert all("failed" in message["subject"] for message in Inbox.received)
        # a link that opens the run (the server renders it from PREFECT_UI_URL)
        assert f"http://127.0.0.1:{server.port}/runs/flow-run/" in own_failure, own_failure
    finally:
        server.stop()
