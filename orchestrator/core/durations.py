"""ISO-8601 durations the way Kestra reads them (java.time.Duration), and expression detection."""

from __future__ import annotations

import re
from datetime import timedelta

# java.time.Duration.parse: days, hours, minutes and seconds only (no years, months or weeks),
# case-insensitive, each part optionally signed, up to nine fractional digits on the seconds.
# Kestra's own test flows rely on the case-insensitivity (`PT0.25s`, `PT5m`).
_DURATION = re.compile(
    r"(?P<sign>[-+]?)P(?:(?P<days>[-+]?\d+)D)?"
    r"(?:T(?:(?P<hours>[-+]?\d+)H)?(?:(?P<minutes>[-+]?\d+)M)?"
    r"(?:(?P<seconds>[-+]?\d+)(?:[.,](?P<fraction>\d{0,9}))?S)?)?",
    re.IGNORECASE,
)


def is_expression(value: object) -> bool:
    """Tell whether a value is a Pebble/Jinja template that can only be resolved at run time."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration such as ``PT5M``, ``P1D`` or ``PT0.25S``; raise ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or text.strip().upper().endswith("T") or _is_empty(match):
        raise ValueError(f"'{text}' is not an ISO-8601 duration (e.g. PT30S, PT5M, PT1H, P1D)")
    seconds_part = int(match["seconds"] or 0)
    fraction = (match["fraction"] or "").ljust(9, "0")
    nanos = int(fraction) if fraction else 0
    if (match["seconds"] or "").startswith("-"):
        nanos = -nanos
    try:
        total = timedelta(
            days=int(match["days"] or 0),
            hours=int(match["hours"] or 0),
            minutes=int(match["minutes"] or 0),
            seconds=seconds_part,
            microseconds=nanos / 1000,
        )
    except OverflowError:
        raise ValueError(f"'{text}' is longer than {timedelta.max.days} days") from None
    return -total if match["sign"] == "-" else total


def _is_empty(match: re.Match[str]) -> bool:
    return not any(match[name] for name in ("days", "hours", "minutes", "seconds"))


def format_duration(value: timedelta) -> str:
    """Format a duration as java.time.Duration.toString does (``PT24H``, ``PT0.5S``, ``PT0S``)."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "PT0S"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    parts = ["PT"]
    if hours:
        parts.append(f"{sign}{hours}H")
    if minutes:
        parts.append(f"{sign}{minutes}M")
    if seconds or fraction:
        frac = f".{fraction:06d}".rstrip("0") if fraction else ""
        parts.append(f"{sign}{seconds}{frac}S")
    return "".join(parts)
