"""`python -m devstack {up,down,status,env} [service ...]`: manage the local stack."""

from __future__ import annotations

import argparse
import sys

from devstack import elasticsearch, ferretdb, postgres, prefect_server, s3, worker
from devstack.common import StackError

SERVICES = {
    "elasticsearch": elasticsearch,
    "mongodb": ferretdb,
    "s3": s3,
    "postgres": postgres,
    "prefect": prefect_server,
    "worker": worker,
}
STARTED_BY_DEFAULT = ["elasticsearch", "mongodb", "s3", "prefect"]


def environment() -> dict[str, str]:
    """The variables that point the project (tests, CLI, flows) at this stack."""
    return {
        "ELASTICSEARCH_URL": elasticsearch.url(),
        "MONGODB_URL": ferretdb.url(),
        "S3_ENDPOINT_URL": s3.url(),
        "PREFECT_API_URL": prefect_server.api_url(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.add_argument("services", nargs="*", choices=[[], *SERVICES], metavar="service")
    args = parser.parse_args(argv)
    if args.action == "env":
        for key, value in environment().items():
            print(f"export {key}={value}")
        return 0
    names = args.services or (STARTED_BY_DEFAULT if args.action == "up" else list(SERVICES))
    if args.action == "down":
        names = list(reversed(names))
    failed = False
    for name in names:
        try:
            print(getattr(SERVICES[name], args.action)(), flush=True)
        except StackError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            failed = True
    if args.action == "up" and not failed:
        print(
            f"stack ready (state, data and logs in {elasticsearch.stack_dir()}); "
            "it stays running for the next run: `make down` stops it"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
