"""Kestra 2's calendar functions for trigger `when` expressions: dayOfWeek, isWeekend, hourOfDay, ...

From the 2.0 migration guide (trigger-conditions-redesign). Each takes a date as a datetime or an ISO
text (what `trigger.date` renders to) and reads it in its own offset, as Kestra's ZonedDateTime does.
`isPublicHoliday` reads the `holidays` package's calendars where Kestra reads Jollyday's: both follow the
official calendars of each country (ISO 3166-1) and subdivision (ISO 3166-2).
"""

from __future__ import annotations

import calendar
from datetime import date, datetime
from typing import Any

from orchestrator.core.errors import ExpressionError
from orchestrator.core.pebble_values import format_value

_DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
_POSITIONS = {"FIRST": 0, "SECOND": 1, "THIRD": 2, "FOURTH": 3}


def _date(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(format_value(value).replace("Z", "+00:00"))
    except ValueError as e:
        raise ExpressionError(f"expected a date, got {format_value(value)!r}") from e


def day_of_week(value: Any) -> str:
    return _DAYS[_date(value).weekday()]


def is_day_week_in_month(value: Any, day_of_week_name: Any, position: Any) -> bool:
    date = _date(value)
    if _DAYS[date.weekday()] != str(day_of_week_name).upper():
        return False
    which = str(position).upper()
    if which == "LAST":
        return date.day + 7 > calendar.monthrange(date.year, date.month)[1]
    if which not in _POSITIONS:
        raise ExpressionError(f"position must be FIRST, SECOND, THIRD, FOURTH or LAST, got {which!r}")
    return (date.day - 1) // 7 == _POSITIONS[which]


def is_last_working_day(value: Any, working_days: Any = None) -> bool:
    date = _date(value)
    days = {str(d).upper() for d in working_days} if isinstance(working_days, list) else set(_DAYS[:5])
    last = calendar.monthrange(date.year, date.month)[1]
    later = [d for d in range(date.day + 1, last + 1) if _DAYS[date.replace(day=d).weekday()] in days]
    return _DAYS[date.weekday()] in days and not later


def _local_date(value: Any) -> date:
    # Kestra's DateUtils.parseLocalDate: an ISO date, or the date part of an ISO date-time in its own offset.
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = format_value(value).strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        return _date(text).date()


def is_public_holiday(date: Any = None, countryCode: Any = None, subDivision: Any = None) -> bool:
    """Kestra's `isPublicHoliday(date, countryCode, subDivision?)`: whether `date` is a public holiday there.

    The argument names are Kestra's, so `isPublicHoliday(date=..., countryCode='FR')` works as in Kestra.
    """
    if date is None:
        raise ExpressionError("The 'isPublicHoliday()' function expects a 'date' argument.")
    if countryCode is None or not str(countryCode).strip():
        raise ExpressionError("The 'isPublicHoliday()' function expects a 'countryCode' argument.")
    try:
        day = _local_date(date)
    except ExpressionError as e:
        raise ExpressionError(f"The 'isPublicHoliday()' function could not parse 'date': {e.message}") from e
    # Imported here: the calendars are pure data, but loading them costs ~100 ms that most renders never need.
    import holidays

    country = str(countryCode).strip().upper()
    region = str(subDivision).strip() if subDivision is not None and str(subDivision).strip() else None
    try:
        calendar_of = holidays.country_holidays(country, subdiv=region, years=day.year)
    except NotImplementedError as e:  # the package's way of saying it has no such country or subdivision
        raise ExpressionError(
            f"isPublicHoliday: no holiday calendar for {country}{'-' + region if region else ''}"
        ) from e
    return day in calendar_of


FUNCTIONS: dict[str, Any] = {
    "dayOfWeek": day_of_week,
    "isWeekend": lambda value: _date(value).weekday() >= 5,
    "hourOfDay": lambda value: _date(value).hour,
    "dayOfMonth": lambda value: _date(value).day,
    "monthOfYear": lambda value: _date(value).month,
    "isDayWeekInMonth": is_day_week_in_month,
    "isLastWorkingDay": is_last_working_day,
    "isPublicHoliday": is_public_holiday,
}
