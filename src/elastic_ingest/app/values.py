"""What a user types as connector values and schedules -> checked, typed values (exit 2 on a
mistake, naming the field)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import yaml

from elastic_ingest.app.context import UsageError
from elastic_ingest.connectors.config import expand_env
from elastic_ingest.connectors.cron import CronError, QuartzCron
from elastic_ingest.connectors.protocol import JobType
from elastic_ingest.connectors.protocol.secrets import SECRET_REFERENCE, secret_reference
from elastic_ingest.connectors.protocol.states import SCHEDULED_KINDS
from elastic_ingest.connectors.source import BaseDataSource, ConfigurationError

_SECRET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # Prefect's block-name rule


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


def has_value(value: Any) -> bool:
    return value is not None and value != "" and value != []


def _is_reference(value: Any) -> bool:
    return secret_reference(value) is not None


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
        if not has_value(value):
            if spec.required and not has_value(spec.default):
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
    from elastic_ingest.connectors.errors import describe_error
    from elastic_ingest.connectors.poll import (
        CHECK_TIMEOUT_SECONDS,  # the sync engine loads only when used
    )

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
    if kind not in SCHEDULED_KINDS:
        raise UsageError(
            f"--schedule {text!r}: unknown kind {kind!r} (expected {', '.join(SCHEDULED_KINDS)})"
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
