"""Kestra's Pebble filters, tests and functions, with Pebble's output formatting and the render-time guards.

Every callable a template can reach goes through `_guarded`: it checks the render deadline, refuses an
undefined argument (strict variables, as Kestra configures Pebble) and refuses a result larger than the
output limit. Callables that could build a large value in one step (join, replace, indent, ranges) check
the size they would produce before allocating it.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import functools
import hashlib
import json
import math
import random
import re
import time
import unicodedata
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from jinja2 import Undefined, pass_context
from jinja2.runtime import Context

from orchestrator.core import jq_sandbox, regex
from orchestrator.core.errors import ExpressionError, ExpressionLimitExceeded

if TYPE_CHECKING:
    from orchestrator.core.expressions import ExpressionFunctions

_F = TypeVar("_F", bound=Callable[..., Any])

#: Kestra's BoundedRangeFunction refuses ranges past this many elements, and so do we.
MAX_RANGE_SIZE = 1_000_000


# -- render state ---------------------------------------------------------------------------------------
@dataclass
class RenderState:
    """What the filters and functions of one render need: its deadline, output limit and I/O functions."""

    deadline: float  #: time.monotonic() value past which rendering stops
    max_output_chars: int
    max_recursion: int
    functions: ExpressionFunctions | None
    depth: int = 0  #: nesting of render() calls


CURRENT: ContextVar[RenderState | None] = ContextVar("chorus_render_state", default=None)


def tick() -> None:
    """Stop the current render once its deadline has passed."""
    state = CURRENT.get()
    if state is not None and time.monotonic() > state.deadline:
        raise ExpressionLimitExceeded("Expression took longer than its time limit to render")


def check_size(size: int) -> None:
    """Refuse a value (or output) of `size` characters or items once it passes the output limit."""
    state = CURRENT.get()
    if state is not None and size > state.max_output_chars:
        raise ExpressionLimitExceeded(
            f"Expression would produce {size} characters or items, over the limit of {state.max_output_chars}"
        )


def check_value_size(value: object) -> None:
    """Refuse a string, list or map longer than the output limit."""
    if isinstance(value, str | list | tuple | dict):
        check_size(len(value))


@contextlib.contextmanager
def _io_clock() -> Iterator[None]:
    """Give back to the render budget the time spent waiting on the caller's I/O (secrets, KV, logs)."""
    started = time.monotonic()
    try:
        yield
    finally:
        state = CURRENT.get()
        if state is not None:
            state.deadline += time.monotonic() - started


def reject_undefined(*values: object) -> None:
    """Raise the undefined-variable error of the first undefined value among `values`."""
    for value in values:
        if isinstance(value, Undefined):
            fail_undefined(value)


def fail_undefined(value: Undefined) -> NoReturn:
    value._fail_with_undefined_error()
    raise AssertionError("unreachable")  # pragma: no cover


def _guarded(function: _F) -> _F:
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        reject_undefined(*(a for a in args if not isinstance(a, Context)), *kwargs.values())
        result = function(*args, **kwargs)
        check_value_size(result)
        return result

    return guarded  # type: ignore[return-value]


FILTERS: dict[str, Callable[..., Any]] = {}
TESTS: dict[str, Callable[..., Any]] = {}
FUNCTIONS: dict[str, Callable[..., Any]] = {}


def _register(table: dict[str, Callable[..., Any]], *names: str) -> Callable[[_F], _F]:
    def register(function: _F) -> _F:
        guarded = _guarded(function)
        for name in names:
            table[name] = guarded
        return function

    return register


# -- values: lazy ranges, map entries, Pebble's output formatting ---------------------------------------
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


# -- operators Jinja lacks ------------------------------------------------------------------------------
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


