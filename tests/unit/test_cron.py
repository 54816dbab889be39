"""Quartz cron: seconds field, `?`, day-of-week 1=SUN..7=SAT, missed slots run once."""

from datetime import UTC, datetime

import pytest

from elastic_ingest.connectors.cron import CronError, QuartzCron

SATURDAY_0830 = datetime(2026, 11, 28, 8, 30, 15, tzinfo=UTC)  # 2026-11-28 is a Saturday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 * * * ?", datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),  # hourly
        ("0 0 0 * * ?", datetime(2026, 11, 29, 0, 0, tzinfo=UTC)),  # daily
        ("0 30 2 ? * MON", datetime(2026, 11, 30, 2, 30, tzinfo=UTC)),  # weekly, by name
        ("0 30 2 ? * 2", datetime(2026, 11, 30, 2, 30, tzinfo=UTC)),  # 2 = Monday in Quartz
        ("0 0 12 ? * 1", datetime(2026, 11, 29, 12, 0, tzinfo=UTC)),  # 1 = Sunday
        ("0 0 0 1 1 ?", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),  # yearly
        ("0 0 0 1 1 ? 2030", datetime(2030, 1, 1, 0, 0, tzinfo=UTC)),  # year field
        ("30 */15 * * * ?", datetime(2026, 11, 28, 8, 30, 30, tzinfo=UTC)),  # steps + seconds
        ("0 */15 * * * ?", datetime(2026, 11, 28, 8, 45, tzinfo=UTC)),
        ("0 0 9-17 ? * MON-FRI", datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),
    ],
)
def test_next_fire_time(expression, expected):
    assert QuartzCron.parse(expression).next_after(SATURDAY_0830) == expected


def test_missed_slots_collapse_into_the_newest_one():
    hourly = QuartzCron.parse("0 0 * * * ?")
    since = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert hourly.latest_due(since, SATURDAY_0830) == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    assert hourly.latest_due(datetime(2026, 11, 28, 8, 0, tzinfo=UTC), SATURDAY_0830) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "expected 6 or 7 fields"),
        ("0 61 * * * ?", "minutes: 61 is outside 0-59"),
        ("0 0 0 L * ?", "not supported"),
        ("0 0 0 ? * 8", "day-of-week: 8 is outside 1-7"),
        ("0 0 0 ? * FUNDAY", "day-of-week"),
    ],
)
def test_invalid_expressions_name_the_field(expression, message):
    with pytest.raises(CronError, match=message):
        QuartzCron.parse(expression)


@pytest.mark.parametrize(
    ("unix", "quartz"),
    [
        ("*/5 * * * *", "'0 */5 * * * ?'"),
        ("30 2 * * 1-5", "'0 30 2 ? * 2-6'"),  # Unix 1=MON is Quartz 2
        ("0 0 1 * *", "'0 0 0 1 * ?'"),
        ("0 12 * * 0", "'0 0 12 ? * 1'"),  # Sunday
        ("0 12 * * */2", "'0 0 12 ? * */2'"),  # a step stays a step
    ],
)
def test_a_unix_cron_is_refused_with_its_quartz_form(unix, quartz):
    with pytest.raises(CronError) as refused:
        QuartzCron.parse(unix)
    assert "Unix cron (5 fields)" in str(refused.value) and str(refused.value).endswith(quartz)
    QuartzCron.parse(quartz.strip("'"))  # and the hint itself is valid Quartz
