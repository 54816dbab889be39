"""Quartz cron expressions (the connector protocol's schedule format), evaluated in UTC.

Fields: seconds minutes hours day-of-month month day-of-week [year]. `?` means "no specific
value" (one of the two day fields); day-of-week numbers run 1=SUN..7=SAT as in Quartz.
Supported: `*`, `?`, lists, ranges, steps, month and day names. Not supported: `L`, `W`, `#`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
_DAYS = "SUN MON TUE WED THU FRI SAT".split()
_FIELDS = (  # name, low, high, names (first name = low)
    ("seconds", 0, 59, None),
    ("minutes", 0, 59, None),
    ("hours", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 1, 7, _DAYS),
    ("year", 1970, 2199, None),
)


class CronError(ValueError):
    """An expression that is not valid Quartz cron; the message names the field."""


def _value(token: str, name: str, low: int, high: int, names: list[str] | None) -> int:
    if names and token.upper() in names:
        return low + names.index(token.upper())
    if not token.isdigit():
        raise CronError(f"{name}: {token!r} is not a number" + (" or name" if names else ""))
    number = int(token)
    if not low <= number <= high:
        raise CronError(f"{name}: {number} is outside {low}-{high}")
    return number


def _parse_field(text: str, name: str, low: int, high: int, names) -> frozenset[int] | None:
    """The set of allowed values, or None for `*`/`?` (any)."""
    if text in ("*", "?"):
        return None
    if any(mark in text.upper() for mark in ("L", "W", "#")) and not (
        names and all(part.isalpha() for part in text.replace(",", " ").replace("-", " ").split())
    ):
        raise CronError(f"{name}: {text!r} uses L, W or # which are not supported")
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = _value(step_text, name, 1, high, None) if step_text else 1
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = (
                _value(first, name, low, high, names),
                _value(last, name, low, high, names),
            )
        else:
            start = _value(base, name, low, high, names)
            end = high if step_text else start
        if start > end:
            raise CronError(f"{name}: range {base!r} runs backwards")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def quartz_form(unix_fields: list[str]) -> str:
    """The Quartz spelling of a Unix cron's five fields: seconds 0, `?` for the day field left
    open, and week days moved from 0=SUN..6 to 1=SUN..7 (numbers after a `/` are steps)."""
    minute, hour, day_of_month, month, day_of_week = unix_fields
    day_of_week = re.sub(
        r"(?<![/\d])\d+", lambda number: str(int(number.group()) % 7 + 1), day_of_week
    )
    if day_of_week == "*":
        day_of_week = "?"
    elif day_of_month == "*":
        day_of_month = "?"
    else:
        return "Quartz cannot give both a day of the month and a day of the week"
    return f"'0 {minute} {hour} {day_of_month} {month} {day_of_week}'"


@dataclass(frozen=True)
class QuartzCron:
    expression: str
    seconds: frozenset[int] | None
    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days_of_month: frozenset[int] | None
    months: frozenset[int] | None
    days_of_week: frozenset[int] | None
    years: frozenset[int] | None

    @classmethod
    def parse(cls, expression: str) -> QuartzCron:
        parts = expression.split()
        if len(parts) == 5:
            raise CronError(
                f"{expression!r} is a Unix cron (5 fields); Quartz has seconds first and `?` "
                f"in one of the day fields: {quartz_form(parts)}"
            )
        if len(parts) not in (6, 7):
            raise CronError(
                f"{expression!r}: expected 6 or 7 fields (sec min hour day month weekday [year])"
            )
        parts += ["*"] * (7 - len(parts))
        fields = [_parse_field(text, *spec) for text, spec in zip(parts, _FIELDS, strict=True)]
        return cls(expression, *fields)

    def _day_matches(self, moment: datetime) -> bool:
        quartz_weekday = (moment.isoweekday() % 7) + 1  # Monday=1 in ISO -> 2 in Quartz
        by_month = self.days_of_month is None or moment.day in self.days_of_month
        by_week = self.days_of_week is None or quartz_weekday in self.days_of_week
        return by_month and by_week

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after `moment` (UTC), or None if there is none."""
        t = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        for _ in range(200_000):
            if t.year > 2199:
                return None
            if self.years is not None and t.year not in self.years:
                t = datetime(t.year + 1, 1, 1, tzinfo=UTC)
            elif self.months is not None and t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(
                    day=1
                )
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif self.hours is not None and t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif self.minutes is not None and t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif self.seconds is not None and t.second not in self.seconds:
                t = t + timedelta(seconds=1)
            else:
                return t
        return None

    def latest_due(self, since: datetime, now: datetime) -> datetime | None:
        """The newest fire time in (since, now], so missed slots run once, not once each."""
        slot = self.next_after(since)
        if slot is None or slot > now:
            return None
        for _ in range(100_000):
            following = self.next_after(slot)
            if following is None or following > now:
                return slot
            slot = following
        return slot
