"""What the sweeper finds due: retries, loops, stale runs, scheduled and paused work, SLAs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from orchestrator.core.states import State
from orchestrator.store.live import LIVE, state_in, state_is
from orchestrator.store.tables import (
    ExecutionRow,
    TaskRunRow,
)


def executions_with_due_retries(session: Session, now: datetime, limit: int = 100) -> Sequence[str]:
    """Executions with a retry due, or a loop (RUNNING flowable) whose next iteration is due.

    Reads `ix_task_runs_retry_due`, whose predicate is this query's state list: the history never enters.
    """
    return session.scalars(
        select(TaskRunRow.execution_id)
        .where(state_in(TaskRunRow.state, (State.RETRYING, State.RUNNING)), TaskRunRow.retry_at <= now)
        .distinct()
        .limit(limit)
    ).all()


def clear_due_loops(session: Session, execution_id: str, now: datetime) -> None:
    """Forget the due time of loops whose next iteration is being dispatched now."""
    session.execute(
        update(TaskRunRow)
        .where(
            TaskRunRow.execution_id == execution_id,
            TaskRunRow.state == str(State.RUNNING),
            TaskRunRow.retry_at <= now,
        )
        .values(retry_at=None)
    )


def stale_running_executions(session: Session, older_than: datetime, limit: int = 100) -> Sequence[str]:
    """Running executions with no change since `older_than` and no task run heartbeating since then.

    Reads the running rows through `ix_executions_live` and filters `updated_at` on them: no index holds
    `updated_at`, so the touch that moves it stays a HOT update.
    """
    return session.scalars(stale_running_query(older_than).limit(limit)).all()


def stale_running_query(older_than: datetime) -> Select[str]:
    """The ids of the stale running executions (shared with the operator gauge `stuck_executions`)."""
    busy = select(TaskRunRow.id).where(
        TaskRunRow.execution_id == ExecutionRow.id,
        TaskRunRow.state == str(State.RUNNING),
        TaskRunRow.heartbeat_at > older_than,
    )
    return select(ExecutionRow.id).where(
        state_is(ExecutionRow.state, State.RUNNING), ExecutionRow.updated_at < older_than, ~busy.exists()
    )


def due_scheduled_executions(session: Session, now: datetime, limit: int = 100) -> Sequence[ExecutionRow]:
    """CREATED executions whose `scheduled_at` has come, locked (another sweeper skips them)."""
    return session.scalars(
        select(ExecutionRow)
        .where(state_is(ExecutionRow.state, State.CREATED), ExecutionRow.scheduled_at <= now)
        .order_by(ExecutionRow.scheduled_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def due_paused_task_runs(session: Session, now: datetime, limit: int = 100) -> Sequence[tuple[str, str]]:
    """(execution id, task run id) of PAUSED task runs whose delay or timeout has come."""
    rows = session.execute(
        select(TaskRunRow.execution_id, TaskRunRow.id)
        .where(state_is(TaskRunRow.state, State.PAUSED), TaskRunRow.retry_at <= now)
        .order_by(TaskRunRow.retry_at)
        .limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows]


def executions_past_sla(session: Session, now: datetime, limit: int = 100) -> Sequence[str]:
    """Unfinished executions whose SLA deadline has passed.

    "Live" rather than "not terminal": `ix_executions_sla_due` holds only live rows (an execution that ends
    keeps its `sla_due_at`), and only a positive list of states proves the index's predicate.
    """
    return session.scalars(
        select(ExecutionRow.id)
        .where(ExecutionRow.sla_due_at <= now, state_in(ExecutionRow.state, LIVE))
        .order_by(ExecutionRow.sla_due_at)
        .limit(limit)
    ).all()
