"""Timestamps as the protocol stores them: ISO-8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None = None) -> str:
    return (moment or now()).astimezone(UTC).isoformat()


def parse(value: str | int | float | None) -> datetime | None:
    """A protocol date: ISO-8601 text, or epoch milliseconds (also a valid Elasticsearch date);
    None when absent or unreadable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value / 1000, UTC)
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def microseconds() -> int:
    """Now, as microseconds since the epoch: above any version Elasticsearch assigns itself."""
    return int(now().timestamp() * 1_000_000)
