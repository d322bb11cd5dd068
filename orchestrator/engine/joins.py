"""Dispatch and joins: ask the core what runs next, send it, and end executions and flowable task runs."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from orchestrator import internal_storage as storage
from orchestrator import store
from orchestrator.core import child_policy
from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.errors import ExpressionError, NotFound
from orchestrator.core.flow import Flow, TaskSpec
from orchestrator.core.plan import (
    Complete,
    PlanNode,
    Snapshot,
    StartPhase,
    TaskRunView,
    Wait,
    child_lists,
    decide_join,
    has_runs,
    killed_lists,
    phase,
    remaining,
    with_compensation,
)
from orchestrator.core.retry import next_attempt_at
from orchestrator.core.states import State, apply_allowances
from orchestrator.engine import (
    approval_tasks,
    compensating,
    flows,
    local_drive,
    loop_scope,
    loops,
    pending,
)
from orchestrator.engine.sending import send_plan
from orchestrator.engine.values import (
    LogRecord,
    Verdict,
    log_row,
)
from orchestrator.engine.variables import execution_variables, flow_outputs
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

logger = logging.getLogger(__name__)


def snapshot(engine: Engine, session: Session, execution_id: str) -> Snapshot:
    """The execution's task runs as the planner sees them (their states and decisions, no outputs)."""
    views = {
        r.id: TaskRunView(
            id=r.id,
            task_id=r.task_id,
            parent_id=r.parent_id,
            iteration=r.iteration,
            state=State(r.state),
            attempt=r.attempt,
            decision=cast(TaskRunDecision, r.decision or {}),
            retry_at=r.retry_at,
            updated_at=r.updated_at,
        )
        for r in store.task_run_states_of(session, execution_id)
    }
    return Snapshot(execution_id, views, store.transaction_now(session))  # it touches `updated_at`: the database clock


def dispatch(engine: Engine, execution_id: str, *, actor: str) -> PlanNode | None:
    """Compile what remains of an execution from the database and send it (idempotent)."""
    with engine.transaction() as session:
        execution = store.lock_execution(session, execution_id)
        if execution is None:
            raise NotFound("execution", execution_id)
        if State(execution.state) is State.RESTARTED:
            store.record_transition(session, execution, State.RUNNING, actor=actor)
        killing = State(execution.state) is State.KILLING  # at rest only while its compensation runs
        if State(execution.state) is not State.RUNNING and not killing:
            return None
        snap = snapshot(engine, session, execution_id)
        plan = remaining(flows.flow_of_execution(engine, session, execution), snap, killed=killing)
        store.clear_due_loops(session, execution_id, snap.now)
        store.touch_execution(session, execution_id, snap.now)
    if plan is not None:
        logger.debug("dispatching %s for %s", plan, execution_id, extra={"execution_id": execution_id})
        send_plan(engine.celery, plan, execution_id)
    return plan


def join(engine: Engine, execution_id: str, parent_id: str | None, *, actor: str) -> tuple[Verdict, PlanNode | None]:
    """Finish a flowable (or the execution) whose children ended, or start its next phase.

    Returns the verdict for the chain and, when a phase starts, the plan the join replaces itself with.
    """
    with engine.transaction() as session:
        execution = store.lock_execution(session, execution_id)
        if execution is None:
            return Verdict.STOP, None
        verdict, plan = join_in(engine, session, execution, parent_id, actor=actor)
        if plan is not None:  # the phase the join starts: its pure control work runs here too
            verdict, plan = local_drive.drive(engine, session, execution, plan)
        return verdict, plan


