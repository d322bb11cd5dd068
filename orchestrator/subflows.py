"""Subflows: a task run that starts a child execution and ends when the child ends.

The parent task run stays RUNNING with `decision.subflow` naming the child; the planner treats it as
waiting (like a pause), so no re-dispatch starts a second child. When the child reaches a terminal
state, `on_child_ended` completes the parent task run from the child's state and outputs, and
dispatches what remains of the parent execution.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core.errors import ChorusError, ExpressionError
from orchestrator.core.expressions import render_value
from orchestrator.core.inputs import coerce_inputs
from orchestrator.core.states import State
from orchestrator.variables import base_variables

if TYPE_CHECKING:
    from orchestrator.engine import ClaimedTaskRun, Engine

logger = logging.getLogger(__name__)


def start(
    engine: Engine,
    claimed: ClaimedTaskRun,
    *,
    namespace: str,
    flow_id: str,
    inputs: dict[str, Any],
    labels: list[dict[str, str]],
    wait: bool,
    revision: int | None = None,
) -> str:
    """Create the child execution for a claimed Subflow task run; the verdict for the parent's chain."""
    from orchestrator.engine import STOP, LogRecord, TaskOutcome, _still_ours

    at = claimed.coordinates
    with engine._tx() as session:
        parent = store.lock_execution(session, at.execution_id)
        row = store.get_task_run(session, at.task_run_id, lock=True)
        if parent is None or row is None or not _still_ours(row, claimed):
            return STOP
        try:
            flow_row = engine._live_flow(session, namespace, flow_id, revision)
            flow = engine.flow_of(flow_row)
            typed = coerce_inputs(flow, inputs)
        except ChorusError as e:
            outcome = TaskOutcome(
                State.FAILED,
                logs=(LogRecord("ERROR", e.message, store.utcnow()),),
                error=e.message,
                retryable=False,
            )
            return engine.complete_task_run(session, parent, row, claimed.task, claimed.flow, outcome, actor="system")
        trigger = {
            "id": claimed.task.id,
            "type": claimed.task.type_name,
            "variables": {
                "executionId": parent.id,
                "namespace": parent.namespace,
                "flowId": parent.flow_id,
                "flowRevision": parent.flow_revision,
            },
        }
        child = engine.create_execution(
            session,
            flow_row,
            flow,
            typed,
            labels,
            actor=f"execution:{parent.id}",
            trigger=trigger,
            parent=(parent.id, row.id) if wait else None,
        )
        row.decision = {"subflow": child.id} if wait else {}
        row.outputs = {"executionId": child.id}
        session.flush()
        verdict = STOP
        if not wait:
            outcome = TaskOutcome(State.SUCCESS, outputs={"executionId": child.id})
            verdict = engine.complete_task_run(
                session, parent, row, claimed.task, claimed.flow, outcome, actor=f"worker:{claimed.owner}"
            )
    engine.dispatch(child.id, actor=f"execution:{at.execution_id}")
    return STOP if wait else verdict  # a waiting parent continues from on_child_ended


def on_child_ended(engine: Engine, child_id: str) -> None:
    """Complete the waiting parent task run of a child execution that just ended, then continue the parent."""
    from orchestrator.engine import TaskOutcome

    with engine._tx() as session:
        child = store.get_execution(session, child_id)
        if child is None or child.parent_execution_id is None or child.parent_task_run_id is None:
            return
        parent = store.lock_execution(session, child.parent_execution_id)
        row = store.get_task_run(session, child.parent_task_run_id, lock=True)
        if parent is None or row is None or State(row.state) is not State.RUNNING:
            return
        if (row.decision or {}).get("subflow") != child_id:
            return  # an older attempt's child: the current attempt waits for its own
        flow = engine._flow_for(session, parent)
        task = flow.task(row.task_id)
        child_state = State(child.state)
        outputs: dict[str, Any] = {"executionId": child.id, "state": str(child_state)}
        error = None
        declared = task.properties.get("outputs")
        if declared:
            child_flow = engine._flow_for(session, child)
            variables = base_variables(child, child_flow, store.task_runs_of(session, child.id))
            try:
                outputs["outputs"] = render_value(declared, variables)
            except ExpressionError as e:
                error = f"subflow outputs: {e.message}"
        if child.outputs:
            outputs.setdefault("outputs", {}).update(child.outputs)
        transmit = task.properties.get("transmitFailed", True) is not False
        failed = child_state.is_failure and transmit
        state = State.FAILED if failed or error else State.WARNING if child_state is State.WARNING else State.SUCCESS
        outcome = TaskOutcome(
            state, outputs=outputs, error=error or (f"subflow {child.id} ended {child_state}" if failed else None)
        )
        row.decision = {}
        engine.complete_task_run(session, parent, row, task, flow, outcome, actor=f"execution:{child.id}")
    engine.dispatch(parent.id, actor=f"execution:{child_id}")
