"""The scheduler against a real database on a fake clock: each slot fires once, across rival schedulers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from orchestrator import store
from orchestrator.core.states import State
from orchestrator.engine import Engine
from orchestrator.store import triggers as store_triggers
from orchestrator.store.tables import AuditEventRow, ExecutionRow
from orchestrator.triggers.scheduler import Scheduler
from tests.integration.scheduling import HOURLY, START, FakeClock, engine, executions_of

__all__ = ["engine"]  # the fixture


def race(rivals: list[Scheduler]) -> list[str]:
    """Tick every scheduler at the same moment from its own thread; all the executions they created."""
    barrier = threading.Barrier(len(rivals))
    results: list[list[str]] = [[] for _ in rivals]

    def tick(i: int) -> None:
        barrier.wait()
        results[i] = rivals[i].tick()

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(len(rivals))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return [execution_id for result in results for execution_id in result]


def test_24_hourly_slots_fire_once_each_under_rival_schedulers_replaced_twice(engine: Engine) -> None:
    engine.deploy_flow(HOURLY, actor="test")
    clock = FakeClock(START)
    fired: list[str] = []
    Scheduler(engine, clock).tick()  # first sight of the trigger: its first slot is the next hour
    for generation in range(3):  # the "leader" and its rival are replaced twice over the day
        rivals = [Scheduler(engine, clock), Scheduler(engine, clock)]
        for _ in range(8):
            clock.advance(timedelta(hours=1))
            fired.extend(race(rivals))
        assert len(fired) == 8 * (generation + 1)
    executions = executions_of(engine, "hourly")
    assert sorted(e.id for e in executions) == sorted(fired)
    dates = sorted(e.trigger["variables"]["date"] for e in executions if e.trigger)
    expected = [(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h)).isoformat() for h in range(24)]
    assert dates == expected


def test_a_fire_is_audited_with_the_trigger_as_actor(engine: Engine) -> None:
    engine.deploy_flow(HOURLY, actor="test")
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    clock.advance(timedelta(hours=1))
    [execution_id] = Scheduler(engine, clock).tick()
    actor = "trigger:tests.triggers.hourly.every-hour"
    with engine.sessions() as session:
        actions = session.scalars(select(AuditEventRow.action).where(AuditEventRow.actor == actor)).all()
        execution = session.get(ExecutionRow, execution_id)
    assert "trigger.fired" in actions and "execution.created" in actions
    assert execution is not None and execution.trigger == {
        "id": "every-hour",
        "type": "io.kestra.plugin.core.trigger.Schedule",
        "variables": {
            "date": "2026-01-01T00:00:00+00:00",
            "next": "2026-01-01T01:00:00+00:00",
            "previous": "2025-12-31T23:00:00+00:00",
        },
    }


def test_slots_later_than_late_maximum_delay_are_skipped(engine: Engine) -> None:
    engine.deploy_flow(HOURLY.replace('cron: "@hourly"', 'cron: "@hourly"\n    lateMaximumDelay: PT30M'), actor="t")
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    clock.advance(timedelta(hours=2, minutes=10))  # 00:00 and 01:00 are late; 02:00 is 10 minutes late
    fired = Scheduler(engine, clock).tick()
    [execution] = executions_of(engine, "hourly")
    assert fired == [execution.id]
    assert execution.trigger is not None and execution.trigger["variables"]["date"] == "2026-01-01T02:00:00+00:00"


def test_stop_after_disables_the_trigger_once_its_execution_ends_in_a_listed_state(engine: Engine) -> None:
    engine.deploy_flow(HOURLY.replace('cron: "@hourly"', 'cron: "@hourly"\n    stopAfter: [FAILED]'), actor="t")
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    clock.advance(timedelta(hours=1))
    [first] = Scheduler(engine, clock).tick()
    with engine.transaction() as session:
        execution = store.lock_execution(session, first)
        assert execution is not None
        store.record_transition(session, execution, State.FAILED, actor="test")
    clock.advance(timedelta(hours=1))
    assert Scheduler(engine, clock).tick() == []
    with engine.sessions() as session:
        row = store_triggers.get_trigger(session, "main", "tests.triggers", "hourly", "every-hour")
    assert row is not None and row.enabled is False


def test_a_disabled_trigger_or_deleted_flow_fires_nothing(engine: Engine) -> None:
    engine.deploy_flow(HOURLY.replace('cron: "@hourly"', 'cron: "@hourly"\n    disabled: true'), actor="t")
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    clock.advance(timedelta(hours=3))
    assert Scheduler(engine, clock).tick() == []
    engine.deploy_flow(HOURLY, actor="t")
    Scheduler(engine, clock).tick()
    engine.delete_flow("tests.triggers", "hourly", actor="t")
    clock.advance(timedelta(hours=3))
    assert Scheduler(engine, clock).tick() == []
    with engine.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ExecutionRow)) == 0


UPSTREAM = """
id: upstream
namespace: tests.chain
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
"""

DOWNSTREAM = """
id: downstream
namespace: tests.chain
inputs:
  - id: source
    type: STRING
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.executionId }}"
triggers:
  - id: after-upstream
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      source: "{{ trigger.flowId }}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [FAILED]
      - type: io.kestra.plugin.core.condition.ExecutionNamespace
        namespace: tests
        prefix: true