# -- dates ----------------------------------------------------------------------------------------------
_NAMED_DATE_FORMATS = {
    "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "sql_seq": "yyyy-MM-dd HH:mm:ss",
    "iso_local_date": "yyyy-MM-dd",
    "iso_date": "yyyy-MM-ddXXX",
    "iso_local_time": "HH:mm:ss.SSSSSS",
    "iso_time": "HH:mm:ss.SSSSSSXXX",
    "iso_offset_time": "HH:mm:ss.SSSSSSXXX",
    "iso_local_date_time": "yyyy-MM-dd'T'HH:mm:ss.SSSSSS",
    "iso_date_time": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_offset_date_time": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_zoned_date_time": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX'['VV']'",
    "iso_instant": "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'",
    "iso_ordinal_date": "yyyy-DDDXXX",
    "rfc_1123_date_time": "EEE, d MMM yyyy HH:mm:ss 'GMT'",
    "short": "M/d/yy, h:mm a",
    "medium": "MMM d, yyyy, h:mm:ss a",
    "long": "MMMM d, yyyy 'at' h:mm:ss a z",
    "full": "EEEE, MMMM d, yyyy 'at' h:mm:ss a VV",
}
_PATTERN_TOKEN_RE = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|.", re.DOTALL)
_CHRONO_UNITS: dict[str, timedelta] = {
    "NANOS": timedelta(microseconds=0.001),
    "MICROS": timedelta(microseconds=1),
    "MILLIS": timedelta(milliseconds=1),
    "SECONDS": timedelta(seconds=1),
    "MINUTES": timedelta(minutes=1),
    "HOURS": timedelta(hours=1),
    "HALF_DAYS": timedelta(hours=12),
    "DAYS": timedelta(days=1),
    "WEEKS": timedelta(weeks=1),
}
_CALENDAR_UNITS = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200, "MILLENNIA": 12000}


def _zone(name: str | None) -> tzinfo:
    if name is None or name in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ExpressionError(f"Unknown time zone {name!r}") from e


