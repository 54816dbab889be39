"""`elastic-ingest`: run the service, and manage connectors and jobs without Kibana.

Exit status: 0 success, 2 usage or configuration error, 1 runtime failure.
Reference with one example per command: docs/cli.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import yaml

from connectors.config import Settings, SettingsError, expand_env, load_settings
from connectors.cron import CronError, QuartzCron
from connectors.es.client import ESClient, check_reachable, create_client
from connectors.es.documents import VersionedDocument
from connectors.es.indices import concrete_indices, delete_indices
from connectors.job_run import run_job
from connectors.poll import CHECK_TIMEOUT_SECONDS
from connectors.protocol import (
    ConnectorIndex,
    ConnectorStatus,
    IllegalTransition,
    Job,
    JobIndex,
    JobLost,
    JobStatus,
    JobType,
    TriggerMethod,
    clock,
    ensure_protocol_indices,
    protocol_for,
)
from connectors.protocol.connector import Connector, new_connector_document
from connectors.protocol.job import status_fields
from connectors.protocol.secrets import redacted_configuration
from connectors.protocol.states import ACTIVE, FINAL, may_sync
from connectors.protocol.targets import target_problem
from connectors.registry import RegistryError, load_source_class, source_class_for
from connectors.source import BaseDataSource, ConfigurationError
from connectors.sync import describe_error

SCHEDULE_KINDS = (JobType.FULL.value, JobType.INCREMENTAL.value, JobType.DELETION.value)
SECRET_REFERENCE = "prefect-secret:"
_SECRET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # Prefect's block-name rule
PROGRESS_SECONDS = 2.0  # one progress line this often while following a job
READ_JOB_SECONDS = 0.5  # how often the followed job is read (the final line comes this soon)
ERROR_COLUMN = 60
JOB_DELETE_BATCH = 500


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


def installed_version() -> str:
    try:
        return package_version("elastic-ingest")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


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
    parser = argparse.ArgumentParser(
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
    commands = parser.add_subparsers(dest="command", metavar="{connector,job}")

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
        help="a Quartz cron schedule; KIND is full (default), incremental or deletion "
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
        help="enable KIND's schedule (full, incremental or deletion; default full) with this "
        "Quartz cron (repeatable)",
    )
    update.add_argument(
        "--disable-schedule",
        action="append",
        default=[],
        choices=SCHEDULE_KINDS,
        metavar="KIND",
        help="turn off KIND's schedule: full, incremental or deletion (repeatable)",
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
        choices=list(SCHEDULE_KINDS),
        default=JobType.FULL.value,
        help="full (default), incremental (changes since the last sync) or deletion (ids only)",
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

    job = commands.add_parser("job", help="list, show, cancel or run sync jobs")
    job_commands = job.add_subparsers(dest="subcommand", required=True)
    job_listing = job_commands.add_parser("list", help="a connector's jobs, newest first")
    job_listing.add_argument("connector_id")
    _add_output(job_listing, "a table")
    job_show = job_commands.add_parser("show", help="one job")
    job_show.add_argument("job_id")
    _add_output(job_show, "YAML")
    cancel = job_commands.add_parser("cancel", help="cancel a pending or running job")
    cancel.add_argument("job_id")
    run_here = job_commands.add_parser(
        "run", help="claim a pending job and run it in this process, without Prefect"
    )
    run_here.add_argument("job_id")
    return parser


# -- configuration values ------------------------------------------------------------------


def masked_configuration(connector: Connector, sensitive: frozenset[str]) -> dict:
    shown = redacted_configuration(connector.configuration, sensitive)
    return {name: spec.get("value") for name, spec in shown.items()}


def parse_values(pairs: list[str], values_file: str | None) -> dict:
    """`--values-file` then `--set` (a later value wins), with `${VAR}`/`${VAR:-default}`
    expanded from the environment; an unset variable without a default names its field."""
    values: dict = {}
    if values_file:
        try:
            loaded = yaml.safe_load(Path(values_file).read_text())
        except (OSError, yaml.YAMLError) as error:
            message = " ".join(str(error).split())
            raise UsageError(f"--values-file {values_file}: {message}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--values-file {values_file}: expected a mapping of field: value")
        problems: list[str] = []
        loaded = {
            str(field): expand_env(value, str(field), problems) for field, value in loaded.items()
        }
        if problems:
            raise UsageError(f"--values-file {values_file}: {'; '.join(problems)}")
        values.update(loaded)
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep or not field:
            raise UsageError(f"--set {pair!r}: expected FIELD=VALUE")
        problems = []
        values[field] = expand_env(value, field, problems)
        if problems:
            raise UsageError(f"--set {'; '.join(problems)}")
    return values


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != []


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SECRET_REFERENCE)


def typed_values(source_class: type[BaseDataSource], values: dict) -> dict:
    """The values a user typed, each checked against its field (a known name, the field's type)
    and converted to that type, under the field's own name (an alias is accepted). A JSON
    field keeps the text as typed (Kibana edits it as text); a `prefect-secret:NAME` reference
    is kept as typed, and only a sensitive field may hold one."""
    problems, typed = [], {}
    fields = source_class.CONFIGURATION
    for name, value in values.items():
        canonical = source_class.ALIASES.get(name, name)
        spec = fields.get(canonical)
        if spec is None:
            problems.append(f"{name}: unknown field for {source_class.name}")
            continue
        if _is_reference(value):
            secret = value[len(SECRET_REFERENCE) :]
            if not spec.sensitive:
                problems.append(
                    f"{name}: a {SECRET_REFERENCE}NAME reference is only for sensitive fields"
                    f" ({', '.join(sorted(source_class.sensitive_fields())) or 'none here'})"
                )
            elif not _SECRET_NAME.match(secret):
                problems.append(
                    f"{name}: {secret!r} is not a Prefect secret block name "
                    "(lowercase letters, digits and dashes)"
                )
            typed[canonical] = value
            continue
        if not _present(value):
            if spec.required and not _present(spec.default):
                problems.append(f"{name}: missing value ({spec.label})")
            typed[canonical] = value
            continue
        try:
            converted = spec.convert(name, value)
        except ValueError as error:  # the reason quotes the value: never a secret's
            problems.append(f"{name}: expected {spec.type}" if spec.sensitive else str(error))
            continue
        keep_text = spec.type == "json" and isinstance(value, str)
        typed[canonical] = value if keep_text else converted
    if problems:
        raise ConfigurationError(problems)
    return typed


async def check_source(source_class: type[BaseDataSource], values: dict) -> None:
    """`--check`: build the source with these values and ping it (exit 2 if it fails)."""
    references = sorted(name for name, value in values.items() if _is_reference(value))
    if references:
        raise UsageError(
            f"--check: {', '.join(references)} holds a {SECRET_REFERENCE} reference, which "
            "the CLI does not resolve; leave out --check"
        )
    try:
        source = source_class(values)
    except ConfigurationError as error:
        raise UsageError(f"--check: {error}") from None
    try:
        await asyncio.wait_for(source.ping(), CHECK_TIMEOUT_SECONDS)
    except Exception as error:
        raise UsageError(f"--check: the source does not answer: {describe_error(error)}") from None
    finally:
        await source.close()


def parse_schedule(text: str) -> tuple[str, str]:
    """`KIND=CRON` or a bare `CRON` (full) -> (kind, cron); the cron is checked."""
    kind, sep, cron = text.partition("=")  # a Quartz expression never holds '='
    if not sep:
        kind, cron = JobType.FULL.value, text
    kind, cron = kind.strip(), cron.strip()
    if kind not in SCHEDULE_KINDS:
        raise UsageError(
            f"--schedule {text!r}: unknown kind {kind!r} (expected {', '.join(SCHEDULE_KINDS)})"
        )
    try:
        QuartzCron.parse(cron)
    except CronError as error:
        raise UsageError(f"--schedule {text!r}: {error}") from None
    return kind, cron


def parse_schedules(texts: list[str]) -> dict[str, str]:
    schedules: dict[str, str] = {}
    for text in texts:
        kind, cron = parse_schedule(text)
        if kind in schedules:
            raise UsageError(f"--schedule: the {kind} schedule is given twice")
        schedules[kind] = cron
    return schedules


# -- output --------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def connector_view(ctx: Context, connector: Connector) -> dict:
    """What `connector show` prints (YAML or JSON): the document, configuration values masked."""
    shown = {"id": connector.id, **connector.doc}
    shown["configuration"] = masked_configuration(
        connector, ctx.jobs.sensitive(connector.service_type)
    )
    return shown


def job_view(job: Job) -> dict:
    """What `job show` prints: the document without the connector snapshot's configuration."""
    connector = job.doc.get("connector")
    snapshot = (
        {k: v for k, v in connector.items() if k != "configuration"}
        if isinstance(connector, dict)
        else connector
    )
    return {"id": job.id, **job.doc, "connector": snapshot}


def _error_column(error: Any) -> str:
    return " ".join(str(error).split())[:ERROR_COLUMN] if error else "-"


# -- commands ------------------------------------------------------------------------------


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
    schedules = parse_schedules(args.schedule)
    try:
        source_class = source_class_for(ctx.settings.sources, args.service_type)
        values = typed_values(source_class, parse_values(args.set, args.values_file))
        source_class.validate_configuration(values, strict=True)  # every required field given
    except (RegistryError, ConfigurationError) as error:
        raise UsageError(str(error)) from None
    if args.check:
        await check_source(source_class, values)
    schema = source_class.configuration_schema()
    for field, value in values.items():
        schema[field]["value"] = value
    document = new_connector_document(
        args.service_type, args.index_name, args.name, schedule=schedules.get(JobType.FULL)
    )
    for kind, cron in schedules.items():
        document["scheduling"][kind] = {"enabled": True, "interval": cron}
    document.update(
        configuration=schema, status=ConnectorStatus.CONFIGURED.value, sync_now=args.sync_now
    )
    ctx.out(await ctx.connectors.create(document))


async def list_connectors(args, ctx: Context) -> None:
    connectors = await ctx.connectors.all()
    if args.output == "json":
        ctx.out(_json([connector_view(ctx, c) for c in connectors]))
        return
    row = "{:<22} {:<10} {:<24} {:<20} {:<12} {}"
    ctx.out(row.format("ID", "TYPE", "INDEX", "STATUS", "LAST SYNC", "LAST SYNCED"))
    for c in connectors:
        last_status, last_synced = c.doc.get("last_sync_status"), c.doc.get("last_synced")
        ctx.out(
            row.format(
                c.id, c.service_type, c.index_name, c.status, last_status or "-", last_synced or "-"
            )
        )


async def show_connector(args, ctx: Context) -> None:
    shown = connector_view(ctx, await _connector(ctx.connectors, args.connector_id))
    if args.output == "json":
        ctx.out(_json(shown))
    else:
        ctx.out(yaml.safe_dump(shown, sort_keys=False).rstrip())


@dataclass
class _Update:
    """What `connector update` writes, decided from the connector as just read."""

    fields: dict[str, Any]
    changed: list[str]
    notes: list[str]
    replace_scheduling: bool = False


def _plan_update(args, ctx: Context, connector: Connector, values: dict | None) -> _Update:
    fields: dict[str, Any] = {}
    changed, notes = [], []
    if args.name is not None:
        fields["name"] = args.name
        changed.append("name")
    if args.index_name is not None and args.index_name != connector.index_name:
        fields["index_name"] = args.index_name
        changed.append("index_name")
    if values:
        source_class = source_class_for(ctx.settings.sources, connector.service_type)
        schema = source_class.configuration_schema()
        current = connector.configuration
        configuration = {
            name: {**(current.get(name) or schema.get(name) or {}), "value": value}
            for name, value in values.items()
        }
        fields["configuration"] = configuration
        changed.append(f"configuration ({', '.join(values)})")
        merged = {**connector.configuration_values(), **values}
        waiting = (ConnectorStatus.CREATED, ConnectorStatus.NEEDS_CONFIGURATION)
        configured = source_class.is_configured(merged)
        if connector.status in waiting:
            status = ConnectorStatus.CONFIGURED if configured else waiting[1]
            fields["status"] = status.value
        if not configured:
            missing = [
                name
                for name, spec in source_class.CONFIGURATION.items()
                if spec.required and not _present(spec.default) and not _present(merged.get(name))
            ]
            notes.append(
                f"connector {connector.id} still needs values for: "
                + (", ".join(missing) or "fields its source rejects")
            )
        fields["last_checked_at"] = None  # the next poll pass checks the source again
    if "index_name" in fields or "configuration" in fields:
        # What the last sync remembered describes the old index or values: the next sync
        # lists everything again (unchanged documents are still not rewritten).
        fields["sync_cursor"] = None
    scheduling = connector.doc.get("scheduling")
    legacy = isinstance(scheduling, dict) and "interval" in scheduling
    schedules = {kind: connector.schedule(kind) for kind in SCHEDULE_KINDS}
    wanted: dict[str, dict] = {}
    for kind, cron in parse_schedules(args.schedule).items():
        wanted[kind] = {"enabled": True, "interval": cron}
        changed.append(f"scheduling.{kind} ({cron})")
        if kind == JobType.INCREMENTAL and not connector.supports("incremental_sync"):
            notes.append(
                f"connector {connector.id}: its source does not report incremental syncs "
                "(features.incremental_sync); the scheduler creates no incremental job until "
                "it does"
            )
    for kind in args.disable_schedule:
        if kind in wanted:
            raise UsageError(f"--schedule and --disable-schedule both name {kind}")
        interval = (schedules.get(kind) or {}).get("interval") or "0 0 0 * * ?"
        wanted[kind] = {"enabled": False, "interval": interval}
        changed.append(f"scheduling.{kind} disabled")
    if wanted:
        if legacy:  # the seed-era single {enabled, interval}: rewrite it per kind
            per_kind = {
                kind: schedules.get(kind) or {"enabled": False, "interval": "0 0 0 * * ?"}
                for kind in JobType
            }
            fields["scheduling"] = {**per_kind, **wanted}
        else:
            fields["scheduling"] = wanted
    return _Update(fields, changed, notes, replace_scheduling=legacy and bool(wanted))


async def update_connector(args, ctx: Context) -> None:
    """Write the changes by compare-and-set: a heartbeat or a claim landing meanwhile is read
    again and the change re-applied on top, never overwritten."""
    if not (
        args.set or args.values_file or args.name is not None or args.index_name is not None
        or args.schedule or args.disable_schedule
    ):  # fmt: skip
        raise UsageError(
            "nothing to update: give --set, --values-file, --name, --index-name, --schedule "
            "or --disable-schedule"
        )
    if args.index_name is not None:
        problem = target_problem(args.index_name, ctx.settings.protocol)
        if problem:
            raise UsageError(f"--index-name: {problem}")
    connector = await _connector(ctx.connectors, args.connector_id)
    values = None
    if args.set or args.values_file or args.check:
        try:
            source_class = source_class_for(ctx.settings.sources, connector.service_type)
            values = typed_values(source_class, parse_values(args.set, args.values_file))
        except (RegistryError, ConfigurationError) as error:
            raise UsageError(str(error)) from None
        if args.check:
            merged = {**connector.configuration_values(), **values}
            await check_source(source_class, merged)
    for _ in range(10):
        plan = _plan_update(args, ctx, connector, values)
        if plan.replace_scheduling:
            others = {k: v for k, v in plan.fields.items() if k != "scheduling"}
            document = {**_merged(connector.doc, others), "scheduling": plan.fields["scheduling"]}
            written = await _replace_if_unchanged(ctx.es, ctx.connectors.index, connector, document)
        else:
            written = await ctx.connectors.update(connector, plan.fields) is not None
        if written:
            break
        connector = await _connector(ctx.connectors, args.connector_id)
    else:
        raise RuntimeFailure(
            f"connector {connector.id} kept changing while it was updated; nothing written, "
            "try again"
        )
    ctx.out(f"connector {connector.id} updated: {', '.join(plan.changed)}")
    for note in plan.notes:
        ctx.out(f"note: {note}")


async def delete_connector(args, ctx: Context) -> None:
    """Refuse while a sync runs; otherwise delete the connector (by compare-and-set, so a job
    claimed meanwhile is seen), then its jobs, then (`--with-index`) its content index."""
    connector = await _connector(ctx.connectors, args.connector_id)
    index = connector.index_name if args.with_index else None
    if index is not None:
        await _check_deletable_index(ctx, connector)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"connector delete {connector.id}: not on a terminal to ask; add --yes to delete"
            )
        question = f"delete connector {connector.id}" + (f" (and index {index})" if index else "")
        print(f"{question}? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = await asyncio.to_thread(sys.stdin.readline)
        if answer.strip().lower() not in ("y", "yes"):
            raise RuntimeFailure(f"connector {connector.id} not deleted (not confirmed)")
    for _ in range(10):
        await _refuse_if_running(ctx, connector)
        if await _delete_if_unchanged(ctx.es, ctx.connectors.index, connector):
            break
        connector = await _connector(ctx.connectors, args.connector_id)
    else:
        raise RuntimeFailure(
            f"connector {connector.id} kept changing while it was deleted; nothing deleted, "
            "try again"
        )
    # With the connector gone no job of it can be claimed any more: every one is deleted.
    removed = await _delete_jobs_of(ctx, connector.id)
    deleted = [f"connector {connector.id}", f"{removed} job(s)"]
    if index is not None:
        if await concrete_indices(ctx.es, index):
            await delete_indices(ctx.es, [index])
            deleted.append(f"index {index}")
        else:
            deleted.append(f"no index {index} (it did not exist)")
    ctx.out(f"deleted {', '.join(deleted)}")


async def _delete_jobs_of(ctx: Context, connector_id: str) -> int:
    """Delete every job document of a connector (in bulk requests; the stack's Elasticsearch
    may lack the delete-by-query module); the count deleted."""
    query = {"term": {"connector.id": connector_id}}
    ids = [hit["_id"] async for hit in ctx.jobs.documents.scan(query)]
    removed = 0
    for start in range(0, len(ids), JOB_DELETE_BATCH):
        batch = ids[start : start + JOB_DELETE_BATCH]
        response = await ctx.es.bulk(
            operations=[{"delete": {"_index": ctx.jobs.index, "_id": job_id}} for job_id in batch],
            refresh=True,
        )
        for item in response["items"]:
            result = item["delete"]
            if result.get("status") not in (200, 404):
                raise RuntimeFailure(
                    f"connector {connector_id} deleted, but not its job {result.get('_id')}: "
                    f"{result.get('error')}"
                )
            removed += result.get("status") == 200
    return removed


async def _check_deletable_index(ctx: Context, connector: Connector) -> None:
    """`--with-index` deletes one plain index that only this connector writes to."""
    index = connector.index_name
    problem = target_problem(index, ctx.settings.protocol)
    if problem:
        raise UsageError(f"--with-index: {problem}")
    concrete = await concrete_indices(ctx.es, index)
    if concrete and concrete != [index]:
        raise UsageError(
            f"--with-index: {index} is an alias (of {', '.join(sorted(concrete))}); "
            "delete the connector without --with-index and remove those indices yourself"
        )
    sharing = [c.id for c in await ctx.connectors.all() if c.index_name == index]
    others = [other for other in sharing if other != connector.id]
    if others:
        raise UsageError(
            f"--with-index: index {index} is also the target of connector(s) "
            f"{', '.join(others)}; delete without --with-index"
        )


async def _refuse_if_running(ctx: Context, connector: Connector) -> None:
    query = {"term": {"connector.id": connector.id}}
    async for hit in ctx.jobs.documents.scan(query):
        status, job_id = hit["_source"].get("status"), hit["_id"]
        if status in [active.value for active in ACTIVE]:
            raise UsageError(
                f"connector {connector.id} has a running job {job_id} ({status}); cancel it "
                f"(elastic-ingest job cancel {job_id}), wait for it to end, then delete"
            )
    locked_at = clock.parse(connector.doc.get("sync_locked_at"))
    fresh = locked_at is not None and (
        (clock.now() - locked_at).total_seconds() < ctx.settings.service.stale_job_seconds
    )
    for kind in JobType:
        if fresh and connector.doc.get(status_fields(kind)[0]) == JobStatus.IN_PROGRESS:
            raise UsageError(
                f"connector {connector.id} is starting a {kind} sync; wait for it to end "
                "(or cancel it), then delete"
            )


async def request_sync(args, ctx: Context) -> None:
    """A full sync is requested through `sync_now` (it waits for a connector still being
    configured); another kind, or any kind with `--wait`, becomes a pending job at once, as
    Kibana creates them."""
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout: expected a number of seconds above 0")
    connector = await _connector(ctx.connectors, args.connector_id)
    if args.job_type == JobType.FULL and not args.wait:
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
    if not args.wait:
        ctx.out(f"{args.job_type} sync job {job_id} created; the next poll pass starts it")
        return
    ctx.out(f"{args.job_type} sync job {job_id} created; waiting for a poll loop or worker")
    await follow_job(ctx, job_id, args.timeout)


def _progress_line(job: Job) -> str:
    d = job.doc
    if job.status in (JobStatus.PENDING, JobStatus.SUSPENDED):
        return f"job {job.id}: {job.status.value}, waiting for a poll loop or worker to run it"
    indexed = int(d.get("indexed_document_count") or 0)
    deleted = int(d.get("deleted_document_count") or 0)
    started = clock.parse(d.get("started_at"))
    seconds = (clock.now() - started).total_seconds() if started else 0
    rate = (indexed + deleted) / seconds if seconds > 0 else 0.0
    return (
        f"job {job.id}: {job.status.value}, indexed {indexed}, deleted {deleted}, "
        f"{rate:,.0f} documents/s"
    )


def _final_line(job: Job) -> str:
    d, metadata = job.doc, job.doc.get("metadata") or {}
    counts = [
        f"indexed {d.get('indexed_document_count') or 0}",
        f"deleted {d.get('deleted_document_count') or 0}",
    ]
    if metadata.get("skipped_document_count") is not None:
        counts.append(f"unchanged {metadata['skipped_document_count']}")
    error = f": {d['error']}" if d.get("error") else ""
    return f"job {job.id}: {job.status.value} ({', '.join(counts)}){error}"


async def follow_job(ctx: Context, job_id: str, seconds: float | None) -> None:
    """Read the job until it is final: a progress line every PROGRESS_SECONDS, then the final
    line; a job that did not complete, or is not final after `seconds`, is a runtime failure."""
    try:
        async with asyncio.timeout(seconds):
            job = await _final_job(ctx, job_id)
    except TimeoutError:
        raise RuntimeFailure(
            f"job {job_id} did not end within {seconds:g} s; stopped waiting (the job goes on)"
        ) from None
    ctx.out(_final_line(job))
    if job.status != JobStatus.COMPLETED:
        raise RuntimeFailure(f"job {job.id} ended {job.status.value}")


async def _final_job(ctx: Context, job_id: str) -> Job:
    last_line = -float("inf")
    while True:
        job = await ctx.jobs.get(job_id)
        if job is None:
            raise RuntimeFailure(f"job {job_id} was deleted while waiting for it")
        if job.problems():
            raise RuntimeFailure(f"job {job_id}: {'; '.join(job.problems())}")
        if job.status in FINAL:
            return job
        if time.monotonic() - last_line >= PROGRESS_SECONDS:
            ctx.out(_progress_line(job))
            last_line = time.monotonic()
        await asyncio.sleep(READ_JOB_SECONDS)


async def list_jobs(args, ctx: Context) -> None:
    await _connector(ctx.connectors, args.connector_id)
    jobs = await ctx.jobs.for_connector(args.connector_id)
    if args.output == "json":
        ctx.out(_json([job_view(job) for job in jobs]))
        return
    row = "{:<40} {:<12} {:<12} {:<10} {:>8} {:>8} {:<33} {}"
    ctx.out(row.format("ID", "TYPE", "STATUS", "TRIGGER", "INDEXED", "DELETED", "CREATED", "ERROR"))
    for job in jobs:
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
                _error_column(d.get("error")),
            )
        )


