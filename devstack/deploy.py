"""`make deploy`: the work pool and every deployment (elastic_ingest.deployments.register), then
a worker, on the local Prefect server (or the one PREFECT_API_URL names)."""

from __future__ import annotations

import os
import sys

from devstack import worker
from devstack.__main__ import environment
from elastic_ingest.deployments.register import DeployError, register


def main() -> int:
    for key, value in environment().items():  # the worker's syncs reach the stack with these
        os.environ.setdefault(key, value)
    try:
        names = register(dict(os.environ))
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(worker.up())
    print(f"deployed: {', '.join(names)}")
    print("try: .venv/bin/prefect deployment run sync/directory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
