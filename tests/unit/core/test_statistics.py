"""Kestra's bucket sizes for execution statistics, and the buckets a range spans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.statistics import buckets, group_by

END = datetime(2026, 12, 7, 21, 40, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "unit", "count"),
    [(timedelta(hours=1), "minute", 61), (timedelta(hours=6, minutes=59), "minute", 420),
     (timedelta(hours=7), "hour", 8), (timedelta(days=1), "hour", 25), (timedelta(days=2), "day", 3),
     (timedelta(days=30), "day", 31), (timedelta(days=200), "week", 30), (timedelta(days=400), "month", 14)],
)  # fmt: skip
def test_a_range_is_counted_in_kestras_bucket_size(span: timedelta, unit: str, count: int) -> None:
    assert group_by(END - span, END) == unit
    assert len(buckets(END - span, END, unit)) == count


def test_weeks_start_on_monday_and_months_roll_over_the_year() -> None:
    assert buckets(datetime(2026, 12, 9, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC), "week") == [
        datetime(2026, 12, 7, tzinfo=UTC)
    ]
    months = buckets(datetime(2026, 11, 15, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC), "month")
    assert [m.month for m in months] == [11, 12, 1]
