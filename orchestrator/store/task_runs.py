"""Task-run rows: reads (locked or not), the rows variables need, attempts and heartbeats."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.orm import Session

from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.states import State
from orchestrator.store.clock import iso
from orchestrator.store.tables import (
    TaskRunRow,
)


def task_runs_of(session: Session, execution_id: str) -> Sequence[TaskRunRow]:
    return session.scalars(
        select(TaskRunRow).where(TaskRunRow.execution_id == execution_id).order_by(TaskRunRow.seq)
    ).all()


def task_run_states_of(session: Session, execution_id: str) -> Sequence[Row[Any]]:
    """What the planner decides on for each task run of an execution (its `TaskRunView` fields), by `seq`.

    Joins and dispatches read this instead of whole rows: a fan-out's children carry outputs, attempts
    and state histories that no decision looks at, and a 1,000-wide ForEach would load them all per join.
    """
    return session.execute(
        select(
            TaskRunRow.id,
            TaskRunRow.task_id,
            TaskRunRow.parent_id,
            TaskRunRow.iteration,
            TaskRunRow.state,
            TaskRunRow.attempt,
            TaskRunRow.decision,
            TaskRunRow.retry_at,
        )
        .where(TaskRunRow.execution_id == execution_id)
        .order_by(TaskRunRow.seq)
    ).all()


def task_runs_for_variables(session: Session, execution_id: str) -> Sequence[TaskRunRow]:
    """The task runs a task's expressions can see through (`outputs`, `parents`, `execution.state`): those
    with outputs, every flowable (the ancestors that carry loop values), and the root ones.

    A claim reads this instead of every task run: a ForEach over thousands of values would otherwise make
    each of its task runs read all its siblings (a fan-out's cost growing with its square).
    """
    return session.scalars(
        select(TaskRunRow)
        .where(
            TaskRunRow.execution_id == execution_id,
            # An absent value is stored as JSON null, which jsonb_typeof names 'null' (SQL NULL gives NULL).
            or_(
                func.jsonb_typeof(TaskRunRow.outputs) != "null",
                func.jsonb_typeof(TaskRunRow.decision) != "null",
                TaskRunRow.parent_id.is_(None),
            ),
        )
        .order_by(TaskRunRow.seq)
    ).all()


def get_task_run(session: Session, task_run_id: str, *, lock: bool = False) -> TaskRunRow | None:
    query = select(TaskRunRow).where(TaskRunRow.id == task_run_id)
    return session.scalars(query.with_for_update() if lock else query).first()


def loaded_task_run(session: Session, task_run_id: str) -> TaskRunRow | None:
    """The task run as this session holds it (no query when this transaction has already loaded or created it)."""
    return session.get(TaskRunRow, task_run_id)


def set_decision(session: Session, task_run_id: str, decision: TaskRunDecision) -> None:
    """Replace a task run's `decision` (what its flowable parent decided: retries counted, branch chosen)."""
    session.execute(update(TaskRunRow).where(TaskRunRow.id == task_run_id).values(decision=decision))


def close_attempt(attempts: list[Any], state: State, at: datetime) -> list[Any]:
    """The attempts list with its last attempt ended in `state` at `at` (unchanged when there is none)."""
    if not attempts:
        return []
    last = dict(attempts[-1])
    histories = [*last["state"]["histories"], {"state": str(state), "date": iso(at)}]
    last["state"] = {"current": str(state), "histories": histories}
    return [*attempts[:-1], last]


def heartbeat(session: Session, task_run_id: str, owner: str) -> None:
    """Refresh a claim, stamped by the database's clock (a worker's own clock may be off by seconds)."""
    session.execute(
        update(TaskRunRow)
        .where(TaskRunRow.id == task_run_id, TaskRunRow.claim_owner == owner)
        .values(heartbeat_at=func.now())
    )
