"""Inline task runs: one transaction claims, runs and records a stretch of pure control tasks and the join.

The engine is driven directly on a real PostgreSQL with the worker's own `run_claimed`, so a crash can be
placed exactly between two task runs of one message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select

from orchestrator.celery_app import create_celery_app
from orchestrator.core.states import State
from orchestrator.engine import ClaimedTaskRun, Engine, TaskOutcome, TaskRunCoordinates
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker, transaction
from orchestrator.store.tables import AuditEventRow, ExecutionRow, LogLineRow, TaskRunRow
from orchestrator.triggers.wiring import build_engine
from workers.runtime import run_claimed

FLOW = """
id: inline
namespace: tests.inline
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: first
  - id: b
    type: io.kestra.plugin.core.debug.Return
    format: "{{ taskrun.attemptsCount }}"
  - id: c
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ inputs.fail }}"
    errorMessage: failed on purpose
  - id: d
    type: io.kestra.plugin.core.log.Log
    message: never after a failure
inputs:
  - id: fail
    type: BOOLEAN
    defaults: false
"""


class Crash(BaseException):
    """A worker dying mid-message (BaseException: not a task failure)."""


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    settings = load_settings(database_url=database_url)
    db = make_engine(database_url, pool_size=2)
    app = create_celery_app(settings)
    try:
        engine = build_engine(settings, make_sessionmaker(db), app)
        engine.deploy_flow(FLOW, actor="test")
        yield engine
    finally:
        app.close()
        db.dispose()


def _execution(engine: Engine, *, fail: bool = False) -> tuple[str, list[TaskRunCoordinates]]:
    row = engine.deploy_flow(FLOW, actor="test")
    with transaction(engine.sessions) as session:
        execution = engine.create_execution(session, row, engine.flow_of(row), {"fail": fail}, [], actor="test")
    return execution.id, [TaskRunCoordinates(execution.id, t, None, None, 1) for t in "abcd"]


def _run(
    engine: Engine,
    execution_id: str,
    runs: list[TaskRunCoordinates],
    *,
    run: Callable[[ClaimedTaskRun], TaskOutcome] | None = None,
    celery_task_id: str = "m1",
    requested_by: str | None = None,
) -> tuple[str, bool]:
    verdict, plan, reapplied = engine.run_inline(
        execution_id,
        runs,
        join=True,
        skip_runs=False,
        owner="w1",
        celery_task_id=celery_task_id,
        requested_by=requested_by,
        run=run or (lambda claimed: run_claimed(claimed, engine)),
    )
    assert plan is None
    return verdict, reapplied


def _counts(engine: Engine, execution_id: str) -> tuple[int, int, int]:
    with engine.sessions() as session:
        return (
            session.scalar(select(func.count()).where(TaskRunRow.execution_id == execution_id)) or 0,
            session.scalar(select(func.count()).where(LogLineRow.execution_id == execution_id)) or 0,
            session.scalar(select(func.count()).where(AuditEventRow.chain_key == execution_id)) or 0,
        )


def _state(engine: Engine, execution_id: str) -> str:
    with engine.sessions() as session:
        row = session.get(ExecutionRow, execution_id)
        assert row is not None
        return row.state


def test_one_message_runs_every_task_and_ends_the_execution_in_one_transaction(engine: Engine) -> None:
    execution_id, runs = _execution(engine)

    verdict, _ = _run(engine, execution_id, runs)

    assert verdict == "stop"  # the root join ended the execution: nothing follows it
    assert _state(engine, execution_id) == "SUCCESS"
    assert _counts(engine, execution_id)[:2] == (4, 2)
    assert engine.task_run_state(runs[1].task_run_id) == "SUCCESS"


def test_a_crash_between_two_task_runs_leaves_nothing_and_a_redelivery_does_the_whole_message(
    engine: Engine,
) -> None:
    execution_id, runs = _execution(engine)
    before = _counts(engine, execution_id)
    seen: list[str] = []

    def crash_on_b(claimed: ClaimedTaskRun) -> TaskOutcome:
        seen.append(claimed.task.id)
        if claimed.task.id == "b":
            raise Crash
        return run_claimed(claimed, engine)

    with pytest.raises(Crash):
        _run(engine, execution_id, runs, run=crash_on_b)

    assert seen == ["a", "b"]
    assert _counts(engine, execution_id) == before  # task run a, its log and its audit rolled back with b
    assert _state(engine, execution_id) == "RUNNING"

    verdict, _ = _run(engine, execution_id, runs, celery_task_id="m1")  # the same message, redelivered

    assert verdict == "stop"
    assert _state(engine, execution_id) == "SUCCESS"
    assert _counts(engine, execution_id)[0] == 4


def test_a_failure_stops_the_stretch_and_the_join_ends_the_execution_failed(engine: Engine) -> None:
    execution_id, runs = _execution(engine, fail=True)

    verdict, _ = _run(engine, execution_id, runs)

    assert verdict == "stop"
    assert _state(engine, execution_id) == "FAILED"
    assert engine.task_run_state(runs[2].task_run_id) == "FAILED"
    assert engine.task_run_state(runs[3].task_run_id) is None  # d never started


def test_a_redelivery_after_commit_records_nothing_more(engine: Engine) -> None:
    execution_id, runs = _execution(engine)
    _run(engine, execution_id, runs)
    after = _counts(engine, execution_id)

    assert _run(engine, execution_id, runs) == ("stop", False)
    assert _counts(engine, execution_id) == after


def test_a_re_applied_message_restarts_its_failed_task_run_and_finishes_the_flow(engine: Engine) -> None:
    execution_id, runs = _execution(engine, fail=True)
    _run(engine, execution_id, runs)
    assert _state(engine, execution_id) == "FAILED"

    # An operator re-applies the message (a new Celery id): the failed task run gets attempt 2. Its
    # condition still holds, so it fails again; what matters is the new attempt and the restart.
    verdict, reapplied = _run(engine, execution_id, runs, celery_task_id="m2", requested_by="flower:ops")

    assert reapplied is True and verdict == "stop"
    assert engine.task_run_attempt(runs[2].task_run_id) == 2
    assert _state(engine, execution_id) == "FAILED"
    assert State(engine.task_run_state(runs[0].task_run_id) or "") is State.SUCCESS  # passed over, not re-run
