"""Inline task runs: one transaction claims, runs and records a stretch of pure control tasks and the join.

The engine is driven directly on a real PostgreSQL with the worker's own `run_claimed`, so a crash can be
placed exactly between two task runs of one message.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from orchestrator.core.states import State
from orchestrator.engine import ClaimedTaskRun, Engine, TaskOutcome, TaskRunCoordinates
from orchestrator.store.database import transaction
from orchestrator.store.tables import AuditEventRow, ExecutionRow, LogLineRow, TaskRunRow
from tests.harness.engines import EngineFactory
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
def engine(database_url: str, engine_factory: EngineFactory) -> Engine:
    engine = engine_factory(database_url)
    engine.deploy_flow(FLOW, actor="test")
    return engine


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


def _run_independent(
    engine: Engine, execution_id: str, runs: list[TaskRunCoordinates], seen: list[str], *, join: bool
) -> str:
    def run(claimed: ClaimedTaskRun) -> TaskOutcome:
        seen.append(claimed.task.id)
        return run_claimed(claimed, engine)

    verdict, plan, _ = engine.run_inline(
        execution_id,
        runs,
        join=join,
        skip_runs=False,
        owner="w1",
        celery_task_id="chunk1",
        requested_by=None,
        run=run,
        independent=True,
    )
    assert plan is None
    return verdict


def test_an_independent_message_runs_every_sibling_past_a_failure(engine: Engine) -> None:
    execution_id, runs = _execution(engine, fail=True)
    seen: list[str] = []

    verdict = _run_independent(engine, execution_id, runs, seen, join=True)

    assert verdict == "stop"
    assert seen == ["a", "b", "c", "d"]  # d ran after c failed
    assert engine.task_run_state(runs[2].task_run_id) == "FAILED"
    assert engine.task_run_state(runs[3].task_run_id) == "SUCCESS"
    assert _state(engine, execution_id) == "FAILED"


def test_an_independent_message_redelivered_runs_nothing_again_not_even_its_failed_task_run(engine: Engine) -> None:
    execution_id, runs = _execution(engine, fail=True)
    first: list[str] = []
    assert _run_independent(engine, execution_id, runs, first, join=False) == "stop"
    assert _state(engine, execution_id) == "RUNNING"  # no join yet: other chunks may still run
    after = _counts(engine, execution_id)
    again: list[str] = []

    assert _run_independent(engine, execution_id, runs, again, join=False) == "ok"  # nothing ran, nothing failed

    assert again == []  # the FAILED one is passed over too, not re-run
    assert _counts(engine, execution_id) == after
    assert engine.task_run_state(runs[2].task_run_id) == "FAILED"


OUTPUTS_FLOW = """
id: outputs
namespace: tests.inline
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: second
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.first.value }} then two"
  - id: third
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.second.value }} then three"
"""


def test_each_task_run_of_one_message_sees_the_outputs_of_those_before_it(engine: Engine) -> None:
    row = engine.deploy_flow(OUTPUTS_FLOW, actor="test")
    with transaction(engine.sessions) as session:
        execution = engine.create_execution(session, row, engine.flow_of(row), {}, [], actor="test")
    runs = [TaskRunCoordinates(execution.id, t, None, None, 1) for t in ("first", "second", "third")]

    _run(engine, execution.id, runs)

    with engine.sessions() as session:
        third = session.get(TaskRunRow, runs[2].task_run_id)
        assert third is not None and third.outputs == {"value": "one then two then three"}
