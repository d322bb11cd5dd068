"""Kestra 2's calendar functions for trigger `when` expressions, read in the date's own offset."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import render

MONDAY_9 = "2026-12-07T09:30:00+01:00"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ dayOfWeek(d) }}", "MONDAY"),
        ("{{ isWeekend(d) }}", "false"),
        ("{{ isWeekend('2026-12-06T23:59:00Z') }}", "true"),
        ("{{ hourOfDay(d) }}", "9"),  # the date's own offset, not UTC (08:30)
        ("{{ dayOfMonth(d) }}", "7"),
        ("{{ monthOfYear(d) }}", "12"),
        ("{{ isDayWeekInMonth(d, 'MONDAY', 'FIRST') }}", "true"),
        ("{{ isDayWeekInMonth(d, 'MONDAY', 'SECOND') }}", "false"),
        ("{{ isDayWeekInMonth('2026-12-28T00:00:00Z', 'MONDAY', 'LAST') }}", "true"),
        ("{{ isLastWorkingDay('2026-12-31T00:00:00Z') }}", "true"),
        ("{{ isLastWorkingDay('2026-01-30T00:00:00Z') }}", "true"),  # a Friday; the 31st is a Saturday
        ("{{ isLastWorkingDay('2026-01-31T00:00:00Z') }}", "false"),
        ("{{ isLastWorkingDay('2026-01-31T00:00:00Z', ['SATURDAY']) }}", "true"),
    ],
)
def test_calendar_functions_read_the_date_as_kestra_does(template: str, expected: str) -> None:
    assert render(template, {"d": MONDAY_9}) == expected


def test_a_value_that_is_no_date_fails_the_expression() -> None:
    with pytest.raises(ExpressionError):
        render("{{ dayOfWeek('tomorrow') }}", {})


def test_an_unknown_position_fails_the_expression() -> None:
    with pytest.raises(ExpressionError):
        render("{{ isDayWeekInMonth(d, 'MONDAY', 'FIFTH') }}", {"d": MONDAY_9})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ isPublicHoliday('2023-07-14', 'FR') }}", "true"),
        ("{{ isPublicHoliday(date='2023-01-02', countryCode='FR') }}", "false"),  # Kestra's argument names
        ("{{ isPublicHoliday('2023-03-08T10:00:00+01:00', 'DE', 'BE') }}", "true"),  # a date-time: its date
        ("{{ isPublicHoliday('2023-03-08', 'DE') }}", "false"),
        ("{{ isPublicHoliday('2023-03-08', 'DE', '') }}", "false"),  # a blank subdivision: the country only
        ("{{ isPublicHoliday(d, 'fr') }}", "false"),
    ],
)
def test_is_public_holiday_reads_the_calendar_of_the_country_and_subdivision(template: str, expected: str) -> None:
    assert render(template, {"d": MONDAY_9}) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ isPublicHoliday('2023-07-14') }}", "expects a 'countryCode' argument"),
        ("{{ isPublicHoliday(countryCode='FR') }}", "expects a 'date' argument"),
        ("{{ isPublicHoliday('not a date', 'FR') }}", "could not parse 'date'"),
        ("{{ isPublicHoliday('2023-07-14', 'ZZ') }}", "no holiday calendar for ZZ"),
    ],
)
def test_is_public_holiday_refuses_missing_or_unknown_arguments(template: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        render(template, {})
