"""SQL over `ledger_replays`: which execution a ledger replay is served from. Caller-owned Session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from orchestrator.store.tables import ExecutionRow, LedgerReplayRow


def insert_ledger_replay(
    session: Session, execution_id: str, *, source_execution_id: str, live_from: str | None, at: datetime
) -> None:
    session.execute(
        insert(LedgerReplayRow).values(
            execution_id=execution_id, source_execution_id=source_execution_id, live_from=live_from, created_at=at
        )
    )


def ledger_replay_of(session: Session, execution_id: str) -> LedgerReplayRow | None:
    """The ledger replay row of an execution, or None when it is not one."""
    return session.get(LedgerReplayRow, execution_id)


def child_executions(session: Session, execution_id: str) -> list[tuple[str, str, int]]:
    """An execution's subflow executions: (id, the task run that started it, its batch), by task run then batch."""
    rows = session.execute(
        select(ExecutionRow.id, ExecutionRow.parent_task_run_id, ExecutionRow.trigger).where(
            ExecutionRow.parent_execution_id == execution_id, ExecutionRow.parent_task_run_id.is_not(None)
        )
    ).all()
    found = [(row.id, str(row.parent_task_run_id), _batch(row.trigger)) for row in rows]
    return sorted(found, key=lambda child: (child[1], child[2]))


def _batch(trigger: dict[str, Any] | None) -> int:
    """A ForEachItem child's batch (its trigger's `taskRunIteration`); a Subflow's one child is batch 0."""
    return int(((trigger or {}).get("variables") or {}).get("taskRunIteration", 0))
