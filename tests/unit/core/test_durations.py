"""orchestrator.core.durations: ISO-8601 durations as Kestra reads them, and the ones no timedelta can hold."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [("PT5M", timedelta(minutes=5)), ("P1D", timedelta(days=1)), ("PT0.25s", timedelta(seconds=0.25))],
)
def test_kestra_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["P99999999999D", "PT99999999999999999999H", "PT99999999999999999999S"])
def test_a_duration_beyond_what_a_timedelta_holds_is_a_value_error_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=text):
        parse_duration(text)


def test_the_longest_duration_still_parses_and_formats() -> None:
    longest = parse_duration(f"P{timedelta.max.days}D")

    assert format_duration(longest).startswith("PT")
