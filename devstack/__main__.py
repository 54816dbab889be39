"""`python -m devstack {up,down,status,env,secrets} [service ...]`: manage the local stack.

`env` prints the variables that point the project at the stack (with the service's API key);
`secrets` prints the `elastic` superuser's password. Nothing else prints either secret."""

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
    """The variables that point the project (tests, CLI, flows) at this stack; the API key only
    once `up` created it (this is also called while the stack is down)."""
    variables = {
        "ELASTICSEARCH_URL": elasticsearch.url(),
        "MONGODB_URL": ferretdb.url(),
        "S3_ENDPOINT_URL": s3.url(),
        "PREFECT_API_URL": prefect_server.api_url(),
    }
    api_key = elasticsearch.service_api_key()
    if api_key:
        variables["ELASTICSEARCH_API_KEY"] = api_key
    return variables


def print_secrets() -> int:
    """The superuser's password, printed only on this explicit request."""
    try:
        username, password = elasticsearch.superuser()
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"export ELASTIC_USERNAME={username}")
    print(f"export ELASTIC_PASSWORD={password}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "env", "secrets"])
    parser.add_argument("services", nargs="*", choices=[[], *SERVICES], metavar="service")
    args = parser.parse_args(argv)
    if args.action == "env":
        for key, value in environment().items():
            print(f"export {key}={value}")
        return 0
    if args.action == "secrets":
        return print_secrets()
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
