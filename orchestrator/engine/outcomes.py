"""Outcomes of attempts: finish (retry, allowFailure, allowWarning), and a flowable task's decision."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.flow import Flow, TaskSpec
from orchestrator.core.plan import (
    Chain,
    Join,
    PlanNode,
    inside,
)
from orchestrator.core.retry import next_attempt_at
from orchestrator.core.states import State, apply_allowances
from orchestrator.engine import (
    approval_tasks,
    events,
    flows,
    joins,
    local_drive,
    loop_scope,
    metric_store,
    notification_outbox,
    operations,
)
from orchestrator.engine.values import (
    ClaimedTaskRun,
    LogRecord,
    TaskOutcome,
    Verdict,
    log_row,
    still_ours,
)
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

logger = logging.getLogger(__name__)


def finish(engine: Engine, claimed: ClaimedTaskRun, outcome: TaskOutcome) -> Verdict:
    """Record an attempt's outcome; retry, allowFailure and allowWarning decide the task run's state."""
    at = claimed.coordinates
    with engine.transaction() as session:
        execution = store.lock_execution(session, at.execution_id)
        row = store.get_task_run(session, at.task_run_id, lock=True)
        if execution is None or row is None or not still_ours(row, claimed):
            return Verdict.STOP  # taken over after we stalled: the new owner reports
        store.note_flow(session, flows.task_types(engine, claimed.flow))  # for the hooks' labels
        return finish_locked(
            engine, session, execution, row, claimed.task, claimed.flow, outcome, actor=f"worker:{claimed.owner}"
        )


def finish_and_drive(
    engine: Engine, claimed: ClaimedTaskRun, outcome: TaskOutcome, then: PlanNode
) -> tuple[Verdict, PlanNode | None]:
    """`finish`, then run `then` (what follows the task run in its chain) as far as local drive may, in the same
    transaction: the pure control tasks and joins after a task run on a worker pool cost no further message.

    Returns the verdict the last link run here hands on and what of `then` remains to send (None: nothing).
    """
    at = claimed.coordinates
    with engine.transaction() as session:
        # One statement locks the execution, marks progress and reads the clock the drive's claims are judged by.
        locked = store.lock_touch_execution(session, at.execution_id)
        row: TaskRunRow | None = None
        if locked is not None and _joins(then) and State(locked[0].state) is State.RUNNING:
            # A join in `then` reads every task run anyway: read them once now (under the execution's lock), and
            # this row, the drive's claims (variables, rows that do not exist yet) and the join need no query.
            store.hold_task_runs(session, at.execution_id)
            row = store.loaded_task_run(session, at.task_run_id)
        elif locked is not None:
            row = store.get_task_run(session, at.task_run_id, lock=True)
        if locked is None or row is None or not still_ours(row, claimed):
            return Verdict.STOP, then  # taken over after we stalled: the new owner reports; the chain goes on as sent
        execution, now = locked
        store.note_flow(session, flows.task_types(engine, claimed.flow))  # for the hooks' labels
        actor = f"worker:{claimed.owner}"
        verdict = finish_locked(engine, session, execution, row, claimed.task, claimed.flow, outcome, actor=actor)
        return local_drive.drive(engine, session, execution, then, now=now, prev=verdict)


def _joins(node: PlanNode) -> bool:
    """Whether a plan's leading chain holds a join (the drive would read the execution's task runs for it)."""
    if isinstance(node, Join):
        return True
    return isinstance(node, Chain) and any(_joins(item) for item in node.items)


def finish_locked(
    engine: Engine,
    session: Session,
    execution: ExecutionRow,
    row: TaskRunRow,
    task: TaskSpec,
    flow: Flow,
    outcome: TaskOutcome,
    *,
    actor: str,
) -> Verdict:
    """End the current attempt of a running task run (caller holds the execution lock)."""
    now = store.transaction_now(session)  # retry_at: due by the clock the sweeper and claims read
    cap = engine.settings.max_log_line_chars
    store.insert_log_lines(session, [log_row(execution, row, record, cap) for record in outcome.logs])
    values: dict[str, Any] = {
        "attempts": store.close_attempt(row.attempts, outcome.state, now),
        "claim_owner": None,
    }
    if outcome.outputs is not None:
        values["outputs"] = outcome.outputs
    payload = {"error": outcome.error} if outcome.error else {}
    retry = task.retry or flow.retry
    if outcome.state is State.FAILED and retry is not None and retry.behavior == "CREATE_NEW_EXECUTION":
        # The attempts are executions: the bounds count from the first one of the chain.
        first_start = execution.original_created_at or execution.created_at
        due = next_attempt_at(retry, execution.restarts + 1, first_start, now) if outcome.retryable else None
        if due is not None:
            store.record_transition(session, row, State.FAILED, actor=actor, payload=payload, values=values, at=now)
            operations.retry_in_new_execution(engine, session, execution, flow, due, actor=actor)
            return Verdict.STOP
    elif outcome.state is State.FAILED:
        first_start = _attempt_start(row.attempts[0]) or row.created_at
        due = next_attempt_at(retry, row.attempt, first_start, now) if outcome.retryable else None
        if due is not None:
            values["retry_at"] = due
            store.record_transition(session, row, State.RETRYING, actor=actor, payload=payload, values=values)
            return Verdict.STOP
    state = outcome.state
    if state is State.SUCCESS and row.attempt > 1 and retry is not None and retry.warning_on_retry:
        state = State.WARNING  # `warningOnRetry`: success that needed retries is flagged
    final = apply_allowances(state, allow_failure=task.allow_failure, allow_warning=task.allow_warning)
    store.record_transition(session, row, final, actor=actor, payload=payload, values=values, at=now)
    if task.type == "Publish" and outcome.state in (State.SUCCESS, State.WARNING):
        events.record_published(engine, session, execution, row, outcome.outputs)  # the outbox, in this transaction
    if task.type == "MetricPublish" and outcome.state in (State.SUCCESS, State.WARNING):
        metric_store.record_published_metrics(session, execution, row, outcome.outputs)
    if outcome.outbox and outcome.state in (State.SUCCESS, State.WARNING):
        for request in outcome.outbox:  # sent once this commits: never for an attempt whose success is not recorded
            notification_outbox.record(engine, session, execution, row, request)
    return Verdict.STOP if final.is_failure else Verdict.OK


def decide(
    engine: Engine,
    claimed: ClaimedTaskRun,
    decision: TaskRunDecision,
    outputs: dict[str, Any] | None = None,
    *,
    logs: tuple[LogRecord, ...] = (),
) -> PlanNode | None:
    """Record a flowable's decision (branch taken, values) and return the plan of its body.

    `logs`: what the attempt logged so far, kept with the decision (an agent pausing for an approval
    reports nothing more, so its logs would be lost otherwise).
    """
    at = claimed.coordinates
    with engine.transaction() as session:
        execution = store.lock_execution(session, at.execution_id)
        row = store.get_task_run(session, at.task_run_id, lock=True)
        if row is None or not still_ours(row, claimed):
            return None
        if logs and execution is not None:
            cap = engine.settings.max_log_line_chars
            store.insert_log_lines(session, [log_row(execution, row, record, cap) for record in logs])
        return decide_locked(
            engine, session, execution, row, claimed, decision, outputs, actor=f"worker:{claimed.owner}"
        )


def decide_and_drive(
    engine: Engine, claimed: ClaimedTaskRun, decision: TaskRunDecision, outputs: dict[str, Any] | None = None
) -> tuple[Verdict, PlanNode | None]:
    """`decide`, then run the body's leading pure control work in the same transaction (engine/local_drive.py).

    Returns the verdict the flowable hands on (its body ended here) or the rest of its body to send (STOP and
    None when the decision was not recorded: the claim was lost).
    """
    at = claimed.coordinates
    with engine.transaction() as session:
        execution = store.lock_execution(session, at.execution_id)
        row = store.get_task_run(session, at.task_run_id, lock=True)
        if execution is None or row is None or not still_ours(row, claimed):
            return Verdict.STOP, None
        actor = f"worker:{claimed.owner}"
        body = decide_locked(engine, session, execution, row, claimed, decision, outputs, actor=actor)
        if body is None:
            return Verdict.STOP, None
        return local_drive.drive(engine, session, execution, body)


def decide_locked(
    engine: Engine,
    session: Session,
    execution: ExecutionRow | None,
    row: TaskRunRow,
    claimed: ClaimedTaskRun,
    decision: TaskRunDecision,
    outputs: dict[str, Any] | None,
    *,
    actor: str,
) -> PlanNode | None:
    """Record a decision in the caller's transaction (it holds the execution lock); the body's plan, or None
    when the decision pauses the task run."""
    at = claimed.coordinates
    row.decision = decision
    if outputs is not None:
        row.outputs = outputs
    session.flush()
    store.append_audit(
        session,
        at.execution_id,
        actor=actor,
        action="task_run.decided",
        subject=row.id,
        payload={"task_id": row.task_id, "decision": decision},
    )
    if decision.get("pause") and execution is not None:
        due = decision.get("due")
        due_at = datetime.fromisoformat(due) if isinstance(due, str) else None
        lookup = functools.partial(store.loaded_task_run, session)
        enclosing = loop_scope.enclosing_loops(claimed.flow, row, lookup)
        # Sibling approvals pause the execution together (approval_tasks.still_waiting).
        park = not approval_tasks.still_waiting(session, claimed.flow, at.execution_id, but=row.id)
        store.pause_task_run(session, execution, row, due=due_at, actor=actor, enclosing=enclosing, park_execution=park)
        return None
    snap = joins.snapshot(engine, session, at.execution_id)
    return inside(claimed.flow, claimed.task, snap.task_runs[row.id], snap)


def _attempt_start(attempt: Mapping[str, Any]) -> datetime | None:
    histories = attempt.get("state", {}).get("histories", [])
    return datetime.fromisoformat(histories[0]["date"].replace("Z", "+00:00")) if histories else None
