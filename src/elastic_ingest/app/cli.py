"""`elastic-ingest`: run the service, and manage connectors and jobs without Kibana.

Exit status: 0 success, 2 usage or configuration error, 1 runtime failure.
Reference with one example per command: docs/cli.md. The commands live in
app/connector_commands.py and app/job_commands.py; values in app/values.py; printing in
app/output.py. Longer than a module here should be: `build_parser` declares every command and
flag in one place, the one a reader of `--help` would look for.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING

from elastic_ingest.app.context import Context, RuntimeFailure, UsageError
from elastic_ingest.app.output import OutputClosed, print_line
from elastic_ingest.connectors.protocol.states import SCHEDULED_KINDS, JobType

if TYPE_CHECKING:
    from elastic_ingest.connectors.config import Settings


ELASTICSEARCH_ID = re.compile(r"-[A-Za-z0-9_-]{19}")
"""An id Elasticsearch made (20 URL-safe base64 characters) that begins with '-': one in 64 do,
connectors and jobs Kibana creates among them."""


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one `error:` line (exit 2) like every other usage error, and
    an id that begins with '-' is an id, not an unknown option."""

    def parse_args(self, args=None, namespace=None):
        # argparse reads an argument that begins with a space as positional: such ids go in so
        # and come out as they were
        argv = sys.argv[1:] if args is None else list(args)
        marked = [f" {arg}" if ELASTICSEARCH_ID.fullmatch(arg) else arg for arg in argv]
        parsed = super().parse_args(marked, namespace)
        for name, value in vars(parsed).items():
            if isinstance(value, str) and ELASTICSEARCH_ID.fullmatch(value.removeprefix(" ")):
                setattr(parsed, name, value.removeprefix(" "))
        return parsed

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def credentials_hint(settings: Settings, config_file: str | None) -> str:
    """What to do about a 401, in one line: most often, a new shell without the stack's key."""
    hosts = ", ".join(settings.elasticsearch.hosts)
    where = config_file or "config.yml"
    if settings.elasticsearch.api_key or settings.elasticsearch.username:
        return (
            f"Elasticsearch at {hosts} refused the configured credentials (401): check "
            f"elasticsearch.api_key (or username/password) in {where}, or ELASTICSEARCH_API_KEY"
        )
    return (
        f"Elasticsearch at {hosts} asks for credentials (401) and none are configured: export "
        'ELASTICSEARCH_API_KEY (with this checkout\'s stack: eval "$(make -s env)"), or set '
        f"elasticsearch.api_key in {where}"
    )


def installed_version() -> str:
    try:
        return package_version("elastic-ingest")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


class _AppendRule(argparse.Action):
    """`--include`/`--exclude` into one list, in the order typed (rules apply in order)."""

    def __call__(self, parser, namespace, values, option_string=None):
        policy = option_string.lstrip("-")
        setattr(namespace, self.dest, [*getattr(namespace, self.dest), (policy, *values)])


def _add_output(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default="text",
        help=f"text ({text}, default) or json (machine-readable, secrets masked the same way)",
    )


