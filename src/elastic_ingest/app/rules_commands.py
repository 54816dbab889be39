"""`elastic-ingest connector rules ID`: show a connector's sync rules, edit its draft (basic
rules, advanced snippet), and validate and activate it at once, as the service would."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import yaml

from elastic_ingest.app.context import Context, RuntimeFailure, UsageError, get_connector
from elastic_ingest.app.output import as_json
from elastic_ingest.connectors.protocol import clock
from elastic_ingest.connectors.protocol.connector import Connector
from elastic_ingest.connectors.registry import RegistryError, source_class_for
from elastic_ingest.connectors.sync_rules import (
    DEFAULT_DOMAIN,
    DEFAULT_RULE_ID,
    default_filtering,
    domain_filter,
    empty_filter,
    reviewed_filtering,
)


async def sync_rules(args, ctx: Context) -> None:
    edits = args.rules or args.clear or args.set_advanced or args.clear_advanced
    if not edits:
        connector = await get_connector(ctx.connectors, args.connector_id)
        _show(args, ctx, connector)
        return
    advanced = _read_advanced(args.set_advanced) if args.set_advanced else None
    for _ in range(10):
        connector = await get_connector(ctx.connectors, args.connector_id)
        filtering = _edited(args, connector.doc.get("filtering"), advanced)
        source_class = _source_class(ctx, connector)
        checks = _advanced_check(source_class), source_class.DOCUMENT_FIELDS
        filtering = reviewed_filtering(filtering, *checks) or filtering
        if await ctx.connectors.update(connector, {"filtering": filtering}) is not None:
            break
    else:
        raise RuntimeFailure(f"connector {args.connector_id} kept changing; nothing written")
    draft = domain_filter(filtering, "draft") or {}
    errors = (draft.get("validation") or {}).get("errors") or []
    if errors:
        messages = "; ".join(m for error in errors for m in error.get("messages", []))
        raise RuntimeFailure(
            f"connector {connector.id}: the sync rules draft is invalid and was not activated: "
            f"{messages}"
        )
    ctx.out(f"connector {connector.id}: sync rules valid and active ({_summary(draft)})")
    for warning in (draft.get("validation") or {}).get("warnings") or []:
        for message in warning.get("messages", []):
            ctx.out(f"warning: {message}")


def _show(args, ctx: Context, connector: Connector) -> None:
    filtering = connector.doc.get("filtering")
    shown = {
        which: domain_filter(filtering, which) or empty_filter("", "valid")
        for which in ("active", "draft")
    }
    if args.output == "json":
        ctx.out(as_json(shown))
        return
    for which, rules_filter in shown.items():
        validation = rules_filter.get("validation") or {}
        ctx.out(f"{which}: {validation.get('state', '-')} ({_summary(rules_filter)})")
        for rule in sorted(rules_filter.get("rules") or [], key=lambda r: r.get("order", 0)):
            if rule.get("id") != DEFAULT_RULE_ID:
                ctx.out(
                    f"  {rule.get('order')}. {rule.get('policy')} {rule.get('field')} "
                    f"{rule.get('rule')} {rule.get('value')!r}  (id {rule.get('id')})"
                )
        snippet = (rules_filter.get("advanced_snippet") or {}).get("value")
        if snippet:
            dumped = yaml.safe_dump(snippet, sort_keys=False).rstrip()
            ctx.out("  advanced:\n" + "\n".join("    " + line for line in dumped.splitlines()))
        for error in validation.get("errors") or []:
            for message in error.get("messages", []):
                ctx.out(f"  error: {message}")
        for warning in validation.get("warnings") or []:
            for message in warning.get("messages", []):
                ctx.out(f"  warning: {message}")


def _summary(rules_filter: dict) -> str:
    basic = [r for r in rules_filter.get("rules") or [] if r.get("id") != DEFAULT_RULE_ID]
    snippet = (rules_filter.get("advanced_snippet") or {}).get("value")
    return f"{len(basic)} basic rule(s), advanced rules: {'yes' if snippet else 'none'}"


def _edited(args, filtering, advanced) -> list:
    """The connector's `filtering` with the draft edited and marked `edited` (to validate)."""
    now = clock.iso()
    if not isinstance(filtering, list) or domain_filter(filtering, "active") is None:
        filtering = default_filtering(now)
    entries = []
    for entry in filtering:
        if entry.get("domain", DEFAULT_DOMAIN) == DEFAULT_DOMAIN:
            start = entry.get("draft") or entry.get("active") or empty_filter(now)
            entry = {**entry, "draft": _edited_draft(args, start, advanced, now)}
        entries.append(entry)
    return entries


def _edited_draft(args, draft: dict, advanced, now: str) -> dict:
    rules = [dict(rule) for rule in draft.get("rules") or []]
    if args.clear:
        rules = [rule for rule in rules if rule.get("id") == DEFAULT_RULE_ID]
    order = max((rule.get("order", 0) for rule in rules), default=0)
    for policy, field, operator, value in args.rules:
        order += 1
        rules.append(
            {
                "id": uuid.uuid4().hex[:12],
                "policy": policy,
                "field": field,
                "rule": operator,
                "value": value,
                "order": order,
                "created_at": now,
                "updated_at": now,
            }
        )
    snippet = dict(draft.get("advanced_snippet") or {})
    if args.clear_advanced:
        snippet = {**snippet, "value": {}, "updated_at": now}
    if advanced is not None:
        snippet = {**snippet, "value": advanced, "updated_at": now}
    return {
        **draft,
        "rules": rules,
        "advanced_snippet": snippet,
        "validation": {"state": "edited", "errors": []},
    }


def _read_advanced(path: str):
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return json.loads(text)
    except OSError as error:
        raise UsageError(f"--set-advanced: cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"--set-advanced: {path} is not JSON: {error}") from None


def _source_class(ctx: Context, connector: Connector):
    try:
        return source_class_for(ctx.settings.sources, connector.service_type)
    except RegistryError as error:
        raise UsageError(str(error)) from None


def _advanced_check(source_class):
    if source_class.supports_advanced_rules():
        return source_class.advanced_rules_problems
    return None