"""


def end_execution(engine: Engine, execution_id: str, state: State) -> None:
    with engine.transaction() as session:
        execution = store.lock_execution(session, execution_id)
        assert execution is not None
        store.record_transition(session, execution, state, actor="test")


def test_a_flow_trigger_starts_its_flow_when_a_matching_execution_ends(engine: Engine) -> None:
    engine.deploy_flow(UPSTREAM, actor="t")
    engine.deploy_flow(DOWNSTREAM, actor="t")
    upstream = engine.submit("tests.chain", "upstream", inputs={}, actor="t")
    end_execution(engine, upstream.id, State.FAILED)
    [downstream] = executions_of(engine, "downstream")
    assert downstream.inputs == {"source": "upstream"}
    assert downstream.trigger is not None
    assert downstream.trigger["id"] == "after-upstream"
    assert downstream.trigger["variables"]["executionId"] == upstream.id
    assert downstream.trigger["variables"]["state"] == "FAILED"
    with engine.sessions() as session:
        actors = session.scalars(select(AuditEventRow.actor).where(AuditEventRow.chain_key == downstream.id)).all()
    assert "trigger:tests.chain.downstream.after-upstream" in actors


def test_a_flow_trigger_ignores_executions_its_conditions_refuse(engine: Engine) -> None:
    engine.deploy_flow(UPSTREAM, actor="t")
    engine.deploy_flow(DOWNSTREAM, actor="t")
    upstream = engine.submit("tests.chain", "upstream", inputs={}, actor="t")
    end_execution(engine, upstream.id, State.SUCCESS)
    assert executions_of(engine, "downstream") == []


def test_schedule_conditions_skip_the_slots_they_refuse(engine: Engine) -> None:
    weekends = HOURLY.replace(
        'cron: "@hourly"', 'cron: "@daily"\n    conditions:\n      - type: io.kestra.plugin.core.condition.Weekend'
    )
    engine.deploy_flow(weekends, actor="t")
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    for _ in range(7):  # Thursday 1 January 2026 to Wednesday 7 January
        clock.advance(timedelta(days=1))
        Scheduler(engine, clock).tick()
    dates = sorted(e.trigger["variables"]["date"] for e in executions_of(engine, "hourly") if e.trigger)
    assert dates == ["2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00"]


@pytest.mark.parametrize(
    ("recover", "expected"),
    [
        ("ALL", ["00:00", "01:00", "02:00"]),
        ("LAST", ["02:00"]),
        ("NONE", []),
    ],
)
def test_recover_missed_schedules_decides_what_a_late_scheduler_fires(
    engine: Engine, recover: str, expected: list[str]
) -> None:
    source = HOURLY.replace('cron: "@hourly"', f'cron: "@hourly"\n    recoverMissedSchedules: {recover}')
    engine.deploy_flow(source, actor="t")
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    clock.advance(timedelta(hours=2, minutes=30))  # down since before midnight: 00:00, 01:00 and 02:00 are due
    Scheduler(engine, clock).tick()
    dates = sorted(e.trigger["variables"]["date"][11:16] for e in executions_of(engine, "hourly") if e.trigger)
    assert dates == expected


def test_recover_none_still_fires_a_slot_that_is_on_time(engine: Engine) -> None:
    engine.deploy_flow(
        HOURLY.replace('cron: "@hourly"', 'cron: "@hourly"\n    recoverMissedSchedules: NONE'), actor="t"
    )
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    clock.advance(timedelta(seconds=2))
    assert len(Scheduler(engine, clock).tick()) == 1


def test_schedule_on_dates_fires_once_per_listed_date(engine: Engine) -> None:
    on_dates = HOURLY.replace(
        """    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@hourly\"""",
        """    type: io.kestra.plugin.core.trigger.ScheduleOnDates
    dates:
      - "2026-01-01T00:30:00Z"
      - "2026-01-01T02:00:00Z\"""",
    )
    engine.deploy_flow(on_dates, actor="t")
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    for _ in range(6):
        clock.advance(timedelta(hours=1))
        Scheduler(engine, clock).tick()
    dates = sorted(e.trigger["variables"]["date"] for e in executions_of(engine, "hourly") if e.trigger)
    assert dates == ["2026-01-01T00:30:00+00:00", "2026-01-01T02:00:00+00:00"]
