"""`make notify`: be told when a sync fails. A Prefect automation on every Failed `sync` flow run
(scheduled, on demand, retried, on any worker) sends a notification through a Prefect
notification block: one you made (Slack, Teams, email, ...) or a JSON webhook this creates.

    python -m elastic_ingest.deployments.notify --webhook https://hooks.example/elastic-ingest
    python -m elastic_ingest.deployments.notify --block slack-webhook/ops-alerts
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from prefect.automations import Automation, EventTrigger, SendNotification
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock

AUTOMATION = "elastic-ingest: sync failed"
WEBHOOK_BLOCK = "elastic-ingest-sync-failed"
SUBJECT = "elastic-ingest: {{ flow_run.name }} failed"
BODY = (
    "Sync run {{ flow_run.name }} ended {{ flow_run.state.name }}: "
    "{{ flow_run.state.message }}\n{{ flow_run|ui_url }}"
)


def failed_sync_runs() -> EventTrigger:
    """Every flow run of the `sync` flow that enters Failed (the job's error is its message):
    one notification per failed job. A deployment run whose job runs failed ends
    `JobRunsFailed`, and a failed part of a partitioned sync `PartFailed` (flows/runs.py):
    those failures are each told once, by the job's own run."""
    return EventTrigger(
        expect={"prefect.flow-run.Failed"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": "sync"},
        posture="Reactive",
        threshold=1,
        within=0,
    )


async def webhook_block(url: str) -> Block:
    """A notification block that POSTs the subject and body as JSON to `url`."""
    block = CustomWebhookNotificationBlock(
        name=WEBHOOK_BLOCK,
        url=url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        allow_private_urls=True,  # an in-house endpoint is the common case
    )
    await block.asave(WEBHOOK_BLOCK, overwrite=True)
    return await CustomWebhookNotificationBlock.aload(WEBHOOK_BLOCK)


async def install(block: Block) -> Automation:
    """Create the automation, replacing an earlier one of the same name (idempotent)."""
    try:
        await (await Automation.aread(name=AUTOMATION)).adelete()
    except ValueError:
        pass  # none yet
    action = SendNotification(
        block_document_id=block._block_document_id, subject=SUBJECT, body=BODY
    )
    automation = Automation(name=AUTOMATION, trigger=failed_sync_runs(), actions=[action])
    return await automation.acreate()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m elastic_ingest.deployments.notify", description=__doc__
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--webhook", help="POST a JSON {subject, body} to this URL")
    where.add_argument("--block", help="an existing notification block, as TYPE-SLUG/NAME")
    args = parser.parse_args(argv)
    try:
        block = await webhook_block(args.webhook) if args.webhook else await Block.aload(args.block)
    except ValueError as error:
        print(f"error: --block {args.block}: {error}", file=sys.stderr)
        return 2
    automation = await install(block)
    print(
        f"automation {AUTOMATION!r} ({automation.id}): every Failed sync run notifies "
        f"{block._block_document_name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
