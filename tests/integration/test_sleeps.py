"""Sleeps (orchestrator.engine.sleeps): the first claim records when a Sleep ends; parking lets go of the claim."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator import store
from orchestrator.engine import ClaimedTaskRun, Engine, LogRecord, TaskRunCoordinates, sleeps
from orchestrator.store.database import read_only, transaction
from tests.harness.engines import EngineFactory

FLOW = """
id: naps
namespace: tests.sleeps
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1H
{timeout}
"""


@pytest.fixture
def engine(database_url: str, engine_factory: EngineFactory) -> Engine:
    return engine_factory(database_url)


def _claimed_sleep(engine: Engine, timeout: str = "") -> ClaimedTaskRun:
    row = engine.deploy_flow(FLOW.format(timeout=timeout), actor="test")
    with transaction(engine.sessions) as session:
        execution = engine.create_execution(session, row, engine.flow_of(row), {}, [], actor="test")
    claimed = engine.claim(TaskRunCoordinates(execution.id, "nap", None, None, 1), owner="w1", celery_task_id="c1")
    assert claimed is not None
    return claimed


def test_the_first_claim_records_when_the_sleep_ends(engine: Engine) -> None:
    claimed = _claimed_sleep(engine)
    before = store.utcnow()

    end = sleeps.begin(engine, claimed, timedelta(hours=1))

    assert end is not None and end.fresh and not end.timed_out
    assert before + timedelta(hours=1) <= end.due <= store.utcnow() + timedelta(hours=1)


def test_a_later_begin_reads_the_recorded_end_back(engine: Engine) -> None:
    claimed = _claimed_sleep(engine)
    first = sleeps.begin(engine, claimed, timedelta(hours=1))

    again = sleeps.begin(engine, claimed, timedelta(hours=1))

    assert first is not None and again is not None
    assert (again.due, again.fresh) == (first.due, False)


def test_a_timeout_shorter_than_the_sleep_ends_it_by_timeout(engine: Engine) -> None:
    claimed = _claimed_sleep(engine, timeout="    timeout: PT10S")

    end = sleeps.begin(engine, claimed, timedelta(hours=1))

    assert end is not None and end.timed_out
    assert end.due <= store.utcnow() + timedelta(seconds=10)


def test_a_claim_that_is_not_the_owner_gets_no_end(engine: Engine) -> None:
    claimed = _claimed_sleep(engine)
    stranger = ClaimedTaskRun(claimed.coordinates, "w2", claimed.flow, claimed.task, claimed.variables)

    assert sleeps.begin(engine, stranger, timedelta(hours=1)) is None


def test_parking_lets_go_of_the_claim_until_the_end_and_keeps_the_run_running(engine: Engine) -> None:
    claimed = _claimed_sleep(engine)
    end = sleeps.begin(engine, claimed, timedelta(hours=1))
    assert end is not None

    sleeps.park(engine, claimed, end.due, (LogRecord("INFO", "sleeping", store.utcnow()),))

    with read_only(engine.sessions) as session:
        row = store.get_task_run(session, claimed.coordinates.task_run_id)
        assert row is not None
        assert (row.state, row.claim_owner, row.retry_at) == ("RUNNING", None, end.due)