def _iso(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _offset(value: datetime, count: int, letter: str) -> str:
    delta = value.utcoffset() or timedelta(0)
    if delta == timedelta(0) and letter == "X":
        return "Z"
    if letter == "Z" and count == 5 and delta == timedelta(0):
        return "Z"
    total = int(delta.total_seconds()) // 60
    sign, total = ("-" if total < 0 else "+"), abs(total)
    hours, minutes = divmod(total, 60)
    if letter == "Z" and count == 4:
        return f"GMT{sign}{hours:02d}:{minutes:02d}"
    if count == 1 and letter != "Z":
        return f"{sign}{hours:02d}" + (f"{minutes:02d}" if minutes else "")
    if count == 2 or (letter == "Z" and count < 4):
        return f"{sign}{hours:02d}{minutes:02d}"
    return f"{sign}{hours:02d}:{minutes:02d}"


def _format_field(value: datetime, letter: str, count: int) -> str:
    match letter:
        case "y" | "u":
            return f"{value.year % 100:02d}" if count == 2 else f"{value.year:0{count}d}"
        case "M" | "L":
            if count >= 4:
                return calendar.month_name[value.month]
            return calendar.month_abbr[value.month] if count == 3 else f"{value.month:0{count}d}"
        case "d":
            return f"{value.day:0{count}d}"
        case "D":
            return f"{value.timetuple().tm_yday:0{count}d}"
        case "H":
            return f"{value.hour:0{count}d}"
        case "h":
            return f"{(value.hour % 12) or 12:0{count}d}"
        case "k":
            return f"{value.hour or 24:0{count}d}"
        case "K":
            return f"{value.hour % 12:0{count}d}"
        case "m":
            return f"{value.minute:0{count}d}"
        case "s":
            return f"{value.second:0{count}d}"
        case "S":
            return f"{value.microsecond * 1000:09d}"[: min(count, 9)]
        case "n":
            return str(value.microsecond * 1000)
        case "a":
            return "AM" if value.hour < 12 else "PM"
        case "E":
            return calendar.day_name[value.weekday()] if count >= 4 else calendar.day_abbr[value.weekday()]
        case "X" | "x" | "Z":
            return _offset(value, count, letter)
        case "z":
            return value.tzname() or "UTC"
        case "V":
            return str(getattr(value.tzinfo, "key", "UTC"))
        case "G":
            return "AD"
        case "Q" | "q":
            return str((value.month - 1) // 3 + 1)
    raise ExpressionError(f"Unsupported date pattern letter {letter!r}")


def format_date(value: datetime, pattern: str) -> str:
    """Format a datetime with a Java DateTimeFormatter pattern (or one of Kestra's named formats)."""
    pattern = _NAMED_DATE_FORMATS.get(pattern, pattern)
    out: list[str] = []
    for match in _PATTERN_TOKEN_RE.finditer(pattern):
        token = match.group()
        if token.startswith("'"):
            out.append(token[1:-1].replace("''", "'") if token != "''" else "'")
        elif match.group(1):
            out.append(_format_field(value, token[0], len(token)))
        elif token not in "[]":
            out.append(token)
    return "".join(out)


_STRPTIME_CODES = {
    "yyyy": "%Y", "uuuu": "%Y", "yy": "%y", "MMMM": "%B", "MMM": "%b", "MM": "%m", "M": "%m", "dd": "%d", "d": "%d",
    "HH": "%H", "H": "%H", "hh": "%I", "h": "%I", "mm": "%M", "m": "%M", "ss": "%S", "s": "%S", "a": "%p",
    "EEEE": "%A", "EEE": "%a", "D": "%j", "DDD": "%j", "z": "%Z",
}  # fmt: skip


def _strptime_pattern(pattern: str) -> str:
    out: list[str] = []
    for match in _PATTERN_TOKEN_RE.finditer(_NAMED_DATE_FORMATS.get(pattern, pattern)):
        token = match.group()
        if token.startswith("'"):
            out.append((token[1:-1].replace("''", "'") if token != "''" else "'").replace("%", "%%"))
        elif match.group(1):
            if token[0] == "S":
                out.append("%f")
            elif token[0] in "XxZ":
                out.append("%z")
            elif token in _STRPTIME_CODES:
                out.append(_STRPTIME_CODES[token])
            else:
                raise ExpressionError(f"Unsupported date pattern {token!r} in existingFormat {pattern!r}")
        elif token not in "[]":
            out.append(token.replace("%", "%%"))
    return "".join(out)


def to_datetime(value: Any, zone: tzinfo, existing_format: str | None = None) -> datetime:
    """Read a date the way Kestra's AbstractDate does: datetimes, epoch seconds, ISO or patterned strings."""
    reject_undefined(value)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day, 12, tzinfo=zone)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        parsed = datetime.fromtimestamp(value, zone)
    elif isinstance(value, str):
        try:
            if existing_format is not None:
                parsed = datetime.strptime(value, _strptime_pattern(existing_format))  # noqa: DTZ007 - zone set below
            else:
                text = re.sub(r"\[[^\]]*\]$", "", value.strip())
                text = re.sub(r"(\.\d{6})\d+", r"\1", text)
                parsed = datetime.fromisoformat(text)
        except ValueError as e:
            raise ExpressionError(f"Cannot read {value!r} as a date: {e}") from e
    else:
        raise ExpressionError(f"Cannot read a {type(value).__name__} as a date")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def _add_months(value: datetime, months: int) -> datetime:
    index = value.year * 12 + value.month - 1 + months
    year, month = divmod(index, 12)
    day = min(value.day, calendar.monthrange(year, month + 1)[1])
    return value.replace(year=year, month=month + 1, day=day)


# -- filters --------------------------------------------------------------------------------------------
@_register(FILTERS, "abbreviate")
def _abbreviate(value: Any, length: int) -> str:
    text = format_value(value)
    if len(text) <= length:
        return text
    if length < 3:
        raise ExpressionError("abbreviate() needs a length of at least 3")
    return text[: length - 3] + "..."


@_register(FILTERS, "base64decode")
def _base64decode(value: Any) -> str:
    try:
        return base64.b64decode(format_value(value), validate=True).decode()
    except (ValueError, UnicodeDecodeError) as e:
        raise ExpressionError(f"base64decode: not valid base64 text: {e}") from e


@_register(FILTERS, "chunk")
def _chunk(value: Any, size: int) -> list[list[Any]]:
    items = list(value)
    if not isinstance(size, int) or size < 1:
        raise ExpressionError("chunk() needs a positive size")
    return [items[i : i + size] for i in range(0, len(items), size)]


_JAVA_CLASS_NAMES = {
    bool: "java.lang.Boolean",
    int: "java.lang.Long",
    float: "java.lang.Double",
    str: "java.lang.String",
}


@_register(FILTERS, "className")
def _class_name(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return "java.util.LinkedHashMap"
    if isinstance(value, list | tuple | LazyRange):
        return "java.util.ArrayList"
    if isinstance(value, str):
        return "java.lang.String"  # a flow variable is a str subclass (authored.Authored)
    return _JAVA_CLASS_NAMES.get(type(value), type(value).__name__)


@_register(FILTERS, "date")
def _date(
    value: Any, format: str = "iso", timeZone: str | None = None, existingFormat: str | None = None, locale: Any = None
) -> str | None:
    if value is None:
        return None
    zone = _zone(timeZone)
    return format_date(to_datetime(value, zone, existingFormat).astimezone(zone), format)


@_register(FILTERS, "dateAdd")
def _date_add(
    value: Any,
    amount: int,
    unit: str,
    format: str = "iso",
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: Any = None,
) -> str | None:
    if value is None:
        return None
    zone = _zone(timeZone)
    moment = to_datetime(value, zone, existingFormat)
    unit_name = str(unit).upper()
    try:
        if unit_name in _CALENDAR_UNITS:
            moment = _add_months(moment, int(amount) * _CALENDAR_UNITS[unit_name])
        elif unit_name in _CHRONO_UNITS:
            moment = moment + _CHRONO_UNITS[unit_name] * int(amount)
        else:
            raise ExpressionError(f"dateAdd: unknown unit {unit!r}; use one of DAYS, HOURS, MINUTES, MONTHS, ...")
    except (OverflowError, ValueError) as e:
        raise ExpressionError(f"dateAdd: {e}") from e
    return format_date(moment.astimezone(zone), format)


def _epoch(value: Any, timeZone: str | None, existingFormat: str | None, digits: int) -> int | None:
    if value is None:
        return None
    moment = to_datetime(value, _zone(timeZone), existingFormat)
    seconds = calendar.timegm(moment.utctimetuple())
    scale: int = 10**digits
    return seconds * scale + moment.microsecond * 1000 * scale // 1_000_000_000


def _default(value: Any, default: Any = None) -> Any:
    if isinstance(value, Undefined) or is_empty(value):
        return default
    return value


FILTERS["default"] = _default  # not guarded: its whole point is to accept an undefined value


@_register(FILTERS, "distinct", "uniq")
def _distinct(value: Any) -> list[Any]:
    unique: list[Any] = []
    for item in value:
        if item not in unique:
            unique.append(item)
    return unique


_ESCAPE_STYLES = {"single": ("'", "\\'"), "double": ('"', '\\"'), "shell": ("'", "'\\''")}


@_register(FILTERS, "escapeChar")
def _escape_char(value: Any, type: str) -> Any:
    style = _ESCAPE_STYLES.get(str(type).lower())
    if style is None:
        raise ExpressionError("escapeChar() expects the type to be 'single', 'double' or 'shell'")
    return _map_strings(value, lambda text: text.replace(*style))


def _map_strings(value: Any, transform: Callable[[str], str]) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: _map_strings(v, transform) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, transform) for v in value]
    return transform(format_value(value))