def _add_values(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a configuration value (repeatable); ${VAR} and ${VAR:-default} are expanded, "
        "a sensitive field may hold prefect-secret:NAME",
    )
    parser.add_argument(
        "--values-file", help="configuration values from a YAML or JSON file (${VAR} expanded)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="also reach the source with these values (ping); nothing is written if it fails",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="elastic-ingest",
        description="Keep Elasticsearch indices in sync with MongoDB, S3, folders and more.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    parser.add_argument(
        "--action",
        choices=["poll", "list"],
        help="poll: run the service loop; list: show the registered sources",
    )
    parser.add_argument(
        "-c",
        "--config-file",
        dest="config_file",
        help="configuration file (default: $ELASTIC_INGEST_CONFIG, ./config.yml, "
        "~/.config/elastic-ingest/config.yml, this checkout's config.yml, built-in defaults)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="asyncio debug mode and debug-level logs"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="{connector,job,deploy,worker,service-role}"
    )

    connector = commands.add_parser(
        "connector", help="create, list, show, update, delete or sync connectors"
    )
    connector_commands = connector.add_subparsers(dest="subcommand", required=True)
    create = connector_commands.add_parser("create", help="create a connector")
    create.add_argument("--service-type", required=True, help="e.g. directory, mongodb, s3")
    create.add_argument("--index-name", required=True, help="target Elasticsearch index")
    create.add_argument("--name", default="", help="display name (default: the index name)")
    _add_values(create)
    create.add_argument(
        "--schedule",
        action="append",
        default=[],
        metavar="[KIND=]CRON",
        help="a Quartz cron schedule; KIND is full (default), incremental, deletion or "
        "access_control "
        "(repeatable), e.g. '0 0 * * * ?' or 'incremental=0 */10 * * * ?'",
    )
    create.add_argument("--sync-now", action="store_true", help="request a first sync now")
    listing = connector_commands.add_parser("list", help="connectors with status and last sync")
    _add_output(listing, "a table")
    show = connector_commands.add_parser("show", help="one connector (secrets masked)")
    show.add_argument("connector_id")
    _add_output(show, "YAML")

    update = connector_commands.add_parser(
        "update", help="change a connector's values, name, index or schedules"
    )
    update.add_argument("connector_id")
    update.add_argument("--name", help="new display name")
    update.add_argument("--index-name", help="new target index (the old index is left as it is)")
    _add_values(update)
    update.add_argument(
        "--schedule",
        action="append",
        default=[],
        metavar="[KIND=]CRON",
        help="enable KIND's schedule (full, incremental, deletion or access_control; default "
        "full) with this "
        "Quartz cron (repeatable)",
    )
    update.add_argument(
        "--disable-schedule",
        action="append",
        default=[],
        choices=SCHEDULED_KINDS,
        metavar="KIND",
        help="turn off KIND's schedule: full, incremental, deletion or access_control (repeatable)",
    )

    delete = connector_commands.add_parser(
        "delete", help="delete a connector and its jobs (refused while a sync runs)"
    )
    delete.add_argument("connector_id")
    delete.add_argument("--with-index", action="store_true", help="also delete its content index")
    delete.add_argument(
        "-y", "--yes", action="store_true", help="do not ask (required when not on a terminal)"
    )

    sync_now = connector_commands.add_parser("sync", help="request a sync now")
    sync_now.add_argument("connector_id")
    sync_now.add_argument(
        "--type",
        dest="job_type",
        choices=list(SCHEDULED_KINDS),
        default=JobType.FULL.value,
        help="full (default), incremental (changes since the last sync), deletion (ids only) "
        "or access_control (users and groups, with document level security on)",
    )
    sync_now.add_argument(
        "--wait",
        action="store_true",
        help="follow the job until it ends: a progress line every 2 s, then its outcome "
        "(exit 0 completed, 1 error or canceled)",
    )
    sync_now.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="with --wait: stop waiting after this long (exit 1; the job goes on)",
    )
    sync_now.add_argument(
        "--dry-run",
        action="store_true",
        help="say what a full sync would write and delete (and whether the mass-delete guard "
        "would hold the deletes), without a job and without writing anything",
    )
    _add_output(sync_now, "with --dry-run: the plan as lines")

    verify = connector_commands.add_parser(
        "verify",
        help="compare the index with its source, writing nothing: missing, extra and stale "
        "documents (exit 0: equal, 1: drift)",
    )
    verify.add_argument("connector_id")
    _add_output(verify, "a summary and the first ids of each kind of drift")

    rules = connector_commands.add_parser(
        "rules",
        help="show sync rules, or edit them (validated and activated at once when valid)",
    )
    rules.add_argument("connector_id")
    for policy in ("include", "exclude"):
        rules.add_argument(
            f"--{policy}",
            nargs=3,
            action=_AppendRule,
            dest="rules",
            default=[],
            metavar=("FIELD", "OPERATOR", "VALUE"),
            help=f"add a basic rule that {policy}s matching documents (repeatable; rules apply "
            "in order, the first match decides, no match includes); OPERATOR: equals, "
            "contains, starts_with, ends_with, regex, >, <",
        )
    rules.add_argument("--clear", action="store_true", help="remove every basic rule first")
    rules.add_argument(
        "--set-advanced", metavar="FILE", help="advanced rules from a JSON file (- for stdin)"
    )
    rules.add_argument("--clear-advanced", action="store_true", help="remove the advanced rules")
    _add_output(rules, "text")

    api_key = connector_commands.add_parser(
        "api-key",
        help="print an API key that searches the connector's index as one user may "
        "(document level security); made with a user's credentials, not an API key",
    )
    api_key.add_argument("connector_id")
    api_key.add_argument("--user", required=True, help="the user's id in the identities index")
    api_key.add_argument(
        "--expiration", default="1d", help="how long the key lasts, e.g. 1h, 7d (default 1d)"
    )
    api_key.add_argument(
        "--es-username",
        help="the Elasticsearch user who creates the key (password from $ELASTICSEARCH_PASSWORD;"
        " default: the configuration's username and password)",
    )

    job = commands.add_parser("job", help="list, show, cancel or run sync jobs")
    job_commands = job.add_subparsers(dest="subcommand", required=True)
    job_listing = job_commands.add_parser("list", help="a connector's jobs, newest first")
    job_listing.add_argument("connector_id")
    _add_output(job_listing, "a table")
    job_show = job_commands.add_parser("show", help="one job")
    job_show.add_argument("job_id")
    _add_output(job_show, "YAML")
    failures = job_commands.add_parser(
        "failures",
        help="the documents a job could not write (rejected, unreadable, or refused as busy), "
        "as the failures index keeps them until a later full sync writes them",
    )
    failures.add_argument("job_id")
    _add_output(failures, "a line per document")
    cancel = job_commands.add_parser("cancel", help="cancel a pending or running job")
    cancel.add_argument("job_id")
    run_here = job_commands.add_parser(
        "run", help="claim a pending job and run it in this process, without Prefect"
    )
    run_here.add_argument("job_id")
    release = job_commands.add_parser(
        "release-deletes",
        help="let the deletes the mass-delete guard held in a job through, once: a deletion "
        "sync that lists the source again and deletes what it no longer has",
    )
    release.add_argument("job_id")
    release.add_argument("--wait", action="store_true", help="follow the deletion sync to its end")

    role = commands.add_parser(
        "service-role",
        help="print the request that creates the service's least-privilege API key on your "
        "cluster (POST /_security/api_key)",
    )
    role.add_argument(
        "--content-indices",
        action="append",
        metavar="PATTERN",
        help="your connectors' index names, e.g. 'search-*' (repeatable; default: every index "
        "whose name does not begin with a dot)",
    )

    deploy_command = commands.add_parser(
        "deploy",
        help="create the elastic-ingest work pool and the sync/poll deployments on the Prefect "
        "server that PREFECT_API_URL or the active profile names",
    )
    deploy_command.add_argument(
        "--max-syncs",
        type=int,
        metavar="N",
        help="at most N syncs at once over all workers (the work pool's concurrency limit, "
        "held exactly by a global concurrency limit)",
    )
    worker_command = commands.add_parser(
        "worker",
        help="run syncs from a Prefect work pool, each a fork of one warm process (as `prefect "
        "worker start --pool elastic-ingest`, without a new interpreter per sync)",
    )
    worker_command.add_argument("--pool", default="elastic-ingest", help="the work pool")
    worker_command.add_argument("--name", help="the worker's name (default: Prefect's)")
    worker_command.add_argument(
        "--limit", type=int, metavar="N", help="at most N flow runs at once on this worker"
    )
    return parser


