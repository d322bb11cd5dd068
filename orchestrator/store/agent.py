"""SQL over `agent_runs`: an agent task run's conversation, saved per turn; memory across agents."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from orchestrator.store.tables import AgentRunRow


def get_agent_run(session: Session, task_run_id: str, *, lock: bool = False) -> AgentRunRow | None:
    query = select(AgentRunRow).where(AgentRunRow.task_run_id == task_run_id)
    return session.scalars(query.with_for_update() if lock else query).first()


def save_agent_run(session: Session, values: dict[str, Any], *, keep_approvals: bool) -> None:
    """Insert or replace the conversation of one agent task run; approvals decided so far are kept or cleared."""
    statement = pg_insert(AgentRunRow).values(**values, approvals={})
    changed = {k: statement.excluded[k] for k in values if k != "task_run_id"}
    if not keep_approvals:
        changed["approvals"] = statement.excluded.approvals
    session.execute(statement.on_conflict_do_update(index_elements=[AgentRunRow.task_run_id], set_=changed))


def copy_agent_run(session: Session, task_run_id: str, *, to_task_run_id: str, to_execution_id: str) -> None:
    """Copy an agent's saved conversation onto a task run copied by a replay (its memory goes with it)."""
    row = get_agent_run(session, task_run_id)
    if row is None:
        return
    session.execute(
        pg_insert(AgentRunRow)
        .values(
            task_run_id=to_task_run_id,
            execution_id=to_execution_id,
            task_id=row.task_id,
            attempt=row.attempt,
            memory_id=row.memory_id,
            status=row.status,
            # `copiedFrom` tells the copy's memory reads which of the original's turns the replay kept.
            conversation={**row.conversation, "copiedFrom": task_run_id},
            approvals=row.approvals,
            updated_at=row.updated_at,
        )
        .on_conflict_do_nothing(index_elements=[AgentRunRow.task_run_id])
    )