async def show_job(args, ctx: Context) -> None:
    job = await ctx.jobs.get(args.job_id)
    if job is None:
        raise UsageError(f"job {args.job_id} does not exist")
    if args.output == "json":
        ctx.out(_json(job_view(job)))
    else:
        ctx.out(yaml.safe_dump(job_view(job), sort_keys=False).rstrip())


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
    ("connector", "update"): update_connector,
    ("connector", "delete"): delete_connector,
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


# The protocol layer has no delete or whole-document replace yet; these two use the client the
# CLI already holds, by compare-and-set (a 409 means the document changed since it was read).


async def _delete_if_unchanged(es: ESClient, index: str, document: VersionedDocument) -> bool:
    response = await es.options(ignore_status=(404, 409)).delete(
        index=index,
        id=document.id,
        if_seq_no=document.seq_no,
        if_primary_term=document.primary_term,
        refresh=True,
    )
    return response.meta.status == 200


async def _replace_if_unchanged(
    es: ESClient, index: str, document: VersionedDocument, source: dict
) -> bool:
    response = await es.options(ignore_status=(404, 409)).index(
        index=index,
        id=document.id,
        document=source,
        if_seq_no=document.seq_no,
        if_primary_term=document.primary_term,
        refresh=True,
    )
    return response.meta.status in (200, 201)


def _merged(source: dict, fields: dict) -> dict:
    """What a partial update makes of `source`: objects merge, the rest replaces."""
    merged = dict(source)
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _print(line: str) -> None:
    print(line, flush=True)  # progress lines reach a pipe (tee, a CI log) as they happen


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
            asyncio.run(list_sources(settings, _print), debug=args.debug)
        elif action == "poll":
            from flows.poll import run_poll_loop  # Prefect loads only for the service loop

            return run_poll_loop(args.config_file, debug=args.debug)
        else:
            asyncio.run(manage(args, settings, _print), debug=args.debug)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ConnectionError, OSError, RuntimeFailure) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted (a job already requested goes on)", file=sys.stderr)
        return 130
    except Exception as error:  # a runtime failure: one readable block, details with --debug
        if args.debug:
            raise
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
