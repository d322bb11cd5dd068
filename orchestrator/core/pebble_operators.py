"""Pebble operators Jinja lacks (`~`, `..`, `contains`, `isIn`) and what a `{% for %}` walks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import Any

from orchestrator.core.errors import ExpressionError
from orchestrator.core.pebble_runtime import check_size, reject_undefined, tick
from orchestrator.core.pebble_values import Entry, LazyRange, format_value


def concat(left: Any, right: Any) -> str:
    """Pebble's `~`: string forms joined, null as ""."""
    tick()
    left_text, right_text = format_value(left), format_value(right)
    check_size(len(left_text) + len(right_text))
    return left_text + right_text


def inclusive_range(start: Any, end: Any, step: Any = 1) -> LazyRange:
    """Pebble's `a..b` and `range(a, b, step)`: both ends included."""
    tick()
    reject_undefined(start, end, step)
    for bound in (start, end, step):
        if not isinstance(bound, int) or isinstance(bound, bool):
            raise ExpressionError(f"range bounds must be integers, got {format_value(bound)!r}")
    return LazyRange(start, end, step)


def contains(left: Any, right: Any) -> bool:
    """Pebble's `contains`: list membership (all of a list), map key, or substring."""
    tick()
    reject_undefined(left, right)
    if left is None:
        return False
    wanted = list(right) if isinstance(right, list | tuple) else [right]
    if isinstance(left, str):
        return all(format_value(item) in left for item in wanted)
    if isinstance(left, Mapping | list | tuple | set | frozenset | LazyRange):
        return all(item in left for item in wanted)
    raise ExpressionError(f"`contains` needs a list, map or string on its left, got {type(left).__name__}")


def is_in(left: Any, right: Any) -> bool:
    """Kestra's `isIn`: the left value's string form equals an element (or a map key or value) of the right."""
    tick()
    reject_undefined(left, right)
    if left is None or right is None:
        return False
    wanted = format_value(left)
    if isinstance(right, Mapping):
        return any(format_value(k) == wanted or format_value(v) == wanted for k, v in right.items())
    if isinstance(right, list | tuple | set | frozenset | LazyRange):
        return any(format_value(item) == wanted for item in right)
    return False


class _TickingIterable(Iterable[Any]):
    """Checks the deadline on every step, so even an empty loop body cannot outrun it."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items if isinstance(items, Sized) else list(items)

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            tick()
            yield item

    def __len__(self) -> int:
        assert isinstance(self._items, Sized)
        return len(self._items)


def iterate(value: Any) -> Iterable[Any]:
    """What a Pebble `{% for %}` walks: list items, map entries (`.key`/`.value`), nothing for null."""
    tick()
    reject_undefined(value)
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return _TickingIterable([Entry(k, v) for k, v in value.items()])
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ExpressionError(f"`for` needs a list or a map, got {type(value).__name__} {format_value(value)!r}")
    return _TickingIterable(value)
