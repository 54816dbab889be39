"""Put elastic-ingest's deployments on a Prefect server: the `elastic-ingest` process work pool,
then every deployment of the packaged prefect.yaml (`elastic-ingest deploy`, `make deploy`).

It needs no checkout: the entrypoints are modules of the installed package, and the server is
the one PREFECT_API_URL (or the active Prefect profile) names.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PREFECT_FILE = Path(__file__).with_name("prefect.yaml")
POOL = "elastic-ingest"
SYNC_SLOTS = "elastic-ingest-syncs"
"""The Prefect global concurrency limit every sync run takes a slot of (when it exists): the
pool's limit is checked when a worker polls, so two workers polling at once can both start a
run; this limit is taken atomically by the server, so it holds exactly."""


class DeployError(RuntimeError):
    """A `prefect` command failed; the message carries its output."""


def deployment_names() -> list[str]:
    """`flow/deployment` for every deployment the packaged prefect.yaml declares."""
    declared = yaml.safe_load(PREFECT_FILE.read_text())["deployments"]
    return [f"{item['entrypoint'].rsplit(':', 1)[1]}/{item['name']}" for item in declared]


def _prefect(*args: str, env: dict[str, str] | None, check: bool = True) -> bool:
    # A scratch working directory: `prefect deploy` may write there, and a checkout is not needed.
    with tempfile.TemporaryDirectory(prefix="elastic-ingest-deploy-") as scratch:
        result = subprocess.run(
            [sys.executable, "-m", "prefect", *args],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0 and check:
        output = (result.stdout + result.stderr).strip()
        raise DeployError(f"`prefect {' '.join(args)}` failed:\n{output}")
    return result.returncode == 0


def register(env: dict[str, str] | None = None) -> list[str]:
    """Create (or update) the work pool and every deployment; return the deployments' names."""
    _prefect("work-pool", "create", POOL, "--type", "process", "--overwrite", env=env)
    _prefect("--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_FILE), env=env)
    return deployment_names()


def set_max_syncs(limit: int, env: dict[str, str] | None = None) -> None:
    """At most `limit` syncs at once, over every worker: the work pool's concurrency limit (the
    poller claims no more jobs than it has free slots) and the global limit SYNC_SLOTS."""
    _prefect("work-pool", "set-concurrency-limit", POOL, str(limit), env=env)
    if not _prefect("gcl", "update", SYNC_SLOTS, "--limit", str(limit), env=env, check=False):
        _prefect("gcl", "create", SYNC_SLOTS, "--limit", str(limit), env=env)
