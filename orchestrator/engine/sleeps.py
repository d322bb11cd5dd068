"""Sleep: a short wait happens in the worker; a long one is a due time in PostgreSQL the sweeper acts on.

A worker that meets a Sleep longer than `INLINE_LIMIT` records when it ends (`decision.sleep_until`,
`retry_at`), lets go of its claim and returns. The task run stays RUNNING, as in Kestra; the planner
treats it as waiting while `retry_at` is ahead, and the sweeper dispatches the execution when it is due.
The next claim takes the run over, finds the recorded end already past and finishes it. Nothing holds a
worker slot or a Celery countdown through the wait, so a sleep survives any restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from orchestrator import store
from orchestrator.core.states import State
from orchestrator.engine.values import ClaimedTaskRun, LogRecord, log_row, still_ours

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

#: Waits up to this long stay in the worker (heartbeating); longer ones are parked in the database.
INLINE_LIMIT = timedelta(seconds=5)


@dataclass(frozen=True)
class SleepEnd:
    """When a Sleep task run ends, whether this claim just decided it, and whether it ends by timeout."""

    due: datetime
    fresh: bool
    timed_out: bool


def begin(engine: Engine, claimed: ClaimedTaskRun, duration: timedelta) -> SleepEnd | None:
    """The end of this sleep: recorded by the first claim, read back by every later one (None: not ours)."""

    with engine.transaction() as session:
        row = store.get_task_run(session, claimed.coordinates.task_run_id, lock=True)
        if row is None or not still_ours(row, claimed):
            return None
        decision = row.decision or {}
        recorded = decision.get("sleep_until")
        if recorded:
            return SleepEnd(datetime.fromisoformat(recorded), False, bool(decision.get("timeout")))
        timeout = claimed.task.timeout
        timed_out = timeout is not None and timeout < duration
        # By the database's clock, which the sweeper that wakes a parked sleep reads too.
        due = store.transaction_now(session) + (timeout if timeout is not None and timed_out else duration)
        row.decision = {"sleep_until": due.isoformat(), "timeout": timed_out}
        return SleepEnd(due, True, timed_out)


def park(engine: Engine, claimed: ClaimedTaskRun, due: datetime, logs: tuple[LogRecord, ...]) -> None:
    """Let go of the claim until `due`: the sweeper dispatches the execution then."""

    at = claimed.coordinates
    with engine.transaction() as session:
        execution = store.lock_execution(session, at.execution_id)
        row = store.get_task_run(session, at.task_run_id, lock=True)
        if execution is None or row is None or not still_ours(row, claimed):
            return
        row.retry_at, row.heartbeat_at, row.claim_owner = due, None, None
        if logs:
            cap = engine.settings.max_log_line_chars
            store.insert_log_lines(session, [log_row(execution, row, record, cap) for record in logs])
        store.append_audit(
            session,
            at.execution_id,
            actor=f"worker:{claimed.owner}",
            action="task_run.sleeping",
            subject=row.id,
            payload={"task_id": row.task_id, "until": store.iso(due), "state": str(State.RUNNING)},
            at=store.utcnow(),
        )
