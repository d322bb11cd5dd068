"""The properties each core condition type declares, so a misspelt one is refused at deploy as on tasks.

Taken from Kestra's `io.kestra.plugin.core.condition` classes (their fields, plus `type`). A condition
type not listed here (a plugin's) is left alone: only properties that are definitely unknown are refused.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

__all__ = ["condition_problems"]

_PROPERTIES: dict[str, tuple[str, ...]] = {
    "DateTimeBetween": ("date", "after", "before"),
    "DayWeek": ("date", "dayOfWeek"),
    "DayWeekInMonth": ("date", "dayOfWeek", "dayInMonth"),
    "ExecutionFlow": ("namespace", "flowId"),
    "ExecutionLabels": ("labels",),
    "ExecutionNamespace": ("namespace", "comparison", "prefix"),
    "ExecutionOutputs": ("expression",),
    "ExecutionStatus": ("in", "notIn"),
    "Expression": ("expression",),
    "Flow": ("namespace", "flowId"),
    "FlowNamespace": ("namespace", "prefix"),
    "HasRetryAttempt": ("in", "notIn"),
    "Multiple": ("id", "timeWindow", "resetOnSuccess", "window", "windowAdvance", "conditions"),
    "Not": ("conditions",),
    "Or": ("conditions",),
    "PublicHoliday": ("date", "country", "subDivision"),
    "TimeBetween": ("date", "after", "before"),
    "Weekend": ("date",),
}
_PACKAGES = ("io.kestra.plugin.core.condition.", "io.kestra.core.models.conditions.types.")


def _short_name(type_name: object) -> str | None:
    """The condition's class name without its `Condition` suffix, when it is a core condition."""
    if not isinstance(type_name, str) or not type_name.startswith(_PACKAGES):
        return None
    return type_name.rsplit(".", 1)[-1].removesuffix("Condition") or None


def condition_problems(conditions: Any, path: str) -> Iterator[tuple[str, str, str | None]]:
    """(path, message, suggestion) for each unknown property of a core condition, nested ones included."""
    entries = conditions.items() if isinstance(conditions, dict) else enumerate(conditions or [])
    for key, condition in entries:
        where = f"{path}.{key}" if isinstance(conditions, dict) else f"{path}[{key}]"
        if not isinstance(condition, dict):
            continue
        name = _short_name(condition.get("type"))
        known = _PROPERTIES.get(name or "")
        if known is None:
            continue
        allowed = ("type", *known)
        for prop in condition:
            if prop not in allowed:
                hint = difflib.get_close_matches(str(prop), allowed, n=1)
                message = f"unknown property '{prop}' on a {name} condition"
                yield f"{where}.{prop}", message, hint[0] if hint else None
        if isinstance(condition.get("conditions"), dict | list):
            yield from condition_problems(condition["conditions"], f"{where}.conditions")
