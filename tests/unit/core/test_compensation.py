"""Declarative compensation decided from a flow and its task runs alone: order, phases, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.compensation import is_compensation, steps
from orchestrator.core.errors import FlowInvalid
from orchestrator.core.ids import task_run_id
from orchestrator.core.parse import parse_flow
from orchestrator.core.plan import (
    Chain,
    Complete,
    Join,
    Run,
    Snapshot,
    StartPhase,
    TaskRunView,
    Wait,
    child_lists,
    decide_join,
    remaining,
    with_compensation,
)
from orchestrator.core.states import State

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EX = "exec1"

SAGA = parse_flow(
    """
id: saga
namespace: tests
tasks:
  - id: hotel
    type: io.kestra.plugin.core.log.Log
    message: book hotel
    compensate:
      - id: unhotel
        type: io.kestra.plugin.core.log.Log
        message: cancel {{ compensation.task }}
  - id: flight
    type: io.kestra.plugin.core.log.Log
    message: book flight
    compensate:
      - id: unflight
        type: io.kestra.plugin.core.log.Log
        message: cancel flight
      - id: unflight-notify
        type: io.kestra.plugin.core.log.Log
        message: tell the airline
  - id: charge
    type: io.kestra.plugin.core.execution.Fail
    compensate:
      - id: refund
        type: io.kestra.plugin.core.log.Log
        message: refund
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    message: alert
finally:
  - id: cleanup
    type: io.kestra.plugin.core.log.Log
    message: cleanup
"""
)


def run(task_id: str, state: State, parent: str | None = None, *, ended: int = 0, attempt: int = 1) -> TaskRunView:
    return TaskRunView(
        task_run_id(EX, task_id, parent, None),
        task_id,
        parent,
        None,
        state,
        attempt,
        updated_at=NOW + timedelta(seconds=ended),
    )


def snap(*runs: TaskRunView) -> Snapshot:
    return Snapshot(EX, {r.id: r for r in runs}, NOW)


def inline(task_id: str, parent: str | None) -> Run:
    return Run(EX, task_id, parent, None, 1, "control", enter=False, inline=True)


HOTEL = run("hotel", State.SUCCESS, ended=1)
FLIGHT = run("flight", State.SUCCESS, ended=2)
CHARGE = run("charge", State.FAILED, ended=3)
ALERT = run("alert", State.SUCCESS, ended=4)


def _join(s: Snapshot) -> StartPhase | Wait | Complete:
    return decide_join(with_compensation(SAGA, child_lists(SAGA, None, {}), s), None, s)


def test_succeeded_task_runs_are_undone_latest_first_each_in_its_yaml_order() -> None:
    order = [(task.id, undone) for task, undone in steps(SAGA, [HOTEL, FLIGHT, CHARGE].__iter__())]

    assert order == [("unflight", FLIGHT.id), ("unflight-notify", FLIGHT.id), ("unhotel", HOTEL.id)]


def test_the_failed_task_is_not_compensated() -> None:
    assert all(task.id != "refund" for task, _ in steps(SAGA, [HOTEL, FLIGHT, CHARGE]))


def test_compensation_starts_after_errors_and_before_finally() -> None:
    assert isinstance(_join(snap(HOTEL, FLIGHT, CHARGE)), StartPhase)  # errors first
    decision = _join(snap(HOTEL, FLIGHT, CHARGE, ALERT))

    assert isinstance(decision, StartPhase)
    assert [(s.task.id, s.undoes) for s in decision.lanes[0]] == [
        ("unflight", FLIGHT.id),
        ("unflight-notify", FLIGHT.id),
        ("unhotel", HOTEL.id),
    ]


def test_the_compensation_plan_runs_each_step_under_the_run_it_undoes_then_joins_the_root() -> None:
    started = run("unflight", State.SUCCESS, FLIGHT.id, ended=5)

    plan = remaining(SAGA, snap(HOTEL, FLIGHT, CHARGE, ALERT, started))

    assert plan == Chain((inline("unflight-notify", FLIGHT.id), inline("unhotel", HOTEL.id), Join(EX, None)))


def test_a_compensation_waiting_for_its_retry_holds_the_root() -> None:
    retrying = run("unflight", State.RETRYING, FLIGHT.id, ended=5)

    assert isinstance(_join(snap(HOTEL, FLIGHT, CHARGE, ALERT, retrying)), Wait)


def test_a_failed_compensation_stops_the_unwinding_and_finally_runs() -> None:
    failed = run("unflight", State.FAILED, FLIGHT.id, ended=5)

    decision = _join(snap(HOTEL, FLIGHT, CHARGE, ALERT, failed))

    assert isinstance(decision, StartPhase)
    assert [s.task.id for s in decision.lanes[0]] == ["cleanup"]


def test_a_compensated_execution_still_fails() -> None:
    done = [run(t, State.SUCCESS, FLIGHT.id, ended=5) for t in ("unflight", "unflight-notify")]
    unhotel = run("unhotel", State.SUCCESS, HOTEL.id, ended=6)
    cleanup = run("cleanup", State.SUCCESS, ended=7)

    assert _join(snap(HOTEL, FLIGHT, CHARGE, ALERT, *done, unhotel, cleanup)) == Complete(State.FAILED)


def test_a_successful_execution_compensates_nothing() -> None:
    decision = _join(snap(HOTEL, FLIGHT, run("charge", State.SUCCESS, ended=3)))

    assert isinstance(decision, StartPhase) and [s.task.id for s in decision.lanes[0]] == ["cleanup"]


def test_compensation_tasks_are_known_as_such() -> None:
    assert is_compensation(SAGA, "unflight-notify")
    assert not is_compensation(SAGA, "flight")


def test_a_compensation_with_its_own_compensate_is_refused_with_its_path() -> None:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(
            """
id: bad
namespace: tests
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: a
    compensate:
      - id: undo-a
        type: io.kestra.plugin.core.log.Log
        message: undo
        compensate:
          - id: undo-undo
            type: io.kestra.plugin.core.log.Log
            message: no
"""
        )
    assert "tasks[0].compensate[0].compensate" in str(caught.value)
    assert "cannot have a 'compensate' of its own" in str(caught.value)


def test_an_empty_compensate_list_is_refused() -> None:
    with pytest.raises(FlowInvalid, match=r"tasks\[0\].compensate .*must contain at least one task"):
        parse_flow(
            "id: bad\nnamespace: tests\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
            "    message: a\n    compensate: []\n"
        )
