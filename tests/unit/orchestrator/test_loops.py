"""WaitFor and LoopUntil limits as Kestra's sources set them (WaitFor in 0.20, LoopUntil after it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.core.parse import parse_flow
from orchestrator.engine.loops import _frequency, _reached
from orchestrator.store.tables import TaskRunRow

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _loop(kind: str, frequency: str = "") -> Any:
    source = (
        f"id: f\nnamespace: n\ntasks:\n  - id: loop\n    type: io.kestra.plugin.core.flow.{kind}\n"
        f"    condition: 'false'\n{frequency}    tasks:\n      - id: t\n        type: io.kestra.plugin.core.log.Log\n"
        "        message: x\n"
    )
    return parse_flow(source).task("loop")


def _parent(started: datetime = NOW) -> TaskRunRow:
    return TaskRunRow(id="p", created_at=started)


def test_wait_for_has_kestra_0_20_defaults_and_runs_max_iterations_iterations() -> None:
    frequency = _frequency(_loop("WaitFor", "    checkFrequency:\n      maxIterations: 3\n"), lambda v: v)

    assert (frequency.max_iterations, frequency.interval) == (3, timedelta(seconds=1))
    assert frequency.max_duration == timedelta(hours=1)
    # The count the next iteration would run with: the 4th of a 3-iteration loop is past the limit.
    assert [_reached(frequency, count, _parent(), NOW) for count in (2, 3, 4)] == [False, False, True]


def test_loop_until_is_unlimited_by_default_one_minute_apart() -> None:
    unlimited = _frequency(_loop("LoopUntil"), lambda v: v)
    limited = _frequency(_loop("LoopUntil", "    checkFrequency:\n      maxIterations: 3\n"), lambda v: v)

    assert (unlimited.max_iterations, unlimited.max_duration) == (None, None)
    assert unlimited.interval == timedelta(minutes=1)
    assert not _reached(unlimited, 10_000, _parent(NOW - timedelta(days=30)), NOW)
    assert [_reached(limited, count, _parent(), NOW) for count in (3, 4)] == [False, True]


def test_max_duration_counts_from_the_loops_creation() -> None:
    frequency = _frequency(_loop("LoopUntil", "    checkFrequency:\n      maxDuration: PT1M\n"), lambda v: v)

    assert not _reached(frequency, 2, _parent(NOW - timedelta(seconds=59)), NOW)
    assert _reached(frequency, 2, _parent(NOW - timedelta(seconds=61)), NOW)
