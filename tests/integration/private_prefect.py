"""A private Prefect server for tests that deploy or break it, so the shared stack's never sees
their deployments or outages."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from devstack.prefect_server import server_env
from tests.integration.waiting import wait_for_sync

PREFECT = str(Path(sys.executable).parent / "prefect")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, wait, SIGTERM again (a 3.9 worker may ignore the first), then kill."""
    for _ in range(2):
        process.terminate()
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue
    process.kill()
    process.wait()


class PrivatePrefect:
    """`prefect server start` on a free port with its own home; stoppable and restartable."""

    def __init__(self, home: Path, database_url: str | None = None):
        """`database_url`: a PostgreSQL database (postgresql+asyncpg://...) instead of SQLite."""
        self.home = home
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = {**os.environ, **server_env(self.port), "PREFECT_HOME": str(home)}
        if database_url:
            self.env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
        self.process: subprocess.Popen | None = None

    @property
    def client_env(self) -> dict[str, str]:
        return {**self.env, "PREFECT_API_URL": self.api}

    def start(self, timeout: float = 90) -> None:
        self.process = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def healthy() -> bool:
            try:
                return httpx.get(f"{self.api}/health", timeout=1).json() is True
            except (httpx.HTTPError, ValueError):
                return False

        try:
            wait_for_sync(healthy, timeout, what="a healthy private Prefect server", every=0.5)
        except AssertionError:
            self.stop()
            raise RuntimeError(f"private Prefect server did not start in {timeout:.0f} s") from None

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None
