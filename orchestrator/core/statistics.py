"""Kestra's execution statistics over time: the bucket size a date range gets, and the buckets it spans.

As Kestra's `DateUtils.groupByType`: more than 365 days is counted by month, more than 180 by week, more than
one by day, more than 6 hours by hour, else by minute; every bucket of the range is listed, empty ones too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

#: The bucket units, coarsest first, as PostgreSQL's `date_trunc` and Kestra's `groupBy` name them.
UNITS = ("month", "week", "day", "hour", "minute")


def group_by(start: datetime, end: datetime) -> str:
    """The bucket unit Kestra uses for [start, end]."""
    span = end - start
    if span.days > 365:
        return "month"
    if span.days > 180:
        return "week"
    if span.days > 1:
        return "day"
    if span.total_seconds() // 3600 > 6:  # java.time.Duration.toHours() truncates
        return "hour"
    return "minute"


def truncate(moment: datetime, unit: str) -> datetime:
    """`date_trunc(unit, moment)`: weeks start on Monday, as in PostgreSQL (ISO weeks)."""
    if unit == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "day":
        return day
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(second=0, microsecond=0)


def _next(moment: datetime, unit: str) -> datetime:
    if unit == "month":
        return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
    step = {"week": timedelta(weeks=1), "day": timedelta(days=1), "hour": timedelta(hours=1)}
    return moment + step.get(unit, timedelta(minutes=1))


def buckets(start: datetime, end: datetime, unit: str) -> list[datetime]:
    """The start of every bucket from the one holding `start` to the one holding `end`."""
    found = []
    current = truncate(start, unit)
    while current <= end:
        found.append(current)
        current = _next(current, unit)
    return found