@_register(FILTERS, "first")
def _first(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = list(value.values())
    return next(iter(value), None)


@_register(FILTERS, "last")
def _last(value: Any) -> Any:
    if value is None:
        return None
    items = list(value.values()) if isinstance(value, Mapping) else value
    return items[-1] if len(items) else None


@_register(FILTERS, "flatten")
def _flatten(value: Any) -> list[Any]:
    if not isinstance(value, list | tuple | LazyRange):
        raise ExpressionError("flatten() can only be applied to lists")
    return [inner for item in value for inner in (item if isinstance(item, list | tuple) else [item])]


def _indent_lines(value: Any, amount: int, prefix: str, *, leading: bool) -> str | None:
    if value is None:
        return None
    text = format_value(value)
    if not text:
        return text
    if not isinstance(amount, int) or amount < 0:
        raise ExpressionError("indent() expects a positive integer amount")
    newline = next((sep for sep in ("\r\n", "\n\r", "\n", "\r") if sep in text), "\n")
    text = newline + text if leading else text
    if newline not in text:
        return text
    check_size(max(len(text) + text.count(newline) * amount * len(prefix), amount * len(prefix)))
    return text.replace(newline, newline + prefix * amount)


@_register(FILTERS, "jq")
def _jq(value: Any, expression: str) -> list[Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value) if isinstance(value, str) else to_plain(value)
    except ValueError as e:
        raise ExpressionError(f"jq: cannot apply {expression!r}: {e}") from e
    state = CURRENT.get()
    # Called outside a render (directly, in tests): RenderLimits' defaults.
    timeout_s = state.deadline - time.monotonic() if state is not None else 2.0
    max_chars = state.max_output_chars if state is not None else 1_000_000
    # jq runs in a helper process the deadline can kill (jq_sandbox); starting one is not the template's time.
    run = jq_sandbox.run(str(expression), data, timeout_s=max(timeout_s, 0.0), max_chars=max_chars)
    if state is not None:
        state.deadline += run.startup_s
    return run.results


@_register(FILTERS, "join")
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


@_register(FILTERS, "toJson", "json", "jsonEncode")
def _to_json(value: Any, includeNulls: bool = False) -> str:
    return "null" if value is None else to_json(value, include_nulls=includeNulls)


@_register(FILTERS, "keys")
def _keys(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.keys())
    if isinstance(value, list | tuple | LazyRange):
        return list(range(len(value)))
    raise ExpressionError(f"keys() needs a map, got {type(value).__name__}")


@_register(FILTERS, "values")
def _values(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    raise ExpressionError(f"values() needs a map, got {type(value).__name__}")


@_register(FILTERS, "length")
def _length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str | Sequence | Mapping | set | frozenset):
        return len(value)
    return len(format_value(value))


@_register(FILTERS, "merge")
def _merge(value: Any, items: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(items, Mapping):
        return {**value, **items}
    if isinstance(value, list | tuple | LazyRange):
        extra = list(items) if isinstance(items, list | tuple | LazyRange) else [items]
        check_size(len(value) + len(extra))
        return [*value, *extra]
    raise ExpressionError("merge() needs two maps, or a list and a list or value")


_NUMBER_TYPES: dict[str, Callable[[str], Any]] = {
    "INT": int, "LONG": int, "BIGINTEGER": int, "FLOAT": float, "DOUBLE": float, "BIGDECIMAL": float,
}  # fmt: skip


@_register(FILTERS, "number")
def _number(value: Any, type: str | None = None) -> Any:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and type is None:
        return value
    text = format_value(value).strip()
    try:
        if type is not None:
            convert = _NUMBER_TYPES.get(str(type).upper())
            if convert is None:
                raise ExpressionError(f"number(): unknown type {type!r}; use INT, LONG, FLOAT, DOUBLE, ...")
            return convert(text)
        return int(text, 0) if re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|\d+)", text) else float(text)
    except ValueError as e:
        raise ExpressionError(f"number(): {value!r} is not a number") from e


@_register(FILTERS, "numberFormat")
def _number_format(value: Any, format: str) -> str:
    integer_part, _, fraction_part = format.partition(".")
    min_fraction = fraction_part.count("0")
    max_fraction = min_fraction + fraction_part.count("#")
    try:
        number = Decimal(str(value)).quantize(Decimal(1).scaleb(-max_fraction), rounding=ROUND_HALF_EVEN)
    except InvalidOperation as e:
        raise ExpressionError(f"numberFormat(): {value!r} is not a number") from e
    text = f"{number:,.{max_fraction}f}" if "," in integer_part else f"{number:.{max_fraction}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(min_fraction, "0")
    digits = whole.lstrip("-")
    min_integer = integer_part.count("0")
    if digits == "0" and min_integer == 0 and fraction:
        whole = whole.replace("0", "")
    return whole + ("." + fraction if fraction else "")


@_register(FILTERS, "replace")
def _replace(value: Any, replace_pairs: Any, regexp: Any = False) -> Any:
    if isinstance(replace_pairs, str):
        # Kestra's older replace('old', 'new') form.
        pairs, use_regexp = {replace_pairs: format_value(regexp)}, False
    elif isinstance(replace_pairs, Mapping):
        pairs, use_regexp = {format_value(k): format_value(v) for k, v in replace_pairs.items()}, bool(regexp)
    else:
        raise ExpressionError("replace() expects a map of replacements, e.g. replace({'old': 'new'})")
    if use_regexp:
        for pattern in pairs:
            _compiled(pattern, "replace")

    def apply(text: str) -> str:
        for old, new in pairs.items():
            if use_regexp:
                text = regex.substitute(old, new, text, check_size)
            elif old:
                check_size(len(text) + text.count(old) * max(len(new) - len(old), 0))
                text = text.replace(old, new)
        return text

    return _map_strings(value, apply)


def _compiled(pattern: str, name: str) -> regex.Pattern:
    """The RE2 program of a pattern a template passes to `name`, or an ExpressionError saying why not."""
    try:
        return regex.compile_pattern(pattern)
    except regex.RegexInvalid as e:
        raise ExpressionError(f"{name}(): {e}") from e


@_register(FILTERS, "reverse")
def _reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    return list(reversed(list(value)))


@_register(FILTERS, "slice")
def _slice(value: Any, fromIndex: int = 0, toIndex: int | None = None) -> Any:
    if isinstance(value, str):
        return value[fromIndex:toIndex]
    return list(value)[fromIndex:toIndex]


@_register(FILTERS, "slugify")
def _slugify(value: Any) -> str:
    text = re.sub(r"\s", "-", format_value(value))
    text = re.sub(r"[^\w-]", "", unicodedata.normalize("NFD", text), flags=re.ASCII).replace("_", "-")
    text = re.sub(r"-{2,}", "-", text)
    return text.removeprefix("-").removesuffix("-").lower()


@_register(FILTERS, "split")
def _split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    text = format_value(value)
    if limit is not None and limit > 0:
        return text.split(delimiter, limit - 1)
    parts = text.split(delimiter)
    while parts and parts[-1] == "" and limit is None:
        parts.pop()  # Java's String.split drops trailing empty strings
    return parts


@_register(FILTERS, "string")
def _string(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return format_value(value)
    text = format_value(value)
    try:
        Decimal(text)
    except InvalidOperation as e:
        raise ExpressionError(f"string() expects a number or a numeric string, got {text!r}") from e
    return text


@_register(FILTERS, "substringBefore")
def _substring_before(value: Any, separator: str) -> str:
    text = format_value(value)
    return text.split(separator, 1)[0] if separator else ""


@_register(FILTERS, "substringBeforeLast")
def _substring_before_last(value: Any, separator: str) -> str:
    text = format_value(value)
    return text.rsplit(separator, 1)[0] if separator and separator in text else text


@_register(FILTERS, "substringAfter")
def _substring_after(value: Any, separator: str) -> str:
    text = format_value(value)
    return text.split(separator, 1)[1] if separator in text else ""


@_register(FILTERS, "substringAfterLast")
def _substring_after_last(value: Any, separator: str) -> str:
    text = format_value(value)
    return text.rsplit(separator, 1)[1] if separator and separator in text else ""


def _hexdigest(algorithm: str) -> Callable[[Any], str]:
    return lambda value: hashlib.new(algorithm, format_value(value).encode(), usedforsecurity=False).hexdigest()


def _epoch_filter(digits: int) -> Callable[..., int | None]:
    def epoch(value: Any, timeZone: str | None = None, existingFormat: str | None = None) -> int | None:
        return _epoch(value, timeZone, existingFormat, digits)

    return epoch


_SIMPLE_FILTERS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "base64encode": lambda value: base64.b64encode(format_value(value).encode()).decode(),
    "capitalize": lambda value: format_value(value)[:1].upper() + format_value(value)[1:],
    "title": lambda value: re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), format_value(value)),
    "upper": lambda value: format_value(value).upper(),
    "lower": lambda value: format_value(value).lower(),
    "trim": lambda value: format_value(value).strip(),
    "startsWith": lambda value, prefix: format_value(value).startswith(format_value(prefix)),
    "endsWith": lambda value, suffix: format_value(value).endswith(format_value(suffix)),
    "md5": _hexdigest("md5"),
    "sha1": _hexdigest("sha1"),
    "sha256": _hexdigest("sha256"),
    "sha512": _hexdigest("sha512"),
    "sort": sorted,
    "rsort": lambda value: sorted(value, reverse=True),
    "urlencode": lambda value: urllib.parse.quote_plus(format_value(value), safe="*").replace("~", "%7E"),
    "urldecode": lambda value: urllib.parse.unquote_plus(format_value(value)),
    "timestamp": _epoch_filter(0),
    "timestampMilli": _epoch_filter(3),
    "timestampMicro": _epoch_filter(6),
    "timestampNano": _epoch_filter(9),
    "indent": lambda value, amount, prefix=" ": _indent_lines(value, amount, prefix, leading=False),
    "nindent": lambda value, amount, prefix=" ": _indent_lines(value, amount, prefix, leading=True),
}
for _name, _filter in _SIMPLE_FILTERS.items():
    _register(FILTERS, _name)(_filter)


