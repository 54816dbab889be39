"""`make deploy`: the work pool, every deployment in prefect.yaml, and a worker, on the local
Prefect server (or the one PREFECT_API_URL names)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devstack import prefect_server, worker
from devstack.common import venv_bin

PROJECT = Path(__file__).resolve().parent.parent


def prefect(*args: str, env: dict[str, str]) -> None:
    command = [venv_bin("prefect"), *args]
    result = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        print(
            f"error: `prefect {' '.join(args)}` failed:\n{result.stdout}{result.stderr}",
            file=sys.stderr,
        )
        raise SystemExit(1)


def main() -> int:
    env = {
        **os.environ,
        "PREFECT_API_URL": os.environ.get("PREFECT_API_URL", prefect_server.api_url()),
    }
    prefect("work-pool", "create", worker.POOL, "--type", "process", "--overwrite", env=env)
    prefect("--no-prompt", "deploy", "--all", env=env)
    os.environ["PREFECT_API_URL"] = env["PREFECT_API_URL"]
    print(worker.up())
    print("deployed: sync/mongodb, sync/s3, sync/directory, poll/service")
    print("try: .venv/bin/prefect deployment run sync/directory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
