"""Sync rules as Kibana writes them in a connector's `filtering`: basic rules, which the framework
applies to every document (ordered, first match decides, no match includes), and an advanced
snippet, which the source pushes down into its own query. Plain values, no Elasticsearch."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

DEFAULT_DOMAIN = "DEFAULT"
DEFAULT_RULE_ID = "DEFAULT"
OPERATORS = ("equals", "contains", "starts_with", "ends_with", "regex", ">", "<")
POLICIES = ("include", "exclude")
_TRUE = frozenset("true t yes y on 1".split())
# The keys of a connector's `sync_cursor` where the framework keeps what the last successful
# sync ran with: its rules' fingerprint, and how it fetched content (the rest is the source's).
RULES_CURSOR_KEY = "sync_rules"
CONTENT_CURSOR_KEY = "content_settings"
FRAMEWORK_KEYS = (RULES_CURSOR_KEY, CONTENT_CURSOR_KEY)


@dataclass(frozen=True)
class BasicRule:
    id: str
    policy: str
    field: str
    rule: str
    value: str
    order: int

    def matches(self, value: Any) -> bool:
        """Whether a document's field value matches; a list matches if any item does."""
        if isinstance(value, list):
            return any(self.matches(item) for item in value)
        if value is None or isinstance(value, dict):
            return False
        text = str(value)
        if self.rule == "contains":
            return self.value in text
        if self.rule == "starts_with":
            return text.startswith(self.value)
        if self.rule == "ends_with":
            return text.endswith(self.value)
        if self.rule == "regex":
            return re.match(self.value, text) is not None
        mine, theirs = _comparable(value, self.value)
        if mine is None:
            return False
        if self.rule == "equals":
            return mine == theirs
        try:
            return mine > theirs if self.rule == ">" else mine < theirs
        except TypeError:
            return False


def _comparable(value: Any, rule_value: str) -> tuple[Any, Any]:
    """The document value and the rule's value coerced to the document value's type (numbers,
    booleans, ISO dates), or (None, None) when the rule's value cannot be read as that type."""
    if isinstance(value, bool):
        return value, str(rule_value).strip().lower() in _TRUE
    if isinstance(value, int | float):
        try:
            return float(value), float(rule_value)
        except ValueError:
            return None, None
    if isinstance(value, str):
        try:
            return _date(value), _date(rule_value)
        except ValueError:
            return value, str(rule_value)
    return str(value), str(rule_value)


def _date(text: str) -> datetime:
    if not text[:4].isdigit() or len(text) < 10 or text[4] != "-":
        raise ValueError(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # naive: read as UTC


UNDECIDED = object()


@dataclass(frozen=True)
class SyncRules:
    """The active rules a job runs with. `advanced` is the source-specific snippet (or None)."""

    basic: tuple[BasicRule, ...] = ()
    advanced: Any = None
    fingerprint: str = ""  # changes whenever the rules do: a full sync then re-decides all

    @classmethod
    def of(cls, rules_filter: dict | None) -> SyncRules:
        """From one filter (`{rules, advanced_snippet, ...}`); assumes it was validated."""
        rules_filter = rules_filter or {}
        basic = tuple(
            sorted(
                (
                    _basic(raw)
                    for raw in rules_filter.get("rules") or []
                    if raw.get("id") != DEFAULT_RULE_ID
                ),
                key=lambda rule: rule.order,
            )
        )
        advanced = advanced_value(rules_filter)
        if not basic and advanced is None:
            return cls()
        shape = {"basic": [rule.__dict__ for rule in basic], "advanced": advanced}
        digest = hashlib.blake2b(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS), digest_size=8)
        return cls(basic, advanced, digest.hexdigest())

    def first_match(self, document: dict, complete: bool = True) -> BasicRule | None | object:
        """The rule that decides this document (None: no rule matches, so it is included), or
        UNDECIDED when a rule's field is missing from a document that is not `complete` yet
        (a listed stub: decide after fetching it)."""
        for rule in self.basic:
            value = _field(document, rule.field)
            if value is _MISSING:
                if not complete:
                    return UNDECIDED
                continue
            if rule.matches(value):
                return rule
        return None


