"""`elastic-ingest`: run the service, and manage connectors and jobs without Kibana.

Exit status: 0 success, 2 usage or configuration error, 1 runtime failure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from connectors.config import Settings, SettingsError, load_settings
from connectors.cron import CronError, QuartzCron
from connectors.es.client import ESClient, check_reachable, create_client
from connectors.job_run import run_job
from connectors.protocol import (
    ConnectorIndex,
    ConnectorStatus,
    IllegalTransition,
    JobIndex,
    JobLost,
    JobStatus,
    JobType,
    TriggerMethod,
    ensure_protocol_indices,
    protocol_for,
)
from connectors.protocol.connector import Connector, new_connector_document
from connectors.protocol.secrets import redacted_configuration
from connectors.protocol.states import may_sync
from connectors.protocol.targets import target_problem
from connectors.registry import RegistryError, load_source_class, source_class_for
from connectors.source import ConfigurationError


class UsageError(Exception):
    """A mistake in what the user typed or configured (exit 2)."""


@dataclass
class Context:
    """What a management command works with."""

    settings: Settings
    es: ESClient
    connectors: ConnectorIndex
    jobs: JobIndex
    out: Callable[[str], None]


class RuntimeFailure(Exception):
    """Something failed while running, already described in one line (exit 1)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elastic-ingest",
        description="Keep Elasticsearch indices in sync with MongoDB, S3, folders and more.",
    )
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
    commands = parser.add_subparsers(dest="command", metavar="{connector,job}")

    connector = commands.add_parser("connector", help="create, list, show or sync connectors")
    connector_commands = connector.add_subparsers(dest="subcommand", required=True)
    create = connector_commands.add_parser("create", help="create a connector")
    create.add_argument("--service-type", required=True, help="e.g. directory, mongodb, s3")
    create.add_argument("--index-name", required=True, help="target Elasticsearch index")
    create.add_argument("--name", default="", help="display name (default: the index name)")
    create.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a configuration value (repeatable)",
    )
    create.add_argument("--values-file", help="configuration values from a YAML or JSON file")
    create.add_argument("--schedule", help="Quartz cron for full syncs, e.g. '0 0 * * * ?'")
    create.add_argument("--sync-now", action="store_true", help="request a first sync now")
    connector_commands.add_parser("list", help="connectors with status and last sync")
    show = connector_commands.add_parser("show", help="one connector (secrets masked)")
    show.add_argument("connector_id")
    sync_now = connector_commands.add_parser("sync", help="request a sync now")
    sync_now.add_argument("connector_id")
    sync_now.add_argument(
        "--type",
        dest="job_type",
        choices=[JobType.FULL.value, JobType.INCREMENTAL.value, JobType.DELETION.value],
        default=JobType.FULL.value,
        help="full (default), incremental (changes since the last sync) or deletion (ids only)",
    )

    job = commands.add_parser("job", help="list, show or cancel sync jobs")
    job_commands = job.add_subparsers(dest="subcommand", required=True)
    listing = job_commands.add_parser("list", help="a connector's jobs, newest first")
    listing.add_argument("connector_id")
    job_show = job_commands.add_parser("show", help="one job")
    job_show.add_argument("job_id")
    cancel = job_commands.add_parser("cancel", help="cancel a pending or running job")
    cancel.add_argument("job_id")
    run_here = job_commands.add_parser(
        "run", help="claim a pending job and run it in this process, without Prefect"
    )
    run_here.add_argument("job_id")
    return parser


def masked_configuration(connector: Connector, sensitive: frozenset[str]) -> dict:
    shown = redacted_configuration(connector.configuration, sensitive)
    return {name: spec.get("value") for name, spec in shown.items()}


def parse_values(pairs: list[str], values_file: str | None) -> dict:
    values: dict = {}
    if values_file:
        try:
            loaded = yaml.safe_load(Path(values_file).read_text())
        except (OSError, yaml.YAMLError) as error:
            raise UsageError(f"--values-file {values_file}: {error}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--values-file {values_file}: expected a mapping of field: value")
        values.update(loaded)
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep or not field:
            raise UsageError(f"--set {pair!r}: expected FIELD=VALUE")
        values[field] = value
    return values