def join_in(
    engine: Engine, session: Session, execution: ExecutionRow, parent_id: str | None, *, actor: str
) -> tuple[Verdict, PlanNode | None]:
    """`join` in the caller's transaction, which holds the execution's lock."""
    execution_id = execution.id
    # A paused execution still parks an Approval (a Pause) whose `onWait` (`onPause`) just ended, so
    # sibling approvals all wait for review at once; nothing else moves until it is resumed.
    paused = State(execution.state) is State.PAUSED and parent_id is not None
    # KILLING at rest: killed with compensation, which runs (everything else ended KILLED, so joins STOP on it).
    killing = State(execution.state) is State.KILLING
    if State(execution.state) is not State.RUNNING and not paused and not killing:
        return Verdict.STOP, None
    flow = flows.flow_of_execution(engine, session, execution)
    parent_row = store.get_task_run(session, parent_id, lock=True) if parent_id else None
    if parent_id and (parent_row is None or State(parent_row.state) is not State.RUNNING):
        return Verdict.STOP, None
    spec = flow.task(parent_row.task_id) if parent_row else None
    lists = child_lists(flow, spec, (parent_row.decision or {}) if parent_row else {})
    snap = snapshot(engine, session, execution_id)
    if spec is None:
        lists = with_compensation(flow, killed_lists(lists) if killing else lists, snap)
    ending = approval_tasks.ending_state(snap)
    if ending is not None:
        # An Approval ends the execution (SUCCEED, CANCEL): nothing new starts, what runs finishes,
        # then the flow's `finally` runs and the execution takes that state.
        if parent_id is None and lists.finally_:
            approval_tasks.skip_unstarted(session, execution, lists, snap, actor=actor)
        lists = dataclasses.replace(lists, main=(), errors=())
    # An Approval's `finally` waits for its decided branch, not for `onWait`.
    waiting = approval_tasks.is_waiting(spec, parent_row)
    decision = decide_join(dataclasses.replace(lists, finally_=()) if waiting else lists, parent_id, snap)
    if waiting and isinstance(decision, Complete):
        assert parent_row is not None and spec is not None
        # The task's own allowFailure lets a failed `onWait` still pause (Kestra's resolveWaitState).
        wait_state = apply_allowances(decision.state, allow_failure=spec.allow_failure, allow_warning=False)
        if not wait_state.is_failure:
            lookup = functools.partial(store.loaded_task_run, session)
            enclosing = loop_scope.enclosing_loops(flow, parent_row, lookup)
            approval_tasks.pause_after_wait(
                session, execution, flow, parent_row, spec, actor=actor, enclosing=enclosing
            )
            return Verdict.STOP, None
        if paused:
            return Verdict.STOP, None
        approval_tasks.park_if_idle(session, flow, execution, parent_row, actor=actor)
        if State(execution.state) is State.PAUSED:
            return Verdict.STOP, None  # resumed (reviewed) later, this join runs again then
        decision = decide_join(lists, parent_id, snap)  # `onWait` failed: `errors`, then `finally`
    if paused and not (spec is not None and spec.type == "Pause" and isinstance(decision, Complete)):
        # A Pause resumed beside an Approval still paused (Kestra resumes the Pause, the execution stays
        # PAUSED) ends now; nothing else moves until the Approval is reviewed.
        return Verdict.STOP, None
    if isinstance(decision, Complete) and approval_tasks.decided(spec, parent_row) is not None:
        # A decided Approval's state is its branch's (and finally's): `onWait` no longer counts.
        decision = Complete(approval_tasks.branch_state(spec, lists, snap.children(parent_id)))
    if isinstance(decision, Wait):
        return Verdict.STOP, None
    if isinstance(decision, StartPhase):
        if parent_id is None and decision.lanes == (lists.compensation,):
            compensating.started(session, execution, lists, snap, actor=actor)
        plan = phase(flow, decision.lanes, parent_id, snap)
        if plan is None or not has_runs(plan):
            # A join that would only call itself again makes no progress: leave it to the sweeper
            # (a stalled execution is re-planned from the database) instead of spinning the broker.
            logger.warning("join of %s in %s has nothing to start", parent_id, execution_id)
            return Verdict.STOP, None
        return Verdict.OK, plan
    assert isinstance(decision, Complete)
    retried = (
        parent_row is not None
        and spec is not None
        and decision.state is State.FAILED
        and spec.retry is not None
        and _retry_flowable(engine, session, parent_row, spec, actor=actor)
    )
    if retried:
        return Verdict.STOP, None  # the sweeper dispatches the failed children's next attempts
    if parent_row is not None and spec is not None and spec.type in loops.LOOP_TYPES:
        again = not decision.state.is_failure and loops.next_iteration(
            engine, session, execution, flow, spec, parent_row
        )
        if again:
            return Verdict.STOP, None  # the sweeper dispatches the next iteration when it is due
        decision = Complete(loops.final_state(spec, parent_row, decision.state))
    if parent_row is not None and spec is not None:
        # AllowFailure is allowFailure made into a flowable: its children's failure is a warning.
        final = apply_allowances(
            child_policy.flowable_state(spec, decision.state),
            allow_failure=spec.allow_failure or spec.type == "AllowFailure",
            allow_warning=spec.allow_warning,
        )
        if loop_scope.keeps_failures(spec) and final.is_failure:
            final = State.SUCCESS  # Kestra's LoopCaseTest: failed iterations, a SUCCESS Loop
        final, outcome = approval_tasks.settle(spec, parent_row, final)
        values: dict[str, Any] = {"claim_owner": None}
        if spec.type == loop_scope.LOOP:
            runs = store.task_runs_of(session, execution_id)
            try:
                values["outputs"] = loop_scope.final_outputs(
                    spec,
                    parent_row,
                    runs,
                    lambda run: execution_variables(execution, flow, spec, run, runs),
                    _iteration_file(engine, execution, parent_row)
                    if loop_scope.stores_outputs(spec, parent_row)
                    else None,
                )
            except ExpressionError as e:
                final = State.FAILED
                error = LogRecord("ERROR", str(e), store.utcnow())
                cap = engine.settings.max_log_line_chars
                store.insert_log_lines(session, [log_row(execution, parent_row, error, cap)])
        attempts = parent_row.attempts
        if attempts and attempts[-1].get("state", {}).get("current") == str(State.RUNNING):
            # A flowable's attempt spans its children: it ends with them (it stayed RUNNING, with no end date).
            values["attempts"] = store.close_attempt(attempts, final, store.utcnow())
        if outcome is not None and approval_tasks.in_loop(flow, snap, parent_row):
            outcome = None  # a Loop iteration is the scope it ends: the Loop and the flow go on
        if outcome is State.KILLED:
            # KILL on a decision: the whole execution is killed, running siblings too, once this commits.
            pending.approval_decided(session, execution_id, outcome)
        elif outcome is not None:
            values["decision"] = {**(parent_row.decision or {}), "ends": str(outcome)}
        store.record_transition(session, parent_row, final, actor=actor, values=values)
        if outcome is not None or ending is not None:
            return Verdict.STOP, None
        return (Verdict.STOP if final.is_failure else Verdict.OK), None
    final_state = ending if ending is not None and not decision.state.is_failure else decision.state
    if killing:
        final_state = State.KILLED  # however its compensation went: `compensation.ended` says that
    compensating.ended(session, execution, lists, snap, actor=actor)
    _end_execution(engine, session, execution, flow, final_state, actor=actor)
    return Verdict.STOP, None


