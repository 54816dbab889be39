"""A local Prefect server, tuned as ../shared/PREFECT_NOTES.md measured: on SQLite (the
zero-setup default) or, with STACK_PREFECT_DATABASE=postgres, on the stack's PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
import urllib.request
from pathlib import Path

from devstack import postgres
from devstack.common import (
    StackError,
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
PROFILE = "elastic-ingest"  # the default port's; another port gets `elastic-ingest-<port>`

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


def server_env(listen_port: int) -> dict[str, str]:
    """The server's environment. The UI calls the API at PREFECT_UI_API_URL: without it, it
    calls port 4200 whatever port the server listens on."""
    return {
        **SERVER_ENV,
        "PREFECT_API_URL": "",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{listen_port}/api",
        # the links the server renders (a notification's `flow_run|ui_url`); None without it
        "PREFECT_UI_URL": f"http://127.0.0.1:{listen_port}",
    }


DEFAULT_PORT = 4200


def port() -> int:
    return env_port("STACK_PREFECT_PORT", DEFAULT_PORT)


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


def database() -> str | None:
    """`sqlite` or `postgres` if STACK_PREFECT_DATABASE asks for one; None: whatever the running
    server uses (a server started on PostgreSQL stays in use by `make test` and `make run`)."""
    chosen = os.environ.get("STACK_PREFECT_DATABASE") or None
    if chosen not in (None, "sqlite", "postgres"):
        raise StackError(f"STACK_PREFECT_DATABASE={chosen!r}: expected sqlite or postgres")
    return chosen


def _database_file() -> Path:
    return pid_file(NAME).with_suffix(".database")


def up() -> str:
    chosen = database()
    pid = read_pid(pid_file(NAME))
    if pid and healthy():
        running = _database_file().read_text().strip() if _database_file().exists() else "sqlite"
        if chosen not in (None, running):
            raise StackError(
                f"prefect: the running server keeps its state in {running}, not {chosen}; "
                "stop it first (`python -m devstack down prefect`)"
            )
        return f"prefect: running at {ui_url()} on {running} (pid {pid}, reused)" + _profile_note()
    chosen = chosen or "sqlite"
    check_port_free(port(), "prefect", "STACK_PREFECT_PORT")
    home = stack_dir() / "prefect"
    log = home / "server.log"
    env = {**server_env(port()), "PREFECT_HOME": str(home)}
    if chosen == "postgres":
        print(postgres.up(), flush=True)
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = postgres.database_url()
    pid = spawn(
        NAME,
        [venv_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port())],
        log,
        env=env,
    )
    _database_file().write_text(chosen)
    wait_until(healthy, 180, "prefect", log, pid)
    return f"prefect: started at {ui_url()} on {chosen} (pid {pid})" + _profile_note()


def _profile_note() -> str:
    configured = configure_profile()
    return f"\n{configured}" if configured else ""


def profiles_file() -> Path:
    if os.environ.get("PREFECT_PROFILES_PATH"):
        return Path(os.environ["PREFECT_PROFILES_PATH"])
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect") / "profiles.toml"


def configure_profile() -> str | None:
    """Point the user's own `prefect` commands at this stack: a Prefect profile
    `elastic-ingest` holding the stack's API URL, made the active one unless the active profile
    already names a server (a user's own server is never switched away from). Without this, the
    Prefect CLI starts a throwaway server and finds none of the deployments. A stack on another
    port (a second checkout) gets a profile of its own, so neither rewrites the other's."""
    name = profile_name()
    try:
        current = tomllib.loads(profiles_file().read_text())
    except (OSError, tomllib.TOMLDecodeError):
        current = {}
    profiles = current.get("profiles", {})
    active = current.get("active", "ephemeral")
    ours_current = profiles.get(name, {}).get("PREFECT_API_URL") == api_url()
    switch = active != name and not profiles.get(active, {}).get("PREFECT_API_URL")
    if ours_current and not switch:
        return None
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILE")}
    if name not in profiles:
        _prefect(env, "profile", "create", name)
    _prefect(env, "--profile", name, "config", "set", f"PREFECT_API_URL={api_url()}")
    if switch:
        _prefect(env, "profile", "use", name)
        return f"prefect: the Prefect CLI now uses profile {name!r} ({api_url()})"
    return f"prefect: profile {name!r} points at {api_url()} (`prefect profile use {name}`)"


def profile_name() -> str:
    """`elastic-ingest` for the stack on the default port, `elastic-ingest-<port>` otherwise."""
    return PROFILE if port() == DEFAULT_PORT else f"{PROFILE}-{port()}"


def _prefect(env: dict[str, str], *args: str) -> None:
    subprocess.run([venv_bin("prefect"), *args], env=env, capture_output=True, timeout=60)


def down() -> str:
    return stop(NAME, "prefect")


def status() -> str:
    pid = read_pid(pid_file(NAME))
    if pid and healthy():
        return f"prefect: running at {ui_url()} (pid {pid})"
    return "prefect: stopped"
