"""Performing a flowable's sibling rule on the siblings that already run: a child that fails interrupts them, at
any depth, instead of letting them run to completion.

The rule is `core/child_policy.sibling_rule` (`onChildFailure: FAIL` ends them FAILED, `CANCEL` CANCELLED,
`failFast: true` and `childFailurePolicy: FAIL_FAST` kill them; the flowable itself still ends FAILED). Its other
half, not starting new siblings, is `sibling_policy.py`. Each interrupted task run logs a warning naming the
sibling that failed, as Kestra does. Without a rule, siblings run to completion (Kestra 1.x's behaviour, which
the 1.x flows expect).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from orchestrator import store
from orchestrator.core.child_policy import sibling_rule
from orchestrator.core.flow import Flow
from orchestrator.core.states import TERMINAL, State
from orchestrator.engine import flows
from orchestrator.engine.values import LogRecord, log_row
from orchestrator.hooks import Transition
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

__all__ = ["interrupt_after_failures", "interrupt_late_sibling"]

logger = logging.getLogger(__name__)


def interrupt_after_failures(engine: Engine, transitions: Iterable[Transition]) -> None:
    """After a commit: each task run that just failed interrupts the running siblings its parent's policy names."""
    for transition in transitions:
        if transition.kind == "task_run" and transition.state == str(State.FAILED):
            try:
                _interrupt(engine, transition.execution_id, transition.subject_id)
            except Exception:  # the sweeper re-plans a stalled execution; never fail the caller's commit
                logger.exception("interrupting the siblings of %s failed", transition.subject_id)


def _interrupt(engine: Engine, execution_id: str, failed_id: str) -> None:
    celery_ids: list[str] = []
    with engine.transaction() as session:
        execution = store.lock_execution(session, execution_id)
        if execution is None or State(execution.state) not in (State.RUNNING, State.PAUSED):
            return
        flow = flows.flow_of_execution(engine, session, execution)
        runs = {r.id: r for r in store.task_runs_of(session, execution_id)}
        failed = runs.get(failed_id)
        parent = runs.get(failed.parent_id or "") if failed is not None else None
        if failed is None or parent is None or State(parent.state) is not State.RUNNING:
            return
        to = sibling_rule(flow.task(parent.task_id)).running_to
        if to is None:
            return

        now = store.utcnow()
        reason = f"Task terminated because sibling task '{failed.task_id}' failed."
        for run in runs.values():
            if (
                run.id == failed_id
                or State(run.state) in TERMINAL
                or not store.descends_from(run.parent_id, parent.id, runs)
            ):
                continue
            if State(run.state) is State.RUNNING and run.attempts:
                celery_ids.extend(filter(None, [run.attempts[-1].get("celeryTaskId")]))
            store.record_transition(
                session,
                run,
                to,
                actor="system:onChildFailure",
                payload={"reason": reason},
                values={
                    "attempts": store.close_attempt(run.attempts, to, now),
                    "claim_owner": None,
                    "retry_at": None,
                },
            )
            warning = LogRecord("WARN", reason, now)
            store.insert_log_lines(session, [log_row(execution, run, warning, engine.settings.max_log_line_chars)])
    if celery_ids:
        try:
            engine.celery.control.revoke(celery_ids, terminate=True, signal="SIGTERM")
        except Exception:  # best effort: a finished task's late report finds its task run already ended
            logger.warning("could not revoke %d interrupted task(s) of %s", len(celery_ids), execution_id)
    engine.dispatch(execution_id, actor="system:onChildFailure")


def interrupt_late_sibling(
    engine: Engine, session: Session, execution: ExecutionRow, flow: Flow, parent: TaskRunRow, row: TaskRunRow
) -> bool:
    """End a task run just created under a Parallel or Dag whose policy already fired: a sibling failed before
    this one was claimed (Kestra creates the siblings together, so its test sees this one interrupted too,
    DagTest.dagFailFastCancelled). True when `row` was ended so."""
    spec = flow.task(parent.task_id)
    to = sibling_rule(spec).running_to
    if to is None:
        return False
    runs = {r.id: r for r in store.task_runs_of(session, execution.id)}
    top = row
    while top.parent_id is not None and top.parent_id != parent.id and top.parent_id in runs:
        top = runs[top.parent_id]
    if top.task_id not in {t.id for t in spec.branches.get("tasks", ())}:
        return False  # the parent's `errors` and `finally` run because a child failed: never interrupted
    failed = next(
        (
            r
            for r in runs.values()
            if r.id != row.id and State(r.state) is State.FAILED and store.descends_from(r.parent_id, parent.id, runs)
        ),
        None,
    )
    if failed is None:
        return False
    now = store.utcnow()
    reason = f"Task terminated because sibling task '{failed.task_id}' failed."
    values = {"attempts": store.close_attempt(row.attempts, to, now), "claim_owner": None, "retry_at": None}
    store.record_transition(session, row, to, actor="system:onChildFailure", payload={"reason": reason}, values=values)
    warning = LogRecord("WARN", reason, now)
    store.insert_log_lines(session, [log_row(execution, row, warning, engine.settings.max_log_line_chars)])
    return True
