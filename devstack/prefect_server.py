"""A local Prefect server (SQLite), tuned as ../shared/PREFECT_NOTES.md measured."""

from __future__ import annotations

import json
import urllib.request

from devstack.common import (
    check_port_free,
    env_port,
    pid_file,
    read_pid,
    spawn,
    stack_dir,
    stop,
    venv_bin,
    wait_until,
)

NAME = "prefect"

# Batch sizes that removed the SQLite "database is locked" stalls; analytics off (offline machine).
SERVER_ENV = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TRIGGERS_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_UI_ENABLED": "true",
}


def port() -> int:
    return env_port("STACK_PREFECT_PORT", 4200)


def api_url() -> str:
    return f"http://127.0.0.1:{port()}/api"


def ui_url() -> str:
    return f"http://127.0.0.1:{port()}"


def healthy() -> bool:
    try:
        with urllib.request.urlopen(f"{api_url()}/health", timeout=2) as response:
            return json.load(response) is True
    except (OSError, ValueError):
        return False


def up() -> str:
    pid = read_pid(pid_file(NAME))
    if pid and healthy():
        return f"prefect: running at {ui_url()} (pid {pid}, reused)"
    check_port_free(port(), "prefect", "STACK_PREFECT_PORT")
    home = stack_dir() / "prefect"
    log = home / "server.log"
    env = {**SERVER_ENV, "PREFECT_HOME": str(home), "PREFECT_API_URL": ""}
    pid = spawn(
        NAME,
        [venv_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port())],
        log,
        env=env,
    )
    wait_until(healthy, 90, "prefect", log, pid)
    return f"prefect: started at {ui_url()} (pid {pid})"


def down() -> str:
    return stop(NAME, "prefect")


def status() -> str:
    pid = read_pid(pid_file(NAME))
    if pid and healthy():
        return f"prefect: running at {ui_url()} (pid {pid})"
    return "prefect: stopped"
