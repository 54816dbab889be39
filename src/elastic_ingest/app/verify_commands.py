"""`elastic-ingest connector verify` and `connector sync --dry-run`: a connector's index diffed
against its source, nothing written (connectors/job/verify.py)."""

from __future__ import annotations

from elastic_ingest.app.context import Context, RuntimeFailure, UsageError, get_connector
from elastic_ingest.app.output import as_json
from elastic_ingest.connectors.errors import describe_error
from elastic_ingest.connectors.job.setup import JobSetupError
from elastic_ingest.connectors.job.verify import Verdict, remember_drift, verify_connector
from elastic_ingest.connectors.protocol import JobType
from elastic_ingest.connectors.protocol.connector import Connector
from elastic_ingest.connectors.source import SourceError


async def verify(args, ctx: Context) -> None:
    """Exit 0 when the index equals the source, 1 when it drifts (after the report). A drift
    is noted on the connector, so that its next full sync reads everything and repairs it."""
    connector = await get_connector(ctx.connectors, args.connector_id)
    verdict = await _verdict(ctx, connector)
    await remember_drift(ctx.connectors, connector, verdict)
    if args.output == "json":
        ctx.out(as_json(verdict.as_dict()))
    else:
        ctx.out(verdict.summary())
        for line in verdict.details():
            ctx.out(f"  {line}")
    if not verdict.drift.equal:
        raise RuntimeFailure(verdict.summary())


async def dry_run(args, ctx: Context) -> None:
    """`connector sync ID --dry-run`: what a full sync would do now."""
    if args.job_type != JobType.FULL or args.wait:
        raise UsageError(
            "--dry-run shows what a full sync would write and delete; it takes no --type other "
            "than full, and no --wait (nothing runs)"
        )
    verdict = await _verdict(ctx, await get_connector(ctx.connectors, args.connector_id))
    if args.output == "json":
        ctx.out(as_json(verdict.as_dict()))
        return
    for line in verdict.sync_plan():
        ctx.out(line)
    for line in verdict.details():
        ctx.out(f"  {line}")


async def _verdict(ctx: Context, connector: Connector) -> Verdict:
    try:
        return await verify_connector(ctx.es, ctx.settings, connector)
    except JobSetupError as error:
        raise UsageError(str(error)) from None
    except SourceError as error:
        raise RuntimeFailure(f"connector {connector.id}: {describe_error(error)}") from None
