"""Read queries behind the operator gauges: executions per live state, and stuck ones (no progress, no heartbeat)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.core.states import State
from orchestrator.store import db_now
from orchestrator.store.tables import ExecutionRow, TaskRunRow

#: States an execution can sit in: each gets a series, zero when empty, so a dashboard never shows "no data".
LIVE_STATES = (State.CREATED, State.QUEUED, State.RUNNING, State.PAUSED, State.RETRYING, State.KILLING)


def executions_by_live_state(session: Session) -> dict[State, int]:
    """How many executions are in each live state (one index scan on `ix_executions_state_updated`)."""
    rows = session.execute(
        select(ExecutionRow.state, func.count())
        .where(ExecutionRow.state.in_([str(s) for s in LIVE_STATES]))
        .group_by(ExecutionRow.state)
    ).all()
    counts = dict.fromkeys(LIVE_STATES, 0)
    counts.update({State(state): int(count) for state, count in rows})
    return counts


def stuck_executions(session: Session, stale_after_s: float) -> int:
    """RUNNING executions unchanged for `stale_after_s` with no task run heartbeating in that window.

    The same test as the sweeper's take-over (`store.stale_running_executions`), counted without a limit and
    measured on the database's clock, the one every process agrees on.
    """
    older_than = db_now(session) - timedelta(seconds=stale_after_s)
    busy = select(TaskRunRow.id).where(
        TaskRunRow.execution_id == ExecutionRow.id,
        TaskRunRow.state == str(State.RUNNING),
        TaskRunRow.heartbeat_at > older_than,
    )
    count = session.scalar(
        select(func.count())
        .select_from(ExecutionRow)
        .where(ExecutionRow.state == str(State.RUNNING), ExecutionRow.updated_at < older_than, ~busy.exists())
    )
    return int(count or 0)
