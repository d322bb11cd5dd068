"""WaitFor and LoopUntil: run a flowable's tasks again, iteration after iteration, until a condition holds.

Each iteration's task runs carry the iteration number. When an iteration ends well, the parent's join
asks `next_iteration`: it renders the condition against the execution (with the loop's
`iterationCount` output) and, if another iteration is due, records it and sets the loop's due time;
the sweeper dispatches the next iteration then. Waiting lives in the database, not in the broker.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import is_true, render, render_value
from orchestrator.core.flow import Flow, TaskSpec
from orchestrator.core.states import State
from orchestrator.engine.values import LogRecord, log_row
from orchestrator.engine.variables import execution_variables
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

LOOP_TYPES = frozenset({"WaitFor", "LoopUntil"})


@dataclass(frozen=True)
class _Frequency:
    max_iterations: int | None
    max_duration: timedelta | None
    interval: timedelta


# WaitFor's defaults are its CheckFrequency's in Kestra 0.20; LoopUntil's (which took WaitFor's place later)
# are unlimited iterations and duration, one minute apart.
_WAIT_FOR = _Frequency(100, timedelta(hours=1), timedelta(seconds=1))
_LOOP_UNTIL = _Frequency(None, None, timedelta(minutes=1))


def _frequency(spec: TaskSpec, render_value: Any) -> _Frequency:
    defaults = _WAIT_FOR if spec.type == "WaitFor" else _LOOP_UNTIL
    raw: dict[str, Any] = spec.properties.get("checkFrequency") or {}  # type: ignore[assignment]
    raw = {k: render_value(v) for k, v in raw.items() if v is not None}
    return _Frequency(
        int(raw["maxIterations"]) if "maxIterations" in raw else defaults.max_iterations,
        parse_duration(str(raw["maxDuration"])) if "maxDuration" in raw else defaults.max_duration,
        parse_duration(str(raw["interval"])) if "interval" in raw else defaults.interval,
    )


def _reached(frequency: _Frequency, count: int, parent: TaskRunRow, now: datetime) -> bool:
    """Whether the next iteration (`count`) would pass a limit: `maxIterations` iterations have run, or
    `maxDuration` has passed since the loop started."""
    limit = frequency.max_iterations
    if limit is not None and count > limit:
        return True
    return frequency.max_duration is not None and _started_at(parent) + frequency.max_duration < now


def _started_at(parent: TaskRunRow) -> datetime:
    """When the loop (re)started: its last restart, else its creation. A restarted LoopUntil gets its whole
    `maxDuration` again (Kestra's RestartCaseTest.restartOrReplayLoopUntil)."""
    restarts = [h.get("date") for h in parent.state_history or [] if h.get("state") == str(State.RESTARTED)]
    if restarts and isinstance(restarts[-1], str):
        with contextlib.suppress(ValueError):
            restarted = datetime.fromisoformat(restarts[-1].replace("Z", "+00:00"))
            return restarted if restarted.tzinfo else restarted.replace(tzinfo=UTC)
    return parent.created_at


def next_iteration(
    engine: Engine, session: Session, execution: ExecutionRow, flow: Flow, spec: TaskSpec, parent: TaskRunRow
) -> bool:
    """Schedule the next iteration when the condition and the limits allow; False when the loop is over.

    As Kestra's LoopUntil (and WaitFor, its older name) and its LoopUntilCaseTest: the first iteration runs
    with iterationCount 1; once one ends, a truthy condition ends the loop (the count stays), otherwise the
    count goes up and a reached limit ends it (failing with `failOnMaxReached`), else the next one is due.
    """
    iteration = int((parent.decision or {}).get("loop", 0))
    runs = store.task_runs_of(session, execution.id)
    variables = execution_variables(execution, flow, spec, parent, runs)
    now = store.transaction_now(session)  # retry_at: by the database clock
    try:
        done = is_true(render(str(spec.properties.get("condition", "false")), variables))
    except ExpressionError as e:
        # Kestra renders the condition in LoopUntil.resolveState: an error there fails the loop task run
        # (LoopUntilCaseTest#loopUntilFailedFlowable: `iterationCount < "5"` compares a number with text).
        parent.decision = {**(parent.decision or {}), "max_reached": False, "condition_error": str(e)}
        record = LogRecord("ERROR", f"Unable to render the condition of {spec.id}: {e}", now)
        store.insert_log_lines(session, [log_row(execution, parent, record, engine.settings.max_log_line_chars)])
        session.flush()
        return False
    if done:
        parent.decision = {**(parent.decision or {}), "max_reached": False}
        session.flush()
        return False
    count = iteration + 2
    parent.outputs = {**(parent.outputs or {}), "iterationCount": count}
    frequency = _frequency(spec, lambda value: render_value(value, variables))
    if _reached(frequency, count, parent, now):
        parent.decision = {**(parent.decision or {}), "max_reached": True}
        session.flush()
        return False
    parent.decision = {**(parent.decision or {}), "loop": iteration + 1}
    parent.retry_at = now + frequency.interval
    session.flush()
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
    """A loop whose condition could not be rendered fails; one that reached a limit fails only with
    `failOnMaxReached`."""
    if (parent.decision or {}).get("condition_error"):
        return State.FAILED
    fail = spec.properties.get("failOnMaxReached")
    if (parent.decision or {}).get("max_reached") and str(fail).lower() == "true":
        return State.FAILED
    return state