_MISSING = object()


def _field(document: dict, name: str) -> Any:
    """A field by name, or by dotted path into nested objects."""
    if name in document:
        return document[name]
    value: Any = document
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _basic(raw: dict) -> BasicRule:
    return BasicRule(
        id=str(raw.get("id")),
        policy=str(raw.get("policy", "")).lower(),
        field=str(raw.get("field", "")),
        rule=_operator(raw.get("rule")),
        value=str(raw.get("value", "")),
        order=int(raw.get("order") or 0),
    )


def _operator(rule: Any) -> str:
    name = str(rule or "").lower()
    return {"greater_than": ">", "less_than": "<"}.get(name, name)


def advanced_value(rules_filter: dict) -> Any:
    """The advanced snippet's value, or None when it is empty (`{}`, `[]`, missing)."""
    value = (rules_filter.get("advanced_snippet") or {}).get("value")
    return value if value not in (None, {}, [], "") else None


def basic_rule_problems(rules: list) -> list[dict]:
    """Errors in the protocol's shape (`{ids, messages}`), one per bad basic rule."""
    errors, seen = [], {}
    for raw in rules or []:
        if not isinstance(raw, dict):
            errors.append({"ids": [], "messages": [f"a rule must be an object, got {raw!r}"]})
            continue
        rule_id = str(raw.get("id", ""))
        if rule_id == DEFAULT_RULE_ID:
            continue
        messages = []
        if str(raw.get("policy", "")).lower() not in POLICIES:
            messages.append(f"policy must be include or exclude, got {raw.get('policy')!r}")
        operator = _operator(raw.get("rule"))
        if operator not in OPERATORS:
            messages.append(f"rule must be one of {', '.join(OPERATORS)}, got {raw.get('rule')!r}")
        if not str(raw.get("field", "")).strip():
            messages.append("field is empty")
        if operator == "regex":
            try:
                re.compile(str(raw.get("value", "")))
            except re.error as error:
                messages.append(f"value {raw.get('value')!r} is not a valid regex: {error}")
        if not isinstance(raw.get("order", 0), int):
            messages.append(f"order must be a number, got {raw.get('order')!r}")
        key = (raw.get("field"), operator, str(raw.get("value")), str(raw.get("policy")).lower())
        if key in seen and not messages:
            messages.append(f"same rule as {seen[key]}")
        seen.setdefault(key, rule_id)
        if messages:
            messages = [f"rule {rule_id}: {message}" for message in messages]
            errors.append({"ids": [rule_id], "messages": messages})
    return errors


def domain_filter(filtering: Any, which: str) -> dict | None:
    """The `active` or `draft` filter of the DEFAULT domain of a connector's `filtering`."""
    for entry in filtering if isinstance(filtering, list) else []:
        if isinstance(entry, dict) and entry.get("domain", DEFAULT_DOMAIN) == DEFAULT_DOMAIN:
            return entry.get(which)
    return None


def job_filter(snapshot: Any) -> dict | None:
    """The rules a job was created with: Elastic's jobs hold the active filter itself; jobs made
    before that (or by other tools) may hold the connector's whole `filtering` list."""
    if isinstance(snapshot, list):
        return domain_filter(snapshot, "active")
    return snapshot if isinstance(snapshot, dict) else None


AdvancedProblems = Callable[[Any], list[str]]
"""A source's check of an advanced snippet: one message per problem (empty: valid)."""


def filter_problems(rules_filter: dict | None, advanced: AdvancedProblems | None) -> list[dict]:
    """Every problem of one filter, in the protocol's `validation.errors` shape; `advanced` is
    None for a source that cannot push rules down."""
    rules_filter = rules_filter or {}
    errors = basic_rule_problems(rules_filter.get("rules"))
    snippet = advanced_value(rules_filter)
    if snippet is not None:
        messages = (
            ["this source does not support advanced sync rules"]
            if advanced is None
            else advanced(snippet)
        )
        if messages:
            errors.append({"ids": ["advanced_snippet"], "messages": messages})
    return errors