async def list_sources(settings: Settings, out: Callable) -> None:
    for service_type, qualified in sorted(settings.sources.items()):
        try:
            source_class = load_source_class(qualified)
            description = source_class.description or source_class.name
        except RegistryError as error:
            description = f"UNAVAILABLE: {error}"
        out(f"{service_type:<12} {qualified:<50} {description}")


async def create_connector(args, ctx: Context) -> None:
    problem = target_problem(args.index_name, ctx.settings.protocol)
    if problem:
        raise UsageError(f"--index-name: {problem}")
    try:
        source_class = source_class_for(ctx.settings.sources, args.service_type)
        values = parse_values(args.set, args.values_file)
        source_class.validate_configuration(values, strict=True)
        if args.schedule:
            QuartzCron.parse(args.schedule)
    except CronError as error:
        raise UsageError(f"--schedule {args.schedule!r}: {error}") from None
    except (RegistryError, ConfigurationError) as error:
        raise UsageError(str(error)) from None
    schema = source_class.configuration_schema()
    for field, value in values.items():
        schema[field]["value"] = value
    document = new_connector_document(
        args.service_type, args.index_name, args.name, schedule=args.schedule
    )
    document.update(
        configuration=schema, status=ConnectorStatus.CONFIGURED.value, sync_now=args.sync_now
    )
    ctx.out(await ctx.connectors.create(document))


async def list_connectors(args, ctx: Context) -> None:
    row = "{:<22} {:<10} {:<24} {:<20} {:<12} {}"
    ctx.out(row.format("ID", "TYPE", "INDEX", "STATUS", "LAST SYNC", "LAST SYNCED"))
    for c in await ctx.connectors.all():
        last_status, last_synced = c.doc.get("last_sync_status"), c.doc.get("last_synced")
        ctx.out(
            row.format(
                c.id, c.service_type, c.index_name, c.status, last_status or "-", last_synced or "-"
            )
        )


async def show_connector(args, ctx: Context) -> None:
    connector = await _connector(ctx.connectors, args.connector_id)
    shown = {"id": connector.id, **connector.doc}
    shown["configuration"] = masked_configuration(
        connector, ctx.jobs.sensitive(connector.service_type)
    )
    ctx.out(yaml.safe_dump(shown, sort_keys=False).rstrip())


async def request_sync(args, ctx: Context) -> None:
    """A full sync is requested through `sync_now` (it waits for a connector still being
    configured); another kind becomes a pending job at once, as Kibana creates them."""
    connector = await _connector(ctx.connectors, args.connector_id)
    if args.job_type == JobType.FULL:
        await ctx.connectors.request_sync(args.connector_id)
        ctx.out(f"sync requested for {args.connector_id}; the next poll pass starts it")
        return
    if not may_sync(connector.status):
        raise UsageError(f"connector {connector.id} is {connector.status}; configure it first")
    if args.job_type == JobType.INCREMENTAL and not connector.supports("incremental_sync"):
        raise UsageError(
            f"connector {connector.id} cannot run incremental syncs "
            "(its source does not support them with this configuration)"
        )
    job_id = await ctx.jobs.create(connector, JobType(args.job_type), TriggerMethod.ON_DEMAND)
    ctx.out(f"{args.job_type} sync job {job_id} created; the next poll pass starts it")


async def list_jobs(args, ctx: Context) -> None:
    await _connector(ctx.connectors, args.connector_id)
    row = "{:<40} {:<12} {:<12} {:<10} {:>8} {:>8} {}"
    ctx.out(row.format("ID", "TYPE", "STATUS", "TRIGGER", "INDEXED", "DELETED", "CREATED"))
    for job in await ctx.jobs.for_connector(args.connector_id):
        d = job.doc
        ctx.out(
            row.format(
                job.id,
                str(d.get("job_type") or JobType.FULL.value),
                str(d.get("status")),
                str(d.get("trigger_method")),
                str(d.get("indexed_document_count", "-")),
                str(d.get("deleted_document_count", "-")),
                str(d.get("created_at")),
            )
        )