class _IndentedListDumper(yaml.SafeDumper):
    """Indents list items under their key, as Jackson's YAML writer does with INDENT_ARRAYS."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


@_register(FILTERS, "yaml")
def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    text = yaml.dump(to_plain(value), Dumper=_IndentedListDumper, sort_keys=False, allow_unicode=True)
    return text.removesuffix("...\n")


# -- tests ----------------------------------------------------------------------------------------------
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
    _register(TESTS, _name)(_test)


# -- functions ------------------------------------------------------------------------------------------
def _caller_functions(name: str, method: str) -> Any:
    state = CURRENT.get()
    functions = state.functions if state is not None else None
    if functions is None or not callable(getattr(functions, method, None)):
        raise ExpressionError(f"The {name}() function is not available here")
    return getattr(functions, method)


@_register(FUNCTIONS, "secret")
def _secret(name: str) -> str:
    secret = _caller_functions("secret", "secret")
    with _io_clock():
        return str(secret(name))


@_register(FUNCTIONS, "kv")
def _kv(key: str, namespace: str | None = None, errorOnMissing: bool | None = True) -> Any:
    kv = _caller_functions("kv", "kv")
    with _io_clock():
        return kv(key, namespace, errorOnMissing is not False)


@_register(FUNCTIONS, "read")
def _read(path: str) -> str:
    """Kestra's read(): the text of a file in internal storage that this execution may see."""
    read_file = _caller_functions("read", "read_file")
    with _io_clock():
        return str(read_file(str(path)))


