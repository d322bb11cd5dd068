"""Cron slots of Schedule triggers: fields, nicknames, seconds, time zones, ranges and variables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.errors import FlowInvalid
from orchestrator.triggers.schedules import (
    NEVER,
    late_maximum_delay,
    parse_cron,
    parse_schedule,
    trigger_variables,
    utc,
)

T0 = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)


def test_a_five_field_cron_gives_the_next_minute_slot() -> None:
    assert parse_cron({"cron": "*/15 * * * *"}).after(T0) == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)


def test_a_six_field_cron_counts_seconds_first() -> None:
    cron = parse_cron({"cron": "*/10 * * * * *"})
    assert cron.with_seconds
    assert cron.after(T0) == datetime(2026, 1, 1, 0, 0, 40, tzinfo=UTC)


@pytest.mark.parametrize(
    ("nickname", "expected"),
    [
        ("@hourly", datetime(2026, 1, 1, 1, tzinfo=UTC)),
        ("@daily", datetime(2026, 1, 2, tzinfo=UTC)),
        ("@midnight", datetime(2026, 1, 2, tzinfo=UTC)),
        ("@monthly", datetime(2026, 2, 1, tzinfo=UTC)),
        ("@yearly", datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_nicknames_are_understood(nickname: str, expected: datetime) -> None:
    assert parse_cron({"cron": nickname}).after(T0) == expected


def test_slots_follow_the_trigger_time_zone() -> None:
    cron = parse_cron({"cron": "0 9 * * *", "timezone": "Europe/Paris"})
    assert utc(cron.after(T0)) == datetime(2026, 1, 1, 8, tzinfo=UTC)  # winter: UTC+1
    assert utc(cron.after(datetime(2026, 7, 1, tzinfo=UTC))) == datetime(2026, 7, 1, 7, tzinfo=UTC)  # summer: UTC+2


def test_slots_of_a_range_include_both_ends() -> None:
    cron = parse_cron({"cron": "@hourly"})
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 23, tzinfo=UTC)
    slots = list(cron.slots(start, end))
    assert len(slots) == 24
    assert slots[0] == start and slots[-1] == end


def test_before_gives_the_previous_slot() -> None:
    assert parse_cron({"cron": "@hourly"}).before(T0) == datetime(2026, 1, 1, tzinfo=UTC)


def test_trigger_variables_name_the_slot_and_its_neighbours() -> None:
    cron = parse_cron({"cron": "@hourly"})
    variables = trigger_variables(cron, datetime(2026, 1, 1, 5, tzinfo=UTC))
    assert variables == {
        "date": "2026-01-01T05:00:00+00:00",
        "next": "2026-01-01T06:00:00+00:00",
        "previous": "2026-01-01T04:00:00+00:00",
    }


def test_an_invalid_cron_expression_is_refused() -> None:
    with pytest.raises(FlowInvalid, match="invalid cron expression '61 \\* \\* \\* \\*'"):
        parse_cron({"cron": "61 * * * *"})


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(FlowInvalid, match="unknown time zone 'Mars/Olympus'"):
        parse_cron({"cron": "@hourly", "timezone": "Mars/Olympus"})


def test_late_maximum_delay_is_an_iso_duration() -> None:
    assert late_maximum_delay({"lateMaximumDelay": "PT30M"}) == timedelta(minutes=30)
    assert late_maximum_delay({}) is None


def test_schedule_on_dates_walks_its_list_in_order() -> None:
    dates = parse_schedule(
        "ScheduleOnDates", {"dates": ["2026-01-02T09:00:00+00:00", "2026-01-01T09:00:00"], "timezone": "Europe/Paris"}
    )
    first = dates.after(T0)
    assert utc(first) == datetime(2026, 1, 1, 8, tzinfo=UTC)  # a date without an offset is in the trigger's zone
    assert utc(dates.after(first)) == datetime(2026, 1, 2, 9, tzinfo=UTC)
    assert dates.after(datetime(2026, 2, 1, tzinfo=UTC)) == NEVER


def test_schedule_on_dates_refuses_a_date_that_does_not_parse() -> None:
    with pytest.raises(FlowInvalid, match="invalid date in ScheduleOnDates"):
        parse_schedule("ScheduleOnDates", {"dates": ["tomorrow"]})
