"""Schedule (and Webhook) trigger conditions: does a slot (the trigger's local date) fire, or is it skipped.

Kestra's `DayWeek`, `DayWeekInMonth`, `Weekend`, `DateTimeBetween`, `TimeBetween`, `Not`, `Or` and
`Expression`, evaluated on the slot's date in the trigger's time zone (a webhook's slot is its call), and
`PublicHoliday` on its rendered `date` (by default `{{ trigger.date }}`). All conditions must hold. A
condition type this module does not know never holds, so a trigger never fires on a rule Chorus cannot check.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from datetime import datetime, time
from typing import Any

from orchestrator.core.calendar_functions import is_public_holiday
from orchestrator.core.errors import ChorusError
from orchestrator.core.expressions import render

__all__ = ["expression_holds", "schedule_conditions_hold"]

_DAYS = {
    name: i for i, name in enumerate(("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"))
}
_ORDINALS = {"FIRST": 0, "SECOND": 1, "THIRD": 2, "FOURTH": 3}


def schedule_conditions_hold(
    conditions: Sequence[Any], slot: datetime, variables: Mapping[str, Any] | None = None
) -> bool:
    """Whether every condition accepts the slot (an aware datetime in the trigger's zone).

    `Expression` conditions render against `variables` (by default `trigger.date`, the slot).
    """
    seen = variables if variables is not None else {"trigger": {"date": slot.isoformat()}}
    try:
        return all(isinstance(c, Mapping) and _holds(c, slot, seen) for c in conditions)
    except (ValueError, ChorusError):  # a date, time or expression that does not evaluate: the rule fails
        return False


def expression_holds(expression: Any, variables: Mapping[str, Any]) -> bool:
    """Kestra's Expression condition: true unless the rendered text is blank or `false`."""
    rendered = render(str(expression), variables)
    return bool(rendered.strip()) and rendered.strip() != "false"


def _holds(condition: Mapping[str, Any], slot: datetime, variables: Mapping[str, Any]) -> bool:
    kind = str(condition.get("type", "")).rsplit(".", 1)[-1].removesuffix("Condition")
    if kind in ("Expression", "Variable"):
        return expression_holds(condition.get("expression"), variables)
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
    if kind == "PublicHoliday":
        return _public_holiday(condition, variables)
    if kind == "Not":
        nested = condition.get("conditions") or []
        return isinstance(nested, list) and not any(
            isinstance(c, Mapping) and _holds(c, slot, variables) for c in nested
        )
    if kind == "Or":
        nested = condition.get("conditions") or []
        return isinstance(nested, list) and any(isinstance(c, Mapping) and _holds(c, slot, variables) for c in nested)
    return False


#: Kestra's PublicHoliday without `country` uses the JVM's default locale, en_US in Kestra's images.
_DEFAULT_COUNTRY = "US"


def _public_holiday(condition: Mapping[str, Any], variables: Mapping[str, Any]) -> bool:
    def rendered(key: str) -> str | None:
        value = condition.get(key)
        return None if value is None else render(str(value), variables)

    when = render(str(condition.get("date") or "{{ trigger.date }}"), variables)
    return is_public_holiday(when, rendered("country") or _DEFAULT_COUNTRY, rendered("subDivision"))


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
