"""`elastic-ingest connector ...`: create, list, show, update, delete and sync connectors."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

import yaml

from elastic_ingest.app.context import Context, RuntimeFailure, UsageError, get_connector
from elastic_ingest.app.job_commands import follow_job
from elastic_ingest.app.output import as_json, connector_view
from elastic_ingest.app.values import (
    check_source,
    has_value,
    parse_schedules,
    parse_values,
    typed_values,
)
from elastic_ingest.connectors.access_control import acl_index
from elastic_ingest.connectors.es.documents import merged
from elastic_ingest.connectors.es.indices import concrete_indices, delete_indices
from elastic_ingest.connectors.protocol import (
    ConnectorStatus,
    JobStatus,
    JobType,
    TriggerMethod,
    clock,
)
from elastic_ingest.connectors.protocol.connector import Connector, new_connector_document
from elastic_ingest.connectors.protocol.job import status_fields
from elastic_ingest.connectors.protocol.states import SCHEDULED_KINDS, may_sync
from elastic_ingest.connectors.protocol.targets import shared_index_problem, target_problem
from elastic_ingest.connectors.registry import (
    RegistryError,
    source_class_for,
)
from elastic_ingest.connectors.source import ConfigurationError


async def create_connector(args, ctx: Context) -> None:
    problem = target_problem(args.index_name, ctx.settings.protocol)
    if problem:
        raise UsageError(f"--index-name: {problem}")
    await _refuse_shared_index(ctx, args.index_name)
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


async def _refuse_shared_index(ctx: Context, index: str, but: str | None = None) -> None:
    """One connector per index: a full sync deletes what its own source lacks."""
    targeting = [c.id for c in await ctx.connectors.all() if c.index_name == index]
    problem = shared_index_problem(index, but, targeting)
    if problem:
        raise UsageError(f"--index-name: {problem}")


async def list_connectors(args, ctx: Context) -> None:
    connectors = await ctx.connectors.all()
    if args.output == "json":
        ctx.out(
            as_json([connector_view(c, ctx.jobs.sensitive(c.service_type)) for c in connectors])
        )
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
    found = await get_connector(ctx.connectors, args.connector_id)
    shown = connector_view(found, ctx.jobs.sensitive(found.service_type))
    if args.output == "json":
        ctx.out(as_json(shown))
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
    combined = {**connector.configuration_values(), **(values or {})}
    if values:
        source_class = source_class_for(ctx.settings.sources, connector.service_type)
        schema = source_class.configuration_schema()
        current = connector.configuration
        configuration = {
            name: {**(current.get(name) or schema.get(name) or {}), "value": value}
            for name, value in values.items()
        }
        fields["configuration"] = configuration
        # what the source can do follows its values now, not at the next poll pass
        fields["features"] = source_class.features(combined)
        changed.append(f"configuration ({', '.join(values)})")
        waiting = (ConnectorStatus.CREATED, ConnectorStatus.NEEDS_CONFIGURATION)
        configured = source_class.is_configured(combined)
        if connector.status in waiting:
            status = ConnectorStatus.CONFIGURED if configured else waiting[1]
            fields["status"] = status.value
        if not configured:
            missing = [
                name
                for name, spec in source_class.CONFIGURATION.items()
                if spec.required
                and not has_value(spec.default)
                and not has_value(combined.get(name))
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
    schedules = {kind: connector.schedule(kind) for kind in SCHEDULED_KINDS}
    wanted: dict[str, dict] = {}
    for kind, cron in parse_schedules(args.schedule).items():
        wanted[kind] = {"enabled": True, "interval": cron}
        changed.append(f"scheduling.{kind} ({cron})")
        problem = kind == JobType.INCREMENTAL and _incremental_problem(ctx, connector, combined)
        if problem:
            notes.append(
                f"connector {connector.id} cannot run incremental syncs: {problem}; the "
                "scheduler creates no incremental job until it can"
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


def _incremental_problem(ctx: Context, connector: Connector, values: dict) -> str | None:
    """Why the connector's source cannot run incremental syncs with `values` (None: it can),
    asked of the source class itself, not of `features` a poll pass may not have updated yet."""
    try:
        source_class = source_class_for(ctx.settings.sources, connector.service_type)
    except RegistryError as error:
        return str(error)
    return source_class.incremental_problem(values)


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
        await _refuse_shared_index(ctx, args.index_name, but=args.connector_id)
    connector = await get_connector(ctx.connectors, args.connector_id)
    values = None
    if args.set or args.values_file or args.check:
        try:
            source_class = source_class_for(ctx.settings.sources, connector.service_type)
            values = typed_values(source_class, parse_values(args.set, args.values_file))
        except (RegistryError, ConfigurationError) as error:
            raise UsageError(str(error)) from None
        if args.check:
            combined = {**connector.configuration_values(), **values}
            await check_source(source_class, combined)
    for _ in range(10):
        plan = _plan_update(args, ctx, connector, values)
        if not plan.fields:  # e.g. --index-name naming the index it already has
            ctx.out(f"connector {connector.id}: nothing changed")
            return
        if plan.replace_scheduling:
            others = {k: v for k, v in plan.fields.items() if k != "scheduling"}
            document = {**merged(connector.doc, others), "scheduling": plan.fields["scheduling"]}
            written = await ctx.connectors.replace(connector, document)
        else:
            written = await ctx.connectors.update(connector, plan.fields) is not None
        if written:
            break
        connector = await get_connector(ctx.connectors, args.connector_id)
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
    connector = await get_connector(ctx.connectors, args.connector_id)
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
        if await ctx.connectors.delete(connector):
            break
        connector = await get_connector(ctx.connectors, args.connector_id)
    else:
        raise RuntimeFailure(
            f"connector {connector.id} kept changing while it was deleted; nothing deleted, "
            "try again"
        )
    # With the connector gone no job of it can be claimed any more: every one is deleted.
    removed = await ctx.jobs.delete_for_connector(connector.id)
    deleted = [f"connector {connector.id}", f"{removed} job(s)"]
    if index is not None:
        if await concrete_indices(ctx.es, index):
            await delete_indices(ctx.es, [index])
            deleted.append(f"index {index}")
        else:
            deleted.append(f"no index {index} (it did not exist)")
        if await concrete_indices(ctx.es, acl_index(index)):
            await delete_indices(ctx.es, [acl_index(index)])
            deleted.append(f"index {acl_index(index)}")
    ctx.out(f"deleted {', '.join(deleted)}")


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
    for job in await ctx.jobs.running_for(connector.id):
        raise UsageError(
            f"connector {connector.id} has a running job {job.id} ({job.status.value}); cancel "
            f"it (elastic-ingest job cancel {job.id}), wait for it to end, then delete"
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
    Kibana creates them. `--dry-run`: what a full sync would do, and no job."""
    if args.dry_run:
        from elastic_ingest.app.verify_commands import dry_run  # loads the sync engine

        await dry_run(args, ctx)
        return
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout: expected a number of seconds above 0")
    connector = await get_connector(ctx.connectors, args.connector_id)
    if args.job_type == JobType.FULL and not args.wait:
        await ctx.connectors.request_sync(args.connector_id)
        ctx.out(f"sync requested for {args.connector_id}; the next poll pass starts it")
        return
    if not may_sync(connector.status):
        raise UsageError(f"connector {connector.id} is {connector.status}; configure it first")
    if args.job_type == JobType.INCREMENTAL:
        problem = _incremental_problem(ctx, connector, connector.configuration_values())
        if problem:
            raise UsageError(f"connector {connector.id} cannot run incremental syncs: {problem}")
    if args.job_type == JobType.ACCESS_CONTROL and not connector.dls_on:
        raise UsageError(
            f"connector {connector.id} has no access-control sync: document level security is "
            "off (set use_document_level_security=true; its source must support it)"
        )
    job_id = await ctx.jobs.create(connector, JobType(args.job_type), TriggerMethod.ON_DEMAND)
    if not args.wait:
        ctx.out(f"{args.job_type} sync job {job_id} created; the next poll pass starts it")
        return
    ctx.out(f"{args.job_type} sync job {job_id} created; waiting for a poll loop or worker")
    await follow_job(ctx, job_id, args.timeout)
