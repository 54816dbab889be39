"""What of a connector's configuration may be shown: never a sensitive field's value (as the
source class declares it, or the document's own flag), never the password inside a URI."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

REDACTED = "********"
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*)(?P<password>:[^/@\s]*)?@"
)


def redact_uris(text: str) -> str:
    """`mongodb://user:pw@host` -> `mongodb://user:********@host`; a bare token user is hidden."""

    def hide(match: re.Match) -> str:
        if match.group("password"):
            return f"{match.group('scheme')}{match.group('user')}:{REDACTED}@"
        return f"{match.group('scheme')}{REDACTED}@"

    return _USERINFO.sub(hide, text)


def shown(value: Any, sensitive: bool) -> Any:
    """A value as it may appear in a job, a log line or on screen."""
    if sensitive:
        return REDACTED if value not in (None, "", []) else value
    if isinstance(value, str):
        return redact_uris(value)
    if isinstance(value, list):
        return [shown(item, False) for item in value]
    return value


def is_redacted(value: Any) -> bool:
    """True for a value that went through `shown` and lost something."""
    if isinstance(value, list):
        return any(is_redacted(item) for item in value)
    return isinstance(value, str) and REDACTED in value


def redacted_configuration(
    configuration: dict[str, dict], sensitive: frozenset[str] = frozenset()
) -> dict[str, dict]:
    """The configuration's field objects with every value as it may be shown."""
    return {
        name: {
            **spec,
            "value": shown(spec.get("value"), bool(spec.get("sensitive")) or name in sensitive),
        }
        for name, spec in configuration.items()
    }


SECRET_REFERENCE = "prefect-secret:"
SecretStore = Callable[[str], Awaitable[str]]
"""Reads a secret by name (the orchestrator's secret store: a Prefect Secret block)."""


class SecretUnavailable(LookupError):
    """A `prefect-secret:NAME` value that cannot be read here; the message names the field."""


def secret_reference(value: Any) -> str | None:
    """The secret's name, when `value` is a `prefect-secret:NAME` reference."""
    if isinstance(value, str) and value.startswith(SECRET_REFERENCE):
        return value[len(SECRET_REFERENCE) :]
    return None


async def with_resolved_secrets(values: dict[str, Any], store: SecretStore | None) -> dict:
    """`values` with each `prefect-secret:NAME` replaced by that secret, read when a source is
    built and never stored anywhere (the connector document keeps the reference)."""
    resolved = dict(values)
    for field, value in values.items():
        name = secret_reference(value)
        if name is None:
            continue
        if store is None:
            raise SecretUnavailable(
                f"{field}: holds {SECRET_REFERENCE}{name}, which only a run through Prefect "
                "can read (its Secret block)"
            )
        try:
            resolved[field] = await store(name)
        except Exception as error:  # the block is missing, or Prefect does not answer
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise SecretUnavailable(
                f"{field}: the Prefect Secret block {name!r} cannot be read "
                f"({type(error).__name__}{': ' + reason if reason else ''})"
            ) from None
    return resolved
