"""Schedule trigger conditions: does a slot (the trigger's local date) fire, or is it skipped.

Kestra's `DayWeek`, `DayWeekInMonth`, `Weekend`, `DateTimeBetween`, `TimeBetween`, `Not` and `Or`,
evaluated on the slot's date in the trigger's time zone. All conditions must hold. A condition type
this module does not know never holds, so a schedule never fires on a rule Chorus cannot check.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from datetime import datetime, time
from typing import Any

__all__ = ["schedule_conditions_hold"]

_DAYS = {
    name: i for i, name in enumerate(("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"))
}
_ORDINALS = {"FIRST": 0, "SECOND": 1, "THIRD": 2, "FOURTH": 3}


def schedule_conditions_hold(conditions: Sequence[Any], slot: datetime) -> bool:
    """Whether every condition accepts the slot (an aware datetime in the trigger's zone)."""
    try:
        return all(isinstance(c, Mapping) and _holds(c, slot) for c in conditions)
    except ValueError:  # a date or time that does not parse: the rule cannot be checked
        return False


def _holds(condition: Mapping[str, Any], slot: datetime) -> bool:
    kind = str(condition.get("type", "")).rsplit(".", 1)[-1].removesuffix("Condition")
    if kind == "DayWeek":
        return slot.weekday() == _DAYS.get(str(condition.get("dayOfWeek", "")).upper(), -1)
    if kind == "Weekend":
        return slot.weekday() >= 5
    if kind == "DayWeekInMonth":
        return _day_week_in_month(condition, slot)
    if kind == "DateTimeBetween":
        after, before = _moment(condition.get("after"), slot), _moment(condition.get("before"), slot)
        return (after is None or slot >= after) and (before is None or slot <= before)
    if kind == "TimeBetween":
        start, end = _time(condition.get("after")), _time(condition.get("before"))
        local = slot.timetz().replace(tzinfo=None)
        return (start is None or local >= start) and (end is None or local <= end)
    if kind == "Not":
        nested = condition.get("conditions") or []
        return isinstance(nested, list) and not any(isinstance(c, Mapping) and _holds(c, slot) for c in nested)
    if kind == "Or":
        nested = condition.get("conditions") or []
        return isinstance(nested, list) and any(isinstance(c, Mapping) and _holds(c, slot) for c in nested)
    return False


def _day_week_in_month(condition: Mapping[str, Any], slot: datetime) -> bool:
    weekday = _DAYS.get(str(condition.get("dayOfWeek", "")).upper(), -1)
    if slot.weekday() != weekday:
        return False
    which = str(condition.get("dayInMonth", "")).upper()
    if which == "LAST":
        return slot.day + 7 > calendar.monthrange(slot.year, slot.month)[1]
    return which in _ORDINALS and (slot.day - 1) // 7 == _ORDINALS[which]


def _moment(value: Any, slot: datetime) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=slot.tzinfo)


def _time(value: Any) -> time | None:
    return None if value is None else time.fromisoformat(str(value)).replace(tzinfo=None)
