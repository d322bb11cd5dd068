"""Kestra's list and map filters (first, last, keys, merge, join, sort...), `default`, and Pebble's tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jinja2 import Undefined

from orchestrator.core.errors import ExpressionError
from orchestrator.core.pebble_runtime import check_size, register
from orchestrator.core.pebble_values import LazyRange, format_value

FILTERS: dict[str, Callable[..., Any]] = {}
TESTS: dict[str, Callable[..., Any]] = {}


@register(FILTERS, "chunk")
def _chunk(value: Any, size: int) -> list[list[Any]]:
    items = list(value)
    if not isinstance(size, int) or size < 1:
        raise ExpressionError("chunk() needs a positive size")
    return [items[i : i + size] for i in range(0, len(items), size)]


def _default(value: Any, default: Any = None) -> Any:
    if isinstance(value, Undefined) or is_empty(value):
        return default
    return value


FILTERS["default"] = _default  # not guarded: its whole point is to accept an undefined value


@register(FILTERS, "distinct", "uniq")
def _distinct(value: Any) -> list[Any]:
    unique: list[Any] = []
    for item in value:
        if item not in unique:
            unique.append(item)
    return unique


@register(FILTERS, "first")
def _first(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = list(value.values())
    return next(iter(value), None)


@register(FILTERS, "last")
def _last(value: Any) -> Any:
    if value is None:
        return None
    items = list(value.values()) if isinstance(value, Mapping) else value
    return items[-1] if len(items) else None


@register(FILTERS, "flatten")
def _flatten(value: Any) -> list[Any]:
    if not isinstance(value, list | tuple | LazyRange):
        raise ExpressionError("flatten() can only be applied to lists")
    return [inner for item in value for inner in (item if isinstance(item, list | tuple) else [item])]


@register(FILTERS, "join")
def _join(value: Any, separator: Any = "") -> str | None:
    if value is None:
        return None
    sep = format_value(separator)
    parts: list[str] = []
    size = -len(sep)
    for item in value:
        parts.append(format_value(item))
        size += len(parts[-1]) + len(sep)
        if size > 0 and len(parts) % 1024 == 0:
            check_size(size)
    check_size(size)
    return sep.join(parts)


@register(FILTERS, "keys")
def _keys(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.keys())
    if isinstance(value, list | tuple | LazyRange):
        return list(range(len(value)))
    raise ExpressionError(f"keys() needs a map, got {type(value).__name__}")


@register(FILTERS, "values")
def _values(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    raise ExpressionError(f"values() needs a map, got {type(value).__name__}")


@register(FILTERS, "length")
def _length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str | Sequence | Mapping | set | frozenset):
        return len(value)
    return len(format_value(value))


@register(FILTERS, "merge")
def _merge(value: Any, items: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(items, Mapping):
        return {**value, **items}
    if isinstance(value, list | tuple | LazyRange):
        extra = list(items) if isinstance(items, list | tuple | LazyRange) else [items]
        check_size(len(value) + len(extra))
        return [*value, *extra]
    raise ExpressionError("merge() needs two maps, or a list and a list or value")


@register(FILTERS, "reverse")
def _reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    return list(reversed(list(value)))


@register(FILTERS, "slice")
def _slice(value: Any, fromIndex: int = 0, toIndex: int | None = None) -> Any:
    if isinstance(value, str):
        return value[fromIndex:toIndex]
    return list(value)[fromIndex:toIndex]


_SORTS: dict[str, Callable[..., Any]] = {"sort": sorted, "rsort": lambda value: sorted(value, reverse=True)}
for _name, _filter in _SORTS.items():
    register(FILTERS, _name)(_filter)


# -- Pebble's tests (`is empty`, `is even`, ...) ---------------------------------------------------------
def is_empty(value: Any) -> bool:
    """Pebble's `empty` test: null, a blank string, an empty list or an empty map."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Sequence | Mapping | set | frozenset):
        return len(value) == 0
    return False


def _is_json(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


for _name, _test in {
    "null": lambda v: v is None,
    "none": lambda v: v is None,
    "empty": is_empty,
    "even": lambda v: _is_integer(v) and v % 2 == 0,
    "odd": lambda v: _is_integer(v) and v % 2 == 1,
    "iterable": lambda v: isinstance(v, list | tuple | set | frozenset | LazyRange),
    "map": lambda v: isinstance(v, Mapping),
    "json": _is_json,
}.items():
    register(TESTS, _name)(_test)