@_register(FUNCTIONS, "errorLogs")
def _error_logs() -> Any:
    error_logs = _caller_functions("errorLogs", "error_logs")
    with _io_clock():
        return error_logs()


@_register(FUNCTIONS, "now")
def _now(format: str = "iso", timeZone: str | None = None, locale: Any = None) -> str:
    zone = _zone(timeZone)
    return format_date(datetime.now(UTC).astimezone(zone), format)


@_register(FUNCTIONS, "fromJson", "json", "jsonDecode")
def _from_json(json_text: Any) -> Any:
    if json_text is None:
        return None
    if not isinstance(json_text, str):
        raise ExpressionError("fromJson() expects a string argument")
    try:
        return json.loads(json_text)
    except ValueError as e:
        raise ExpressionError(f"fromJson(): invalid JSON: {e}") from e


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases, which can expand a small document into a huge value."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise ExpressionError("yaml(): YAML aliases are not allowed in expressions")
        return super().compose_node(parent, index)


@_register(FUNCTIONS, "yaml", "fromYaml")
def _from_yaml(yaml_text: Any) -> Any:
    if yaml_text is None:
        return None
    if not isinstance(yaml_text, str):
        raise ExpressionError("yaml() expects a string argument")
    try:
        return yaml.load(yaml_text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ExpressionError(f"yaml(): invalid YAML: {e}") from e


FUNCTIONS["range"] = inclusive_range


@_register(FUNCTIONS, "max")
def _max(*values: Any) -> Any:
    return max(values[0] if len(values) == 1 else values)


@_register(FUNCTIONS, "min")
def _min(*values: Any) -> Any:
    return min(values[0] if len(values) == 1 else values)


@_register(FUNCTIONS, "uuid")
def _uuid() -> str:
    return str(uuid.uuid4())


@_register(FUNCTIONS, "randomInt")
def _random_int(lower: int, upper: int) -> int:
    return random.randrange(lower, upper)  # not for security


@_register(FUNCTIONS, "currentEachOutput")
@pass_context
def _current_each_output(context: Context, outputs: Any) -> Any:
    """The output of a task inside ForEach for the current iteration (indexed by each parent's value)."""
    parents = context.resolve_or_missing("parents")
    taskrun = context.resolve_or_missing("taskrun")
    result = outputs
    values = [p["taskrun"]["value"] for p in reversed(parents)] if isinstance(parents, list) else []
    if isinstance(taskrun, Mapping):
        values.append(taskrun.get("value"))
    for value in values:
        if isinstance(result, Mapping) and value in result:
            result = result[value]
    return result


@_register(FUNCTIONS, "loopOutputs")
def _loop_outputs(outputs: Any, output_id: Any) -> list[Any]:
    """Kestra 2's `loopOutputs(outputs.<loop>.outputs, 'id')`: one declared output of every Loop iteration."""
    if not isinstance(outputs, list):
        raise ExpressionError(f"loopOutputs expects the list of a Loop's outputs, got {format_value(outputs)}")
    name = format_value(output_id)
    return [entry["outputs"].get(name) for entry in outputs if isinstance(entry, Mapping) and "outputs" in entry]
