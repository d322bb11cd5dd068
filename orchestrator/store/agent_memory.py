"""SQL over `agent_memory`: an AIAgent memory's messages by namespace and memory id, versioned by row id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from orchestrator.store.tables import AgentMemoryRow, AgentRunRow, TaskRunRow


def lock_memory(session: Session, tenant: str, namespace: str, memory_id: str, *, write: bool) -> None:
    """Writers of one memory take turns; readers share the lock, so a snapshot's version names committed rows."""
    fn = "pg_advisory_xact_lock" if write else "pg_advisory_xact_lock_shared"
    # Seed 23: a memory key never shares a lock with a budget scope (17) or a request key (0).
    session.execute(text(f"SELECT {fn}(hashtextextended(:k, 23))"), {"k": f"{tenant}/{namespace}/{memory_id}"})


def _of(tenant: str, namespace: str, memory_id: str) -> Any:
    return (
        (AgentMemoryRow.tenant == tenant)
        & (AgentMemoryRow.namespace == namespace)
        & (AgentMemoryRow.memory_id == memory_id)
    )


def head_version(session: Session, tenant: str, namespace: str, memory_id: str) -> int:
    """The newest row id of a memory (0 when it has none): the version a snapshot taken now reads at."""
    return int(session.scalar(select(func.max(AgentMemoryRow.id)).where(_of(tenant, namespace, memory_id))) or 0)


def messages_at(session: Session, tenant: str, namespace: str, memory_id: str, *, version: int) -> list[AgentMemoryRow]:
    """The messages the memory held at `version`, oldest first (expiry is the caller's: it needs a reference time)."""
    return list(
        session.scalars(
            select(AgentMemoryRow)
            .where(
                _of(tenant, namespace, memory_id),
                AgentMemoryRow.id <= version,
                AgentMemoryRow.dropped_by.is_(None) | (AgentMemoryRow.dropped_by > version),
            )
            .order_by(AgentMemoryRow.id)
        ).all()
    )


def live_memories(
    session: Session, tenant: str, namespace: str, *, at: datetime, limit: int
) -> list[tuple[str, int, datetime]]:
    """A namespace's memories alive at `at` (not expired): memory id, live messages, last write; newest write first.

    As `messages_at` at the head version, then `_live`: a memory's expiry is its newest live message's.
    """
    last_expiry = func.array_agg(aggregate_order_by(AgentMemoryRow.expires_at, AgentMemoryRow.id.desc()))[1]
    last_write = func.max(AgentMemoryRow.created_at)
    rows = session.execute(
        select(AgentMemoryRow.memory_id, func.count(), last_write)
        .where(
            AgentMemoryRow.tenant == tenant,
            AgentMemoryRow.namespace == namespace,
            AgentMemoryRow.dropped_by.is_(None),
        )
        .group_by(AgentMemoryRow.memory_id)
        .having(last_expiry > at)
        .order_by(last_write.desc(), AgentMemoryRow.memory_id)
        .limit(limit)
    ).all()
    return [(str(m), int(n), w) for m, n, w in rows]


def append_messages(session: Session, values: Sequence[dict[str, Any]]) -> list[int]:
    """Insert one write's messages; a write already made by the same attempt inserts nothing (ids of new rows)."""
    if not values:
        return []
    statement = (
        pg_insert(AgentMemoryRow)
        .values(list(values))
        .on_conflict_do_nothing(index_elements=["task_run_id", "attempt", "position"])
        .returning(AgentMemoryRow.id)
    )
    return sorted(int(i) for i in session.scalars(statement).all())


def drop_messages(session: Session, ids: Sequence[int], *, by: int) -> None:
    """Evict messages from the memory as of version `by` (snapshots before it still read them)."""
    if ids:
        session.execute(update(AgentMemoryRow).where(AgentMemoryRow.id.in_(list(ids))).values(dropped_by=by))


def erase(session: Session, tenant: str, namespace: str, memory_id: str) -> int:
    """Delete every message of a memory, past versions included; returns how many rows went."""
    result = session.execute(delete(AgentMemoryRow).where(_of(tenant, namespace, memory_id)))
    return int(result.rowcount)  # type: ignore[attr-defined]


def replayed_conversation(
    session: Session, execution_id: str, task_id: str, iteration: int | None
) -> dict[str, Any] | None:
    """The saved conversation of the same agent task (same iteration) in execution `execution_id`, if it ran."""
    same_iteration = TaskRunRow.iteration.is_(None) if iteration is None else TaskRunRow.iteration == iteration
    return session.scalar(
        select(AgentRunRow.conversation)
        .join(TaskRunRow, TaskRunRow.id == AgentRunRow.task_run_id)
        .where(TaskRunRow.execution_id == execution_id, TaskRunRow.task_id == task_id, same_iteration)
        .order_by(TaskRunRow.seq.desc())
        .limit(1)
    )


def rows_of_execution(
    session: Session, tenant: str, namespace: str, memory_id: str, execution_id: str
) -> list[AgentMemoryRow]:
    """Every message an execution's agents wrote to a memory (kept or since dropped), oldest first."""
    return list(
        session.scalars(
            select(AgentMemoryRow)
            .where(_of(tenant, namespace, memory_id), AgentMemoryRow.execution_id == execution_id)
            .order_by(AgentMemoryRow.id)
        ).all()
    )


def copied_agent_runs(session: Session, execution_id: str) -> set[str]:
    """The original task runs of the agent runs a replay copied into `execution_id`."""
    found = session.scalars(
        select(AgentRunRow.conversation["copiedFrom"].astext).where(
            AgentRunRow.execution_id == execution_id, AgentRunRow.conversation.has_key("copiedFrom")
        )
    ).all()
    return {str(f) for f in found if f}
