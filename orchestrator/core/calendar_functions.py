"""Kestra 2's calendar functions for trigger `when` expressions: dayOfWeek, isWeekend, hourOfDay, ...

From the 2.0 migration guide (trigger-conditions-redesign). Each takes a date as a datetime or an ISO
text (what `trigger.date` renders to) and reads it in its own offset, as Kestra's ZonedDateTime does.
`isPublicHoliday` needs a holiday calendar Chorus does not ship: it is left undefined, so a flow using it
fails with "unknown function" rather than firing on the wrong days.
"""

from __future__ import annotations

import calendar
from datetime import datetime
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


FUNCTIONS: dict[str, Any] = {
    "dayOfWeek": day_of_week,
    "isWeekend": lambda value: _date(value).weekday() >= 5,
    "hourOfDay": lambda value: _date(value).hour,
    "dayOfMonth": lambda value: _date(value).day,
    "monthOfYear": lambda value: _date(value).month,
    "isDayWeekInMonth": is_day_week_in_month,
    "isLastWorkingDay": is_last_working_day,
}