# Every document has these, whatever its source.
FRAMEWORK_FIELDS = frozenset({"_id", "_timestamp"})


def rule_field_warnings(rules: list, fields: frozenset[str] | None) -> list[dict]:
    """Rules on a field the source's documents never have (they never match), in the shape of
    `validation.errors`; none when the source has no fixed fields (`fields` None)."""
    if fields is None:
        return []
    known = fields | FRAMEWORK_FIELDS
    warnings = []
    for raw in rules or []:
        if not isinstance(raw, dict) or str(raw.get("id", "")) == DEFAULT_RULE_ID:
            continue
        field = str(raw.get("field", "")).strip()
        if field and field.split(".")[0] not in known:
            message = (
                f"rule {raw.get('id')}: documents of this source have no field {field!r}, so "
                f"the rule never matches (fields: {', '.join(sorted(fields))})"
            )
            warnings.append({"ids": [str(raw.get("id", ""))], "messages": [message]})
    return warnings


def reviewed_filtering(
    filtering: Any, advanced: AdvancedProblems | None, fields: frozenset[str] | None = None
) -> list | None:
    """The connector's `filtering` after validating an `edited` draft (None: nothing to do).
    The draft gets `valid` or `invalid` with its errors, and `warnings` for rules on fields the
    source's documents lack (`fields`); a valid draft becomes the active filter, as Kibana
    expects to see it."""
    if not isinstance(filtering, list):
        return None
    reviewed, changed = [], False
    for entry in filtering:
        draft = entry.get("draft") if isinstance(entry, dict) else None
        if (
            not isinstance(draft, dict)
            or entry.get("domain", DEFAULT_DOMAIN) != DEFAULT_DOMAIN
            or (draft.get("validation") or {}).get("state") != "edited"
        ):
            reviewed.append(entry)
            continue
        errors = filter_problems(draft, advanced)
        validation = {"state": "invalid" if errors else "valid", "errors": errors}
        warnings = rule_field_warnings(draft.get("rules"), fields)
        if warnings:
            validation["warnings"] = warnings
        entry = {**entry, "draft": {**draft, "validation": validation}}
        if not errors:
            entry["active"] = entry["draft"]
        reviewed.append(entry)
        changed = True
    return reviewed if changed else None


def with_framework(cursor: dict | None, remembered: dict[str, str]) -> dict | None:
    """The cursor to store after a successful sync: the source's, plus what the framework
    remembers (`FRAMEWORK_KEYS` -> fingerprint; empty ones are left out)."""
    kept = {key: value for key, value in remembered.items() if value}
    return {**(cursor or {}), **kept} if kept else cursor


def split_cursor(cursor: Any) -> tuple[dict | None, dict[str, str]]:
    """(the source's part of a stored cursor, the framework's part: key -> fingerprint)."""
    if not isinstance(cursor, dict):
        return cursor, {}
    source_part = {key: value for key, value in cursor.items() if key not in FRAMEWORK_KEYS}
    remembered = {key: str(cursor.get(key) or "") for key in FRAMEWORK_KEYS}
    return source_part or None, remembered


def default_rule(now: str) -> dict:
    """The catch-all rule Kibana keeps in every rule set (the engine ignores it)."""
    return {
        "id": DEFAULT_RULE_ID,
        "policy": "include",
        "field": "_",
        "rule": "regex",
        "value": ".*",
        "order": 0,
        "created_at": now,
        "updated_at": now,
    }


def empty_filter(now: str, state: str = "valid") -> dict:
    return {
        "rules": [default_rule(now)],
        "advanced_snippet": {"value": {}, "created_at": now, "updated_at": now},
        "validation": {"state": state, "errors": []},
    }


def default_filtering(now: str) -> list[dict]:
    """A new connector's `filtering`, as Kibana and Elastic's CLI create it."""
    return [{"domain": DEFAULT_DOMAIN, "active": empty_filter(now), "draft": empty_filter(now)}]
