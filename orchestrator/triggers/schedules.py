"""Cron arithmetic for Schedule triggers: the slot after or before an instant, in the trigger's time zone.

Kestra's cron dialect: 5 fields, or 6 with seconds first (`withSeconds`), or a nickname like `@hourly`.
Slots are computed in the trigger's `timezone` (so `0 9 * * *` follows daylight saving time there) and
returned as aware datetimes in that zone; the scheduler stores them in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import FlowInvalid

#: At most this many slots are fired for one trigger in one tick (a long outage catches up over ticks).
MAX_SLOTS_PER_TICK = 100
ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression with the time zone its slots live in."""

    expression: str
    zone: ZoneInfo
    with_seconds: bool

    def after(self, moment: datetime) -> datetime:
        """The first slot strictly after `moment`."""
        it = croniter(self.expression, moment.astimezone(self.zone), second_at_beginning=self.with_seconds)
        return _aware(it.get_next(datetime), self.zone)

    def before(self, moment: datetime) -> datetime:
        """The last slot strictly before `moment`."""
        it = croniter(self.expression, moment.astimezone(self.zone), second_at_beginning=self.with_seconds)
        return _aware(it.get_prev(datetime), self.zone)

    def slots(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every slot in [start, end] (a backfill's range)."""
        slot = self.after(start - ONE_MICROSECOND)
        while slot <= end:
            yield slot
            slot = self.after(slot)


#: The "next slot" of a schedule that has no more: far enough that it is never due.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Dates:
    """ScheduleOnDates: an explicit list of instants, with Cron's interface."""

    dates: tuple[datetime, ...]
    zone: ZoneInfo

    def after(self, moment: datetime) -> datetime:
        return next((d for d in self.dates if d > moment), NEVER).astimezone(self.zone)

    def before(self, moment: datetime) -> datetime:
        earlier = [d for d in self.dates if d < moment]
        return (earlier[-1] if earlier else moment).astimezone(self.zone)

    def slots(self, start: datetime, end: datetime) -> Iterator[datetime]:
        return iter([d.astimezone(self.zone) for d in self.dates if start <= d <= end])


def parse_schedule(trigger_type: str, properties: Mapping[str, Any]) -> Cron | Dates:
    """The slots of a Schedule (cron) or ScheduleOnDates (dates) trigger; FlowInvalid when unusable."""
    if trigger_type != "ScheduleOnDates":
        return parse_cron(properties)
    zone = _zone(properties)
    raw = properties.get("dates")
    items = raw if isinstance(raw, list) else [raw]
    try:
        moments = [datetime.fromisoformat(str(item)) for item in items]
    except ValueError as e:
        raise FlowInvalid([], f"invalid date in ScheduleOnDates: {e}") from e
    aware = sorted(m if m.tzinfo is not None else m.replace(tzinfo=zone) for m in moments)
    return Dates(tuple(aware), zone)


def _zone(properties: Mapping[str, Any]) -> ZoneInfo:
    try:
        return ZoneInfo(str(properties.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise FlowInvalid([], f"unknown time zone {properties.get('timezone')!r}") from e


def parse_cron(properties: Mapping[str, Any]) -> Cron:
    """The Cron of a Schedule trigger's properties; FlowInvalid on a bad expression or time zone."""
    expression = str(properties.get("cron", "")).strip()
    fields = expression.split()
    with_seconds = len(fields) == 6 or bool(properties.get("withSeconds"))
    zone = _zone(properties)
    if not croniter.is_valid(expression, second_at_beginning=with_seconds):
        raise FlowInvalid([], f"invalid cron expression {expression!r}")
    return Cron(expression, zone, with_seconds)


def late_maximum_delay(properties: Mapping[str, Any]) -> timedelta | None:
    """`lateMaximumDelay`: a slot fired later than this after its time is skipped."""
    value = properties.get("lateMaximumDelay")
    return parse_duration(str(value)) if value else None


def trigger_variables(cron: Cron | Dates, slot: datetime) -> dict[str, str]:
    """`trigger.date`, `trigger.next` and `trigger.previous` of an execution started for `slot`."""
    local = slot.astimezone(cron.zone)
    return {
        "date": local.isoformat(),
        "next": cron.after(local).isoformat(),
        "previous": cron.before(local).isoformat(),
    }


def _aware(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
