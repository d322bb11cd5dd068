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
from orchestrator.core.errors import ChorusError, ExpressionError, TaskFailed
from orchestrator.core.expressions import render_value
from orchestrator.core.inputs import coerce_inputs
from orchestrator.core.states import State
from orchestrator.engine import flows, ledger_replay, outcomes, subflow_restarts
from orchestrator.engine.values import ClaimedTaskRun, LogRecord, TaskOutcome, Verdict, still_ours
from orchestrator.engine.variables import base_variables

if TYPE_CHECKING:
    from orchestrator.core.flow import Flow, TaskSpec
    from orchestrator.engine.facade import Engine
    from orchestrator.store.database import Session
    from orchestrator.store.tables import ExecutionRow, TaskRunRow

logger = logging.getLogger(__name__)

#: Where a child execution's `trigger` records how many subflow hops separate it from its tree's root.
DEPTH_KEY = "subflowDepth"


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
    inherited: list[dict[str, str]] | None = None,
) -> Verdict:
    """Create the child execution for a claimed Subflow task run; the verdict for the parent's chain."""
    return start_many(
        engine, claimed, namespace=namespace, flow_id=flow_id, batches=[inputs], labels=labels, wait=wait,
        revision=revision, single=True, inherited=inherited,
    )  # fmt: skip


def start_many(
    engine: Engine,
    claimed: ClaimedTaskRun,
    *,
    namespace: str,
    flow_id: str,
    batches: list[dict[str, Any]],
    labels: list[dict[str, str]],
    wait: bool,
    revision: int | None = None,
    single: bool = False,
    inherited: list[dict[str, str]] | None = None,
) -> Verdict:
    """Create one child execution per inputs of `batches`, all in one transaction, then dispatch them.

    A Subflow task run (`single`) waits on `decision.subflow`; a ForEachItem's `_items` task run waits on
    `decision.subflows` and ends when the last of its children does. Children are created atomically, so
    a worker dying here leaves either all of them (the parent waits, the sweeper dispatches) or none.
    `inherited` are the parent's labels (`inheritLabels`): those whose key the child's flow labels itself are
    left out, so the child's own flow label wins (Kestra's ExecutableUtils.filterLabels, FlowCaseTest).
    """

    at = claimed.coordinates
    children: list[str] = []
    with engine.transaction() as session:
        parent = store.lock_execution(session, at.execution_id)
        row = store.get_task_run(session, at.task_run_id, lock=True)
        if parent is None or row is None or not still_ours(row, claimed):
            return Verdict.STOP
        # Depth counts subflow hops from the root of the execution tree: `flowId: "{{ flow.id }}"` would
        # otherwise start children until the database fills (340 in 15 s, issue 16).
        depth = int((parent.trigger or {}).get(DEPTH_KEY, 0)) + 1
        try:
            if depth > engine.settings.max_subflow_depth:
                raise TaskFailed(
                    f"subflow {namespace}.{flow_id} would nest {depth} levels deep, past the limit of "
                    f"{engine.settings.max_subflow_depth} (CHORUS_MAX_SUBFLOW_DEPTH): is the flow calling itself?",
                    retryable=False,
                )
            flow_row = flows.live_revision(engine, session, namespace, flow_id, revision)
            flow = engine.flow_of(flow_row)
            typed = [coerce_inputs(flow, inputs) for inputs in batches]
            own = {label.key for label in flow.labels}
            labels = [label for label in inherited or () if label["key"] not in own] + labels
        except ChorusError as e:
            outcome = TaskOutcome(
                State.FAILED,
                logs=(LogRecord("ERROR", e.message, store.utcnow()),),
                error=e.message,
                retryable=False,
            )
            return outcomes.finish_locked(
                engine, session, parent, row, claimed.task, claimed.flow, outcome, actor="system"
            )
        # A restarted execution takes over the children that failed instead of starting new ones.
        earlier = subflow_restarts.earlier_children(session, parent, row, claimed.task, single=single)
        kept: list[str] = []
        restarted: list[str] = []
        for iteration, child_inputs in enumerate(typed):
            previous = earlier.get(iteration)
            taken = None
            if previous is not None:
                taken = subflow_restarts.take_over(engine, session, previous, actor=f"execution:{parent.id}")
            if taken is not None and previous is not None:
                kept.append(previous.id)
                if taken:
                    restarted.append(previous.id)
                continue
            variables = {
                "executionId": parent.id,
                "namespace": parent.namespace,
                "flowId": parent.flow_id,
                "flowRevision": parent.flow_revision,
            }
            if not single:
                variables.update(taskRunId=row.id, taskId=row.task_id, taskRunIteration=iteration)
            trigger = {"id": claimed.task.id, "type": claimed.task.type_name, "variables": variables, DEPTH_KEY: depth}
            child = engine.create_execution(
                session,
                flow_row,
                flow,
                child_inputs,
                labels,
                actor=f"execution:{parent.id}",
                trigger=trigger,
                parent=(parent.id, row.id) if wait else None,
            )
            children.append(child.id)
        if kept:
            store.note_execution(session, parent)  # the execution this transaction labels its transitions with
        # A ledger replay's subflows are served from the original's (engine/ledger_replay.py).
        ledger_replay.serve_subflows(session, claimed.flow, at, children)
        started = len(children) + len(kept)
        if single:
            child_id = (children or kept)[0]
            row.decision = {"subflow": child_id} if wait else {}
            row.outputs = {"executionId": child_id}
        elif not started:
            # Kestra's executor: an executable task with no subflow execution (an empty items file) succeeds
            # at once, without outputs.
            row.decision, row.outputs = {}, None
        elif wait:
            row.decision = {"subflows": started}
            counts = store.child_execution_states(session, row.id) if kept else {str(State.CREATED): started}
            row.outputs = _batch_outputs(counts, started)
        else:
            # Not waiting, Kestra counts every batch as moved from RUNNING to SUCCESS once it is started.
            row.decision = {}
            counts = {str(State.RUNNING): 0, str(State.SUCCESS): len(children)}
            row.outputs = {"numberOfBatches": len(children), "iterations": counts}
        session.flush()
        verdict = Verdict.STOP
        settled = wait and bool(kept) and not children and not restarted
        if settled:  # every batch kept a child that had ended well: nothing will report, end the task run now
            _on_batch_child_ended(engine, session, parent, row, claimed.task, claimed.flow)
        elif not wait or not started:
            outputs = dict(row.outputs) if row.outputs is not None else None
            outcome = TaskOutcome(State.SUCCESS, outputs=outputs)
            verdict = outcomes.finish_locked(
                engine, session, parent, row, claimed.task, claimed.flow, outcome, actor=f"worker:{claimed.owner}"
            )
    for child_id in [*children, *restarted]:
        engine.dispatch(child_id, actor=f"execution:{at.execution_id}")
    if settled:
        engine.dispatch(at.execution_id, actor=f"worker:{claimed.owner}")
    return Verdict.STOP if wait and started else verdict  # a waiting parent continues from on_child_ended