def deploy(max_syncs: int | None) -> None:
    """`deploy`: what `make deploy` does, minus the local worker; needs no checkout."""
    from elastic_ingest.deployments.register import POOL, DeployError, register, set_max_syncs

    if max_syncs is not None and max_syncs < 1:
        raise UsageError("--max-syncs must be at least 1")
    try:
        names = register()
        if max_syncs is not None:
            set_max_syncs(max_syncs)
    except DeployError as error:
        raise RuntimeFailure(str(error)) from None
    from prefect.settings import PREFECT_API_URL

    server = PREFECT_API_URL.value() or "Prefect's temporary local server (no PREFECT_API_URL)"
    print_line(f"deployed to {server}, on work pool {POOL}: {', '.join(names)}")
    if max_syncs is not None:
        print_line(f"at most {max_syncs} syncs at once")
    print_line(f"start a worker: elastic-ingest worker --pool {POOL}")


def service_role_request(content_indices: list[str] | None) -> str:
    """`service-role`: the body of a create-API-key request with the service's role."""
    from elastic_ingest.connectors.es.privileges import CONTENT_INDICES, service_role

    role = service_role(content_indices or CONTENT_INDICES)
    body = {"name": "elastic-ingest-service", "role_descriptors": {"elastic-ingest-service": role}}
    return json.dumps(body, indent=2)


