"""Template values and Pebble's output form: lazy ranges, map entries, JSON conversion, printing and truthiness."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, overload

from jinja2 import Undefined

from orchestrator.core.errors import ExpressionError, ExpressionLimitExceeded
from orchestrator.core.pebble_runtime import check_size, fail_undefined, tick

#: Kestra's BoundedRangeFunction refuses ranges past this many elements, and so do we.
MAX_RANGE_SIZE = 1_000_000


class LazyRange(Sequence[int]):
    """Pebble's inclusive `range(a, b, step)` / `a..b`, computed on demand so a huge range costs nothing."""

    def __init__(self, start: int, end: int, step: int = 1) -> None:
        if step == 0:
            raise ExpressionError("range() step must not be 0")
        self._range = range(start, end + (1 if step > 0 else -1), step)
        if len(self._range) > MAX_RANGE_SIZE:
            raise ExpressionLimitExceeded(
                f"range() cannot produce more than {MAX_RANGE_SIZE} elements, but this call would produce "
                f"{len(self._range)}"
            )

    def __len__(self) -> int:
        return len(self._range)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        return list(self._range[index]) if isinstance(index, slice) else self._range[index]

    def __iter__(self) -> Iterator[int]:
        for count, value in enumerate(self._range):
            if count % 1024 == 0:
                tick()
            yield value

    def __repr__(self) -> str:
        return format_value(self)


@dataclass(frozen=True)
class Entry:
    """One key/value pair of a map being iterated: Pebble iterates maps as `entry.key` / `entry.value`."""

    key: Any
    value: Any

    def __str__(self) -> str:
        return f"{format_value(self.key)}={format_value(self.value)}"


def to_plain(value: Any, *, include_nulls: bool = True) -> Any:
    """Convert a template value into plain JSON-shaped data (dict/list/str/int/float/bool/None).

    The walk is bounded like the output: a list holding itself twice, doubled 20 times, is a million
    times larger to convert than to build (`{% set s = [s, s] %}`), so every item and character counts.
    """
    return _PlainWalk(include_nulls).convert(value)


class _PlainWalk:
    _EVERY = 4096  #: items or characters between two checks of the deadline and the size

    def __init__(self, include_nulls: bool) -> None:
        self.include_nulls = include_nulls
        self.size = 0
        self.next_check = self._EVERY

    def _count(self, size: int) -> None:
        self.size += size
        if self.size >= self.next_check:
            tick()
            check_size(self.size)
            self.next_check = self.size + self._EVERY

    def convert(self, value: Any, include_nulls: bool | None = None) -> Any:
        nulls = self.include_nulls if include_nulls is None else include_nulls
        self._count(len(value) if isinstance(value, str) else 1)
        if isinstance(value, Undefined):
            fail_undefined(value)
        if isinstance(value, str) and type(value) is not str:
            return str.__str__(value)  # a marked string (authored.Authored) leaves the render as plain text
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, Mapping):
            return {str(k): self.convert(v) for k, v in value.items() if nulls or v is not None}
        if isinstance(value, Entry):
            return {"key": self.convert(value.key, True), "value": self.convert(value.value)}
        if isinstance(value, list | tuple | set | frozenset | LazyRange):
            return [self.convert(v) for v in value]
        if isinstance(value, datetime):
            return _iso(value)
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        return str(value)


def deep_size(value: Any) -> int:
    """Items and characters in a value, nested ones included; stops (raising) once past the output limit."""
    walk = _PlainWalk(include_nulls=True)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping | list | tuple | LazyRange) and len(item):
            # A container counts as what it holds (so `[1] * n` is n items); an empty one as one item.
            if isinstance(item, LazyRange):
                walk._count(len(item))
            else:
                stack.extend(item.values() if isinstance(item, Mapping) else item)
        else:
            walk._count(len(item) if isinstance(item, str) else 1)
    return walk.size


def to_json(value: Any, *, include_nulls: bool = False) -> str:
    """Compact JSON as Kestra's Jackson mapper writes it: no spaces, non-ASCII kept, null map entries dropped."""
    return json.dumps(to_plain(value, include_nulls=include_nulls), separators=(",", ":"), ensure_ascii=False)


def format_value(value: Any) -> str:
    """Pebble/Kestra output form of a value: null as "", booleans lower-case, maps and lists as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Undefined):
        fail_undefined(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return ("-" if value < 0 else "") + "Infinity" if math.isinf(value) else repr(value)
    if isinstance(value, Mapping | list | tuple | LazyRange):
        return to_json(value)
    if isinstance(value, datetime):
        return _iso(value)
    return str(value)


def truthy(value: Any) -> bool:
    """Pebble-compatible truthiness of a condition: "false"/"0"/"" strings, 0, null and empties are false."""
    if isinstance(value, Undefined):
        fail_undefined(value)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "-0")
    if isinstance(value, Sequence | Mapping):
        return len(value) > 0
    return True


def _iso(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