def _batch_outputs(counts: dict[str, int], batches: int) -> dict[str, Any]:
    """Kestra's ForEachItem outputs: the number of batches and the subflow executions counted by state."""
    iterations = {str(State.CREATED): 0, str(State.RUNNING): 0, **counts}
    return {"numberOfBatches": batches, "iterations": iterations}


def on_child_ended(engine: Engine, child_id: str) -> None:
    """Complete the waiting parent task run of a child execution that just ended, then continue the parent."""

    with engine.transaction() as session:
        child = store.get_execution(session, child_id)
        if child is None or child.parent_execution_id is None or child.parent_task_run_id is None:
            return
        parent = store.lock_execution(session, child.parent_execution_id)
        row = store.get_task_run(session, child.parent_task_run_id, lock=True)
        if parent is None or row is None or State(row.state) is not State.RUNNING:
            return
        flow = flows.flow_of_execution(engine, session, parent)
        task = flow.task(row.task_id)
        if (row.decision or {}).get("subflows"):
            _on_batch_child_ended(engine, session, parent, row, task, flow)
        elif (row.decision or {}).get("subflow") == child_id:
            _on_single_child_ended(engine, session, parent, row, task, flow, child)
        else:
            return  # an older attempt's child: the current attempt waits for its own
    engine.dispatch(parent.id, actor=f"execution:{child_id}")


def _on_batch_child_ended(
    engine: Engine, session: Session, parent: ExecutionRow, row: TaskRunRow, task: TaskSpec, flow: Flow
) -> None:
    """Count the children by state (the truth, whatever order they end in); the last one ends the task run."""

    counts = store.child_execution_states(session, row.id)
    counts.pop(str(State.RETRIED), None)  # replaced by their retry, which is counted instead
    batches = int((row.decision or {})["subflows"])
    outputs = _batch_outputs(counts, batches)
    ended = sum(n for state, n in counts.items() if State(state).is_terminal)
    if ended < batches:
        row.outputs = outputs  # progress, readable while the batches run
        return
    transmit = task.properties.get("transmitFailed", True) is not False
    failed = sum(n for state, n in counts.items() if State(state).is_failure)
    warned = transmit and bool(counts.get("WARNING"))
    state = State.FAILED if failed and transmit else State.WARNING if warned else State.SUCCESS
    error = f"{failed} of {batches} subflow executions failed" if state is State.FAILED else None
    row.decision = {}
    outcomes.finish_locked(
        engine, session, parent, row, task, flow, TaskOutcome(state, outputs=outputs, error=error), actor="system"
    )


def _on_single_child_ended(
    engine: Engine,
    session: Session,
    parent: ExecutionRow,
    row: TaskRunRow,
    task: TaskSpec,
    flow: Flow,
    child: ExecutionRow,
) -> None:

    child_state = State(child.state)
    outputs: dict[str, Any] = {"executionId": child.id, "state": str(child_state)}
    error = None
    declared = task.properties.get("outputs")
    if declared:
        child_flow = flows.flow_of_execution(engine, session, child)
        variables = base_variables(child, child_flow, store.task_runs_of(session, child.id))
        try:
            outputs["outputs"] = render_value(declared, variables)
        except ExpressionError as e:
            error = f"subflow outputs: {e.message}"
    if child.outputs:
        outputs.setdefault("outputs", {}).update(child.outputs)
    transmit = task.properties.get("transmitFailed", True) is not False
    failed = child_state.is_failure and transmit
    # Kestra's ExecutableUtils.guessState: with transmitFailed a FAILED, KILLED or WARNING child passes its
    # state on (a killed child fails the task here); anything else, or without it, is a success.
    warned = transmit and child_state is State.WARNING
    state = State.FAILED if failed or error else State.WARNING if warned else State.SUCCESS
    outcome = TaskOutcome(
        state, outputs=outputs, error=error or (f"subflow {child.id} ended {child_state}" if failed else None)
    )
    row.decision = {}
    outcomes.finish_locked(engine, session, parent, row, task, flow, outcome, actor=f"execution:{child.id}")
