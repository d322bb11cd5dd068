"""Kestra's date filters and now(): Java DateTimeFormatter patterns, date parsing, dateAdd and epoch timestamps."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.core.errors import ExpressionError
from orchestrator.core.pebble_runtime import register, reject_undefined

FILTERS: dict[str, Callable[..., Any]] = {}
FUNCTIONS: dict[str, Callable[..., Any]] = {}

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


@register(FILTERS, "date")
def _date(
    value: Any, format: str = "iso", timeZone: str | None = None, existingFormat: str | None = None, locale: Any = None
) -> str | None:
    if value is None:
        return None
    zone = _zone(timeZone)
    return format_date(to_datetime(value, zone, existingFormat).astimezone(zone), format)


@register(FILTERS, "dateAdd")
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


def _epoch_filter(digits: int) -> Callable[..., int | None]:
    def epoch(value: Any, timeZone: str | None = None, existingFormat: str | None = None) -> int | None:
        return _epoch(value, timeZone, existingFormat, digits)

    return epoch


for _name, _digits in (("timestamp", 0), ("timestampMilli", 3), ("timestampMicro", 6), ("timestampNano", 9)):
    register(FILTERS, _name)(_epoch_filter(_digits))


@register(FUNCTIONS, "now")
def _now(format: str = "iso", timeZone: str | None = None, locale: Any = None) -> str:
    zone = _zone(timeZone)
    return format_date(datetime.now(UTC).astimezone(zone), format)