# (command, subcommand) -> "module:function"; a command's module (and the Elasticsearch client
# it needs) loads only when that command runs, so `--help` stays light.
COMMANDS = {
    ("connector", "create"): "elastic_ingest.app.connector_commands:create_connector",
    ("connector", "list"): "elastic_ingest.app.connector_commands:list_connectors",
    ("connector", "show"): "elastic_ingest.app.connector_commands:show_connector",
    ("connector", "update"): "elastic_ingest.app.connector_commands:update_connector",
    ("connector", "delete"): "elastic_ingest.app.connector_commands:delete_connector",
    ("connector", "sync"): "elastic_ingest.app.connector_commands:request_sync",
    ("connector", "verify"): "elastic_ingest.app.verify_commands:verify",
    ("connector", "rules"): "elastic_ingest.app.rules_commands:sync_rules",
    ("connector", "api-key"): "elastic_ingest.app.access_commands:create_search_key",
    ("job", "list"): "elastic_ingest.app.job_commands:list_jobs",
    ("job", "show"): "elastic_ingest.app.job_commands:show_job",
    ("job", "failures"): "elastic_ingest.app.job_commands:list_failures",
    ("job", "cancel"): "elastic_ingest.app.job_commands:cancel_job",
    ("job", "run"): "elastic_ingest.app.job_commands:run_job_here",
    ("job", "release-deletes"): "elastic_ingest.app.job_commands:release_deletes",
}


def command(args: argparse.Namespace) -> Callable:
    module, _, name = COMMANDS[(args.command, args.subcommand)].partition(":")
    return getattr(importlib.import_module(module), name)


async def list_sources(settings: Settings, out: Callable) -> None:
    """`--action list`: every registered source, loaded to show its description."""
    from elastic_ingest.connectors.registry import (
        RegistryError,
        load_source_class,
        registered_sources,
    )

    for service_type, qualified in sorted(registered_sources(settings.sources).items()):
        try:
            source_class = load_source_class(qualified)
            description = source_class.description or source_class.name
        except RegistryError as error:
            description = f"UNAVAILABLE: {error}"
        out(f"{service_type:<12} {qualified:<50} {description}")


async def manage(args: argparse.Namespace, settings: Settings, out: Callable) -> None:
    """Run one management command against the protocol indices."""
    from elastic_ingest.connectors.es.client import check_reachable, create_client
    from elastic_ingest.connectors.protocol import ensure_protocol_indices, protocol_for

    es = create_client(settings.elasticsearch)
    try:
        await check_reachable(es, settings.elasticsearch.hosts)
        await ensure_protocol_indices(es, settings.protocol)
        connectors, jobs = protocol_for(es, settings)
        context = Context(settings, es, connectors, jobs, out)
        await command(args)(args, context)
    finally:
        await es.close()


def _log_level(args: argparse.Namespace) -> int:
    """What runs for a while (the service loop, a worker, a job run here) logs what it does;
    a command that answers (list, show, verify, ...) says only its answer and its warnings."""
    runs = args.command is None or args.command == "worker"
    runs = runs or (args.command, getattr(args, "subcommand", None)) == ("job", "run")
    return logging.INFO if runs and args.action != "list" else logging.WARNING


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else _log_level(args),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per HTTP request otherwise
    from elastic_ingest.connectors.config import SettingsError, load_settings

    try:
        settings = load_settings(args.config_file)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    action = args.action or ("poll" if args.command is None else None)
    try:
        if args.command == "deploy":
            deploy(args.max_syncs)
        elif args.command == "worker":
            from elastic_ingest.workers.warm import serve

            asyncio.run(serve(args.pool, args.name, args.limit))
        elif args.command == "service-role":
            print_line(service_role_request(args.content_indices))
        elif action == "list":
            asyncio.run(list_sources(settings, print_line), debug=args.debug)
        elif action == "poll":
            from elastic_ingest.flows.poll import (
                run_poll_loop,  # Prefect loads only for the service loop
            )

            return run_poll_loop(args.config_file, debug=args.debug)
        else:
            asyncio.run(manage(args, settings, print_line), debug=args.debug)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OutputClosed:  # nothing more to say to a reader that left; no error at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ConnectionError, OSError, RuntimeFailure) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted (a job already requested goes on)", file=sys.stderr)
        return 130
    except Exception as error:  # a runtime failure: one readable block, details with --debug
        if args.debug:
            raise
        if getattr(error, "status", None) == 401:  # the client's AuthenticationException
            print(f"error: {credentials_hint(settings, args.config_file)}", file=sys.stderr)
            return 1
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
