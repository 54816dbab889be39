"""Timestamps as the protocol stores them: ISO-8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None = None) -> str:
    return (moment or now()).astimezone(UTC).isoformat()


def parse(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def microseconds() -> int:
    """Now, as microseconds since the epoch: above any version Elasticsearch assigns itself."""
    return int(now().timestamp() * 1_000_000)
