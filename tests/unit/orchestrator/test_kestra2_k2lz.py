"""Kestra 2.x behaviours of the k2lz slice, pure: Loop terminatedIterations, the `tasks` variable, tasksWithState()."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import render
from orchestrator.core.parse import parse_flow
from orchestrator.engine import loop_scope
from orchestrator.engine.variables import task_states
from orchestrator.store.tables import TaskRunRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _loop(transmit: bool) -> Any:
    return parse_flow(
        "id: f\nnamespace: t\ntasks:\n  - id: loop\n    type: Loop\n    values: [a, b, c]\n"
        f"    transmitFailed: {str(transmit).lower()}\n    tasks:\n      - {{id: leaf, type: Return, format: x}}\n"
    ).tasks[0]


def _run(
    run_id: str, task_id: str, parent: str | None, iteration: int | None, state: str, ended: int, **extra: Any
) -> TaskRunRow:
    return TaskRunRow(
        id=run_id, task_id=task_id, parent_id=parent, iteration=iteration, state=state,
        updated_at=T0 + timedelta(seconds=ended), **extra,
    )  # fmt: skip


def _runs(*iterations: tuple[str, int]) -> list[TaskRunRow]:
    loop = _run("L", "loop", None, None, "RUNNING", 0, decision={"values": ["a", "b", "c"]})
    return [loop, *(_run(f"r{i}", "leaf", "L", i, state, ended) for i, (state, ended) in enumerate(iterations))]


def _terminated(transmit: bool, runs: list[TaskRunRow]) -> dict[str, int]:
    outputs = loop_scope.final_outputs(_loop(transmit), runs[0], runs, lambda run: {"outputs": {}})
    return outputs["terminatedIterations"]


def test_a_failed_iteration_ends_the_count_of_a_transmitting_loop_in_the_order_iterations_ended() -> None:
    # iteration 1 ended first and failed: 0 and 2 (still running in Kestra) are not counted
    assert _terminated(True, _runs(("FAILED", 5), ("FAILED", 1), ("SUCCESS", 3))) == {"FAILED": 1}
    # iteration 2 succeeded before iteration 0 failed: both counted, not iteration 1 (ended after)
    assert _terminated(True, _runs(("FAILED", 2), ("SUCCESS", 9), ("SUCCESS", 1))) == {"SUCCESS": 1, "FAILED": 1}


def test_a_loop_that_keeps_failures_counts_every_iteration() -> None:
    assert _terminated(False, _runs(("FAILED", 5), ("FAILED", 1), ("SUCCESS", 3))) == {"FAILED": 2, "SUCCESS": 1}
    assert _terminated(True, _runs(("SUCCESS", 5), ("SUCCESS", 1), ("SUCCESS", 3))) == {"SUCCESS": 3}


def test_the_tasks_variable_keys_loop_task_runs_by_value() -> None:
    runs = [
        _run("1", "hello", None, None, "SUCCESS", 0),
        _run("2", "each", None, None, "RUNNING", 0),
        _run("3", "leaf", "2", 0, "FAILED", 0, value="a"),
        _run("4", "leaf", "2", 1, "SUCCESS", 0, value="b"),
    ]
    assert task_states(runs) == {
        "hello": {"state": "SUCCESS"},
        "each": {"state": "RUNNING"},
        "leaf": {"a": {"state": "FAILED"}, "b": {"state": "SUCCESS"}},
    }


TASKS = {"tasks": {"hello": {"state": "SUCCESS"}, "leaf": {"a": {"state": "FAILED"}}, "will_fail": {"state": "FAILED"}}}


def test_tasks_with_state_lists_task_runs_and_loop_iterations_in_a_state() -> None:
    assert render("{{ tasksWithState(state='success') | length }}", TASKS) == "1"
    assert render("{{ tasksWithState() | jq('.[].taskId') | join(',') }}", TASKS) == "leaf,will_fail"
    assert render("{{ tasksWithState(state='FAILED')[0].value }}", TASKS) == "a"
    assert render("{{ tasksWithState(state='KILLED') is empty }}", TASKS) == "true"
    assert render("{{ tasksWithState(state='FAILED') is empty }}", {}) == "true"


def test_tasks_with_state_refuses_a_state_that_is_not_a_name() -> None:
    with pytest.raises(ExpressionError, match="tasksWithState"):
        render("{{ tasksWithState(state=3) }}", TASKS)