async def show_job(args, ctx: Context) -> None:
    job = await ctx.jobs.get(args.job_id)
    if job is None:
        raise UsageError(f"job {args.job_id} does not exist")
    connector = job.doc.get("connector")
    snapshot = (
        {k: v for k, v in connector.items() if k != "configuration"}
        if isinstance(connector, dict)
        else connector
    )
    ctx.out(
        yaml.safe_dump({"id": job.id, **job.doc, "connector": snapshot}, sort_keys=False).rstrip()
    )


async def cancel_job(args, ctx: Context) -> None:
    try:
        job = await ctx.jobs.request_cancel(args.job_id)
    except IllegalTransition as error:
        raise UsageError(str(error)) from None
    ctx.out(f"job {job.id}: {job.status.value}")


async def run_job_here(args, ctx: Context) -> None:
    """The plain driver: the same job lifecycle the `sync` flow runs, minus Prefect."""
    job = await ctx.jobs.get(args.job_id)
    if job is None:
        raise UsageError(f"job {args.job_id} does not exist")
    if job.problems() or job.status not in (JobStatus.PENDING, JobStatus.SUSPENDED):
        state = job.doc.get("status")
        raise UsageError(f"job {job.id} is {state}; only pending or suspended jobs can run")
    claimed = await ctx.jobs.claim(job)
    if claimed is None:
        raise UsageError(
            f"job {job.id} was not claimed: its connector is running another job, "
            "was deleted, or another worker took the job first"
        )
    try:
        outcome = await run_job(ctx.es, ctx.settings, job.id, claim=claimed.claim)
    except JobLost as lost:
        raise RuntimeFailure(str(lost)) from None
    counts = outcome.counts
    ctx.out(
        f"job {job.id}: {outcome.status.value} (indexed {counts['created'] + counts['updated']}, "
        f"deleted {counts['deleted']}, unchanged {counts['skipped']})"
        + (f": {outcome.error}" if outcome.error else "")
    )
    if outcome.status == JobStatus.ERROR:
        raise RuntimeFailure(f"job {job.id} failed: {outcome.error}")


COMMANDS = {
    ("connector", "create"): create_connector,
    ("connector", "list"): list_connectors,
    ("connector", "show"): show_connector,
    ("connector", "sync"): request_sync,
    ("job", "list"): list_jobs,
    ("job", "show"): show_job,
    ("job", "cancel"): cancel_job,
    ("job", "run"): run_job_here,
}


async def manage(args: argparse.Namespace, settings: Settings, out: Callable) -> None:
    """Run one management command against the protocol indices."""
    es = create_client(settings.elasticsearch)
    try:
        await check_reachable(es, settings.elasticsearch.hosts)
        await ensure_protocol_indices(es, settings.protocol)
        connectors, jobs = protocol_for(es, settings)
        context = Context(settings, es, connectors, jobs, out)
        await COMMANDS[(args.command, args.subcommand)](args, context)
    finally:
        await es.close()


async def _connector(connectors, connector_id: str) -> Connector:
    connector = await connectors.get(connector_id)
    if connector is None:
        raise UsageError(f"connector {connector_id} does not exist")
    return connector


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        # Retries of an unreachable node are logged with tracebacks; the one-line error suffices.
        logging.getLogger("elastic_transport").setLevel(logging.CRITICAL)
    try:
        settings = load_settings(args.config_file)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    action = args.action or ("poll" if args.command is None else None)
    try:
        if action == "list":
            asyncio.run(list_sources(settings, print), debug=args.debug)
        elif action == "poll":
            from flows.poll import run_poll_loop  # Prefect loads only for the service loop

            return run_poll_loop(args.config_file, debug=args.debug)
        else:
            asyncio.run(manage(args, settings, print), debug=args.debug)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ConnectionError, OSError, RuntimeFailure) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a runtime failure: one readable block, details with --debug
        if args.debug:
            raise
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
