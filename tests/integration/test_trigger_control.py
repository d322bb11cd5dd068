"""Trigger control against a real database: enable/disable, unlock, and backfills fired by the scheduler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from orchestrator.core.errors import Conflict, InputInvalid, NotFound
from orchestrator.engine import Engine
from orchestrator.store.tables import AuditEventRow
from orchestrator.triggers import control as trigger_control
from orchestrator.triggers.scheduler import Scheduler
from tests.integration.scheduling import HOURLY, START, FakeClock, engine, executions_of

__all__ = ["engine"]  # the fixture, shared with the scheduler tests

KEY = ("tests.triggers", "hourly", "every-hour")


def test_a_backfill_of_100_slots_creates_100_executions_no_more(engine: Engine) -> None:
    engine.deploy_flow(HOURLY, actor="t")
    clock = FakeClock(START)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    trigger_control.start_backfill(
        engine, KEY, start, start + timedelta(hours=99), labels=[{"key": "team", "value": "data"}], actor="user:ann"
    )
    for _ in range(4):  # more ticks than needed: a finished backfill creates nothing more
        Scheduler(engine, clock).tick()
    executions = executions_of(engine, "hourly")
    assert len(executions) == 100
    dates = sorted(e.trigger["variables"]["date"] for e in executions if e.trigger)
    assert dates[0] == "2025-01-01T00:00:00+00:00" and dates[-1] == "2025-01-05T03:00:00+00:00"
    assert len(set(dates)) == 100
    labels = executions[0].labels
    assert {"key": "system.backfill", "value": "true"} in labels and {"key": "team", "value": "data"} in labels
    [row] = trigger_control.list_triggers(engine, "tests.triggers")
    assert "backfill" not in row.state


def test_a_paused_backfill_fires_nothing_until_resumed_and_a_cancelled_one_stops(engine: Engine) -> None:
    engine.deploy_flow(HOURLY, actor="t")
    clock = FakeClock(START)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    trigger_control.start_backfill(engine, KEY, start, start + timedelta(hours=2), actor="user:ann")
    trigger_control.pause_backfill(engine, KEY, True, actor="user:ann")
    assert Scheduler(engine, clock).tick() == []
    with pytest.raises(Conflict, match="already has a backfill in progress"):
        trigger_control.start_backfill(engine, KEY, start, start, actor="user:ann")
    trigger_control.cancel_backfill(engine, KEY, actor="user:ann")
    assert Scheduler(engine, clock).tick() == []
    with pytest.raises(Conflict, match="has no backfill in progress"):
        trigger_control.pause_backfill(engine, KEY, False, actor="user:ann")


def test_a_backfill_ending_before_it_starts_is_refused(engine: Engine) -> None:
    engine.deploy_flow(HOURLY, actor="t")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(InputInvalid) as caught:
        trigger_control.start_backfill(engine, KEY, start, start - timedelta(hours=1), actor="user:ann")
    assert caught.value.input_id == "end"


def test_a_disabled_trigger_skips_its_slots_and_resumes_at_the_next_one(engine: Engine) -> None:
    engine.deploy_flow(HOURLY, actor="t")
    clock = FakeClock(START)
    Scheduler(engine, clock).tick()
    row = trigger_control.set_enabled(engine, KEY, False, actor="user:ann")
    assert row.enabled is False
    clock.advance(timedelta(hours=3))
    assert Scheduler(engine, clock).tick() == []
    row = trigger_control.set_enabled(engine, KEY, True, actor="user:ann")
    assert row.next_fire_at is not None and row.next_fire_at > datetime.now(UTC)  # missed slots are not replayed
    with engine.sessions() as session:
        actions = session.scalars(select(AuditEventRow.action).where(AuditEventRow.actor == "user:ann")).all()
    assert list(actions) == ["trigger.disabled", "trigger.enabled"]


def test_unlock_reschedules_at_the_next_slot(engine: Engine) -> None:
    engine.deploy_flow(HOURLY, actor="t")
    row = trigger_control.unlock(engine, KEY, actor="user:ann")
    assert row.next_fire_at is not None and row.next_fire_at.minute == 0 and row.last_execution_id is None


def test_an_unknown_trigger_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound):
        trigger_control.set_enabled(engine, ("nope", "nope", "nope"), False, actor="user:ann")


def test_toggle_without_a_state_flips_the_trigger(engine: Engine) -> None:
    engine.deploy_flow(HOURLY, actor="t")
    assert trigger_control.set_enabled(engine, KEY, None, actor="task:x").enabled is False
    assert trigger_control.set_enabled(engine, KEY, None, actor="task:x").enabled is True
    assert trigger_control.set_enabled(engine, KEY, True, actor="task:x").enabled is True


def test_a_backfill_label_without_key_and_value_is_refused(engine: Engine) -> None:
    engine.deploy_flow(HOURLY, actor="t")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(InputInvalid) as caught:
        trigger_control.start_backfill(engine, KEY, start, start, labels=[{"name": "x"}], actor="user:ann")
    assert caught.value.input_id == "labels"
