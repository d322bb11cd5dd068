"""Read queries behind the operator gauges: executions per live state, and stuck ones (no progress, no heartbeat)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.core.states import State
from orchestrator.store import db_now
from orchestrator.store.due import stale_running_query
from orchestrator.store.live import state_in
from orchestrator.store.tables import ExecutionRow

#: States an execution can sit in: each gets a series, zero when empty, so a dashboard never shows "no data".
LIVE_STATES = (State.CREATED, State.QUEUED, State.RUNNING, State.PAUSED, State.RETRYING, State.KILLING)


def executions_by_live_state(session: Session) -> dict[State, int]:
    """How many executions are in each live state (one scan of the partial index `ix_executions_live`)."""
    rows = session.execute(
        select(ExecutionRow.state, func.count())
        .where(state_in(ExecutionRow.state, LIVE_STATES))
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
    count = session.scalar(select(func.count()).select_from(stale_running_query(older_than).subquery()))
    return int(count or 0)
