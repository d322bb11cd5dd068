"""What the sweeper finds due: retries, loops, stale runs, scheduled and paused work, SLAs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.core.states import State
from orchestrator.store.tables import (
    ExecutionRow,
    TaskRunRow,
)


def executions_with_due_retries(session: Session, now: datetime, limit: int = 100) -> Sequence[str]:
    """Executions with a retry due, or a loop (RUNNING flowable) whose next iteration is due."""
    return session.scalars(
        select(TaskRunRow.execution_id)
        .where(TaskRunRow.state.in_([str(State.RETRYING), str(State.RUNNING)]), TaskRunRow.retry_at <= now)
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
    """Running executions with no change since `older_than` and no task run heartbeating since then."""
    busy = select(TaskRunRow.id).where(
        TaskRunRow.execution_id == ExecutionRow.id,
        TaskRunRow.state == str(State.RUNNING),
        TaskRunRow.heartbeat_at > older_than,
    )
    return session.scalars(
        select(ExecutionRow.id)
        .where(ExecutionRow.state == str(State.RUNNING), ExecutionRow.updated_at < older_than, ~busy.exists())
        .limit(limit)
    ).all()


def due_scheduled_executions(session: Session, now: datetime, limit: int = 100) -> Sequence[ExecutionRow]:
    """CREATED executions whose `scheduled_at` has come, locked (another sweeper skips them)."""
    return session.scalars(
        select(ExecutionRow)
        .where(ExecutionRow.state == str(State.CREATED), ExecutionRow.scheduled_at <= now)
        .order_by(ExecutionRow.scheduled_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def due_paused_task_runs(session: Session, now: datetime, limit: int = 100) -> Sequence[tuple[str, str]]:
    """(execution id, task run id) of PAUSED task runs whose delay or timeout has come."""
    rows = session.execute(
        select(TaskRunRow.execution_id, TaskRunRow.id)
        .where(TaskRunRow.state == str(State.PAUSED), TaskRunRow.retry_at <= now)
        .order_by(TaskRunRow.retry_at)
        .limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows]


def executions_past_sla(session: Session, now: datetime, limit: int = 100) -> Sequence[str]:
    """Unfinished executions whose SLA deadline has passed."""
    terminal = [str(s) for s in State if s.is_terminal]
    return session.scalars(
        select(ExecutionRow.id)
        .where(ExecutionRow.sla_due_at <= now, ExecutionRow.state.not_in(terminal))
        .order_by(ExecutionRow.sla_due_at)
        .limit(limit)
    ).all()