def _iteration_file(
    engine: Engine, execution: ExecutionRow, loop_run: TaskRunRow
) -> Callable[[int, dict[str, Any]], str]:
    """Where a storing Loop keeps one iteration's outputs: a JSON (so ION text) file of the task run."""
    prefix = storage.task_run_prefix(
        execution.namespace, execution.flow_id, execution.id, loop_run.task_id, loop_run.id
    )

    def keep(index: int, outputs: dict[str, Any]) -> str:
        path = prefix / f"iteration-{index}.ion"
        return storage.write(engine.settings.data_dir, path, json.dumps(outputs, ensure_ascii=False).encode())

    return keep


def _retry_flowable(engine: Engine, session: Session, parent: TaskRunRow, spec: TaskSpec, *, actor: str) -> bool:
    """A flowable's `retry`: its failed children get another attempt while the policy allows."""
    now = store.transaction_now(session)  # retry_at: by the database clock
    retries = int((parent.decision or {}).get("retries", 0))
    due = next_attempt_at(spec.retry, retries + 1, parent.created_at, now)
    if due is None:
        return False
    runs = list(store.task_runs_of(session, parent.execution_id))
    failed = [r for r in runs if r.parent_id == parent.id and State(r.state) is State.FAILED]
    phases = {t.id for name in ("errors", "finally") for t in spec.branches.get(name, ())}
    failed = [r for r in failed if r.task_id not in phases]
    if not failed:
        return False
    # The errors and finally that ran for this round go: they run again if the retried children fail again,
    # as Kestra keeps only the last round's (RetryCaseTest#retryWithFlowableErrors: 3 task runs at the end).
    discard = {r.id for r in runs if r.parent_id == parent.id and r.task_id in phases}
    for run in runs:  # runs come parents first: one pass gathers the descendants
        if run.parent_id in discard:
            discard.add(run.id)
    for run in runs:
        if run.id in discard:
            store.discard_task_run(session, run, actor=actor)
    store.set_decision(session, parent.id, {**(parent.decision or {}), "retries": retries + 1})
    for child in failed:
        store.record_transition(session, child, State.RETRYING, actor=actor, values={"retry_at": due})
    return True


def _end_execution(
    engine: Engine, session: Session, execution: ExecutionRow, flow: Flow, state: State, *, actor: str
) -> None:
    outputs: dict[str, Any] | None = None
    payload: dict[str, Any] = {}
    if flow.outputs:
        ignored: list[str] = []
        try:
            outputs = flow_outputs(execution, flow, store.task_runs_of(session, execution.id), ignored)
        except ExpressionError as e:
            state, payload = State.FAILED, {"error": f"flow outputs: {e.message}"}
            error = LogRecord("ERROR", str(e), store.utcnow())
            store.insert_log_lines(session, [log_row(execution, None, error, engine.settings.max_log_line_chars)])
        warnings = [LogRecord("WARN", message, store.utcnow()) for message in ignored]
        if warnings:
            limit = engine.settings.max_log_line_chars
            store.insert_log_lines(session, [log_row(execution, None, w, limit) for w in warnings])
    store.record_transition(session, execution, state, actor=actor, payload=payload, values={"outputs": outputs})
    if execution.parent_task_run_id is not None:
        pending.child_ended(session, execution.id)
