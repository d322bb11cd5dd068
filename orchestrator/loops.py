"""WaitFor and LoopUntil: run a flowable's tasks again, iteration after iteration, while a condition says so.

Each iteration's task runs carry the iteration number. When an iteration ends well, the parent's join
asks `next_iteration`: it renders the condition against the execution (with the loop's
`iterationCount` output) and, if another iteration is due, records it and sets the loop's due time;
the sweeper dispatches the next iteration then. Waiting lives in the database, not in the broker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from orchestrator import store
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import is_true, render
from orchestrator.core.flow import Flow, TaskSpec
from orchestrator.core.states import State
from orchestrator.tables import ExecutionRow, TaskRunRow
from orchestrator.variables import execution_variables

if TYPE_CHECKING:
    from orchestrator.engine import Engine

LOOP_TYPES = frozenset({"WaitFor", "LoopUntil"})
_DEFAULT_MAX_ITERATIONS = 100
_DEFAULT_MAX_DURATION = timedelta(hours=1)
_DEFAULT_INTERVAL = timedelta(seconds=1)


def _frequency(spec: TaskSpec) -> tuple[int, timedelta, timedelta]:
    raw: dict[str, Any] = spec.properties.get("checkFrequency") or {}  # type: ignore[assignment]
    max_iterations = int(raw.get("maxIterations") or _DEFAULT_MAX_ITERATIONS)
    max_duration = parse_duration(str(raw["maxDuration"])) if raw.get("maxDuration") else _DEFAULT_MAX_DURATION
    interval = parse_duration(str(raw["interval"])) if raw.get("interval") else _DEFAULT_INTERVAL
    return max_iterations, max_duration, interval


def _again(spec: TaskSpec, condition: bool) -> bool:
    # WaitFor keeps going while its condition holds; LoopUntil until it holds.
    return condition if spec.type == "WaitFor" else not condition


def next_iteration(
    engine: Engine, session: Session, execution: ExecutionRow, flow: Flow, spec: TaskSpec, parent: TaskRunRow
) -> bool:
    """Schedule the next iteration when the condition and the limits allow; False when the loop is over."""
    iteration = int((parent.decision or {}).get("loop", 0))
    runs = store.task_runs_of(session, execution.id)
    variables = execution_variables(execution, flow, spec, parent, runs)
    try:
        condition = is_true(render(str(spec.properties.get("condition", "false")), variables))
    except ExpressionError:
        return False
    max_iterations, max_duration, interval = _frequency(spec)
    now = store.utcnow()
    within_limits = iteration + 1 < max_iterations and now + interval - parent.created_at <= max_duration
    if not _again(spec, condition) or not within_limits:
        reached = _again(spec, condition)
        session.execute(
            update(TaskRunRow)
            .where(TaskRunRow.id == parent.id)
            .values(decision={**(parent.decision or {}), "max_reached": reached})
        )
        parent.decision = {**(parent.decision or {}), "max_reached": reached}
        return False
    decision = {**(parent.decision or {}), "loop": iteration + 1}
    outputs = {**(parent.outputs or {}), "iterationCount": iteration + 1}
    session.execute(
        update(TaskRunRow)
        .where(TaskRunRow.id == parent.id)
        .values(decision=decision, outputs=outputs, retry_at=now + interval)
    )
    store.append_audit(
        session,
        execution.id,
        actor="system:loop",
        action="task_run.iteration",
        subject=parent.id,
        payload={"task_id": parent.task_id, "iteration": iteration + 1},
    )
    return True


def final_state(spec: TaskSpec, parent: TaskRunRow, state: State) -> State:
    """A loop that ran out of iterations fails only with `failOnMaxReached`."""
    if (parent.decision or {}).get("max_reached") and spec.properties.get("failOnMaxReached"):
        return State.FAILED
    return state
