"""Schedule trigger conditions on a slot's local date: days, weekends, ranges, times, Not and Or."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.core.schedule_conditions import schedule_conditions_hold

MONDAY = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
SATURDAY = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
LAST_FRIDAY = datetime(2026, 1, 30, 9, 30, tzinfo=UTC)


def c(kind: str, **properties: Any) -> dict[str, Any]:
    return {"type": f"io.kestra.plugin.core.condition.{kind}", **properties}


def test_no_conditions_always_hold() -> None:
    assert schedule_conditions_hold([], MONDAY)


@pytest.mark.parametrize(("slot", "expected"), [(MONDAY, True), (SATURDAY, False)])
def test_day_week_matches_one_weekday(slot: datetime, expected: bool) -> None:
    assert schedule_conditions_hold([c("DayWeek", dayOfWeek="MONDAY")], slot) is expected


def test_weekend_holds_on_saturday_and_sunday_only() -> None:
    assert schedule_conditions_hold([c("Weekend")], SATURDAY)
    assert not schedule_conditions_hold([c("Weekend")], MONDAY)


def test_not_weekend_means_weekdays() -> None:
    weekdays = c("Not", conditions=[c("Weekend")])
    assert schedule_conditions_hold([weekdays], MONDAY) and not schedule_conditions_hold([weekdays], SATURDAY)


def test_or_holds_when_any_nested_condition_does() -> None:
    either = c("Or", conditions=[c("DayWeek", dayOfWeek="MONDAY"), c("Weekend")])
    assert schedule_conditions_hold([either], MONDAY) and schedule_conditions_hold([either], SATURDAY)
    assert not schedule_conditions_hold([either], LAST_FRIDAY)


@pytest.mark.parametrize(
    ("which", "slot", "expected"),
    [("FIRST", MONDAY, True), ("SECOND", MONDAY, False), ("LAST", LAST_FRIDAY, True), ("FIRST", LAST_FRIDAY, False)],
)
def test_day_week_in_month_counts_weeks(which: str, slot: datetime, expected: bool) -> None:
    condition = c("DayWeekInMonth", dayOfWeek=slot.strftime("%A").upper(), dayInMonth=which)
    assert schedule_conditions_hold([condition], slot) is expected


def test_date_time_between_bounds_the_slot() -> None:
    january = c("DateTimeBetween", after="2026-01-01T00:00:00Z", before="2026-01-07T00:00:00Z")
    assert schedule_conditions_hold([january], MONDAY) and not schedule_conditions_hold([january], SATURDAY)


def test_time_between_bounds_the_time_of_day() -> None:
    morning = c("TimeBetween", after="08:00:00", before="10:00:00")
    assert schedule_conditions_hold([morning], MONDAY)
    assert not schedule_conditions_hold([morning], MONDAY.replace(hour=11))


def test_unknown_or_unparsable_conditions_never_hold() -> None:
    assert not schedule_conditions_hold([c("NotAKestraCondition")], MONDAY)
    assert not schedule_conditions_hold([c("PublicHoliday", country="ZZ")], MONDAY)  # no such calendar
    assert not schedule_conditions_hold([c("DateTimeBetween", after="not a date")], MONDAY)


def test_an_expression_holds_unless_it_renders_blank_or_false() -> None:
    assert schedule_conditions_hold([c("Expression", expression="{{ trigger.date is defined }}")], MONDAY)
    assert not schedule_conditions_hold([c("Expression", expression="{{ 1 == 2 }}")], MONDAY)
    assert not schedule_conditions_hold([c("ExpressionCondition", expression="  ")], MONDAY)


def test_an_expression_renders_against_the_given_variables() -> None:
    webhook = {"trigger": {"body": {"hello": "world"}}}
    holds = [c("ExpressionCondition", expression="{{ trigger.body.hello == 'world' }}")]

    assert schedule_conditions_hold(holds, MONDAY, webhook)
    assert not schedule_conditions_hold(holds, MONDAY, {"trigger": {"body": {"hello": "webhook"}}})


def test_an_expression_that_fails_to_render_does_not_hold() -> None:
    assert not schedule_conditions_hold([c("Expression", expression="{{ trigger.nope.deeper }}")], MONDAY)


# Kestra's PublicHolidayTest: valid() and invalid(), case by case.
@pytest.mark.parametrize(
    ("properties", "holds"),
    [
        ({"date": "2023-01-01"}, True),  # no country: the default locale's (en_US)
        ({"date": "2023-07-14", "country": "FR"}, True),
        ({"date": "2023-03-08", "country": "DE", "subDivision": "BE"}, True),  # Berlin's Women's Day
        ({"date": "2023-01-02", "country": "FR"}, False),
        ({"date": "2023-03-08", "country": "DE"}, False),  # not a holiday in Germany as a whole
    ],
)
def test_public_holiday_reads_the_country_and_subdivision_calendars(properties: dict[str, Any], holds: bool) -> None:
    assert schedule_conditions_hold([c("PublicHoliday", **properties)], MONDAY) is holds


def test_public_holiday_defaults_to_the_trigger_date() -> None:
    bastille_day = datetime(2026, 7, 14, 6, 0, tzinfo=UTC)
    assert schedule_conditions_hold([c("PublicHoliday", country="FR")], bastille_day)
    assert not schedule_conditions_hold([c("PublicHoliday", country="FR")], MONDAY)
