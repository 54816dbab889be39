"""The `elastic-ingest worker` on the `elastic-ingest` work pool (started by `make deploy`): a
Prefect process worker whose syncs are forks of one warm process."""

from __future__ import annotations

import os

from devstack import prefect_server
from devstack.common import pid_file, read_pid, spawn, stack_dir, stop, venv_bin
from elastic_ingest.deployments.register import POOL

NAME = "prefect-worker"


def up() -> str:
    pid = read_pid(pid_file(NAME))
    if pid:
        return f"prefect worker: running on pool {POOL} (pid {pid}, reused)"
    log = stack_dir() / "prefect" / "worker.log"
    env = {
        "PREFECT_API_URL": os.environ.get("PREFECT_API_URL", prefect_server.api_url()),
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        **prefect_server.SERVER_ENV,
    }
    pid = spawn(NAME, [venv_bin("elastic-ingest"), "worker", "--pool", POOL], log, env)
    return f"prefect worker: started on pool {POOL} (pid {pid}, log {log})"


def down() -> str:
    return stop(NAME, "prefect worker")


def status() -> str:
    pid = read_pid(pid_file(NAME))
    return f"prefect worker: running (pid {pid})" if pid else "prefect worker: stopped"
