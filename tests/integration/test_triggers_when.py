"""Kestra 2's `when` on a Schedule: it skips the slots it is false for, as the 1.x `conditions` did."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.engine import Engine
from orchestrator.triggers.scheduler import Scheduler
from tests.integration.scheduling import HOURLY, START, FakeClock, engine, executions_of

__all__ = ["engine"]  # the fixture

WEEKEND_1X = 'cron: "@daily"\n    conditions:\n      - type: io.kestra.plugin.core.condition.Weekend'
WEEKEND_2X = 'cron: "@daily"\n    when: "{{ isWeekend(trigger.date) }}"'


@pytest.mark.parametrize("schedule", [WEEKEND_1X, WEEKEND_2X], ids=["conditions", "when"])
def test_a_schedule_and_its_2x_rewrite_fire_on_the_same_days(engine: Engine, schedule: str) -> None:
    engine.deploy_flow(HOURLY.replace('cron: "@hourly"', schedule), actor="t")
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    for _ in range(7):  # Thursday 1 January 2026 to Wednesday 7 January
        clock.advance(timedelta(days=1))
        Scheduler(engine, clock).tick()

    dates = sorted(e.trigger["variables"]["date"] for e in executions_of(engine, "hourly") if e.trigger)
    assert dates == ["2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00"]


def test_a_when_that_cannot_be_rendered_fires_nothing(engine: Engine) -> None:
    engine.deploy_flow(
        HOURLY.replace('cron: "@hourly"', 'cron: "@daily"\n    when: "{{ trigger.nope.deeper }}"'), actor="t"
    )
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    for _ in range(3):
        clock.advance(timedelta(days=1))
        Scheduler(engine, clock).tick()

    assert executions_of(engine, "hourly") == []
