"""Execution rows: locks, reads, labels, touches, children and flow-concurrency admission counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, true, update
from sqlalchemy.orm import Session, aliased

from orchestrator.core.states import State
from orchestrator.store.audit_chain import locked_head_of, seed_head
from orchestrator.store.clock import anchor
from orchestrator.store.live import state_in, state_is
from orchestrator.store.tables import (
    ExecutionRow,
    table_of,
)

# Built once: a statement built per call costs more CPU than its round trip (construction and its cache key).
# Each locks the execution row and then, in the same statement, its audit chain's head (an execution's chain key
# is its id; its head exists from the creating transaction on): the transaction's first audit append reads
# nothing more (`audit_chain.seed_head`). The row is locked first (the CTE, the nested loop's outer side),
# then the head, as every writer of the chain orders them.
_LOCKED = select(ExecutionRow).where(ExecutionRow.id == bindparam("execution_id")).with_for_update().cte("locked")
_LOCKED_ROW = aliased(ExecutionRow, _LOCKED)
_LOCKED_HEAD = locked_head_of(_LOCKED_ROW.id)
# The database's clock comes with the lock (`clock.transaction_now`): times this transaction sets need no query.
_LOCK = select(_LOCKED_ROW, _LOCKED_HEAD.c.seq, _LOCKED_HEAD.c.hash, func.now()).outerjoin(_LOCKED_HEAD, true())
_TOUCHED = (
    update(ExecutionRow)
    .where(ExecutionRow.id == bindparam("execution_id"))
    .values(updated_at=func.now())
    .returning(ExecutionRow, func.now().label("now"))
    .cte("touched")
)
_TOUCHED_ROW = aliased(ExecutionRow, _TOUCHED)
_TOUCHED_HEAD = locked_head_of(_TOUCHED_ROW.id)
_LOCK_TOUCH = (
    select(_TOUCHED_ROW, _TOUCHED.c.now, _TOUCHED_HEAD.c.seq, _TOUCHED_HEAD.c.hash)
    .outerjoin(_TOUCHED_HEAD, true())
    .execution_options(populate_existing=True)
)


def lock_execution(session: Session, execution_id: str) -> ExecutionRow | None:
    """The execution row, locked: every state change of one execution is serialised on it (and its chain's head)."""
    found = session.execute(_LOCK, {"execution_id": execution_id}).first()
    row = None
    if found is not None:
        row, seq, hash_, now = found
        seed_head(session, execution_id, seq, hash_)
        anchor(session, now)
    session.info["execution"] = row
    return row


def lock_touch_execution(session: Session, execution_id: str) -> tuple[ExecutionRow, datetime] | None:
    """The execution row, locked and touched, with the database's clock: one round trip where a claim made four.

    `UPDATE ... SET updated_at = now() RETURNING *, now()` takes the row lock that serialises the
    execution's changes (as `lock_execution`), marks progress (as `touch_execution`, which then does
    nothing more in this transaction) and reads the clock claims are judged by (as `db_now`); the same
    statement locks and reads the execution's audit head (as `lock_execution`).
    """
    found = session.execute(_LOCK_TOUCH, {"execution_id": execution_id}).first()
    if found is None:
        session.info["execution"] = None
        return None
    row, now, seq, hash_ = found
    seed_head(session, execution_id, seq, hash_)
    anchor(session, now)
    session.info["execution"] = row
    session.info.setdefault("touched", set()).add(execution_id)
    return row, now


def get_execution(session: Session, execution_id: str) -> ExecutionRow | None:
    return session.get(ExecutionRow, execution_id)


def child_execution_states(session: Session, parent_task_run_id: str) -> dict[str, int]:
    """How many child executions of a task run are in each state."""
    query = (
        select(ExecutionRow.state, func.count())
        .where(ExecutionRow.parent_task_run_id == parent_task_run_id)
        .group_by(ExecutionRow.state)
    )
    return {state: count for state, count in session.execute(query).all()}


def child_executions(session: Session, parent_task_run_id: str) -> Sequence[ExecutionRow]:
    """The child executions a task run started (Subflow, ForEachItem), oldest first."""
    query = (
        select(ExecutionRow)
        .where(ExecutionRow.parent_task_run_id == parent_task_run_id)
        .order_by(ExecutionRow.created_at, ExecutionRow.id)
    )
    return session.execute(query).scalars().all()


def child_execution_outputs(session: Session, parent_task_run_id: str) -> list[dict[str, Any]]:
    """The flow outputs of a task run's child executions, in the order of their batch (trigger iteration)."""
    rows = session.execute(
        select(ExecutionRow.trigger, ExecutionRow.outputs).where(ExecutionRow.parent_task_run_id == parent_task_run_id)
    ).all()
    ordered = sorted(rows, key=lambda r: int(((r.trigger or {}).get("variables") or {}).get("taskRunIteration", 0)))
    return [dict(outputs or {}) for _, outputs in ordered]


_ACTIVE = (State.RUNNING, State.PAUSED, State.RESTARTED, State.KILLING, State.RETRYING)


def count_active_executions(session: Session, tenant: str, namespace: str, flow_id: str) -> int:
    """The flow's executions holding a concurrency slot, counted on `ix_executions_flow_live` (never its history).

    Its caller holds the flow's advisory lock while it counts, so this must stay a read of live rows.
    """
    return int(
        session.scalar(
            select(func.count())
            .select_from(ExecutionRow)
            .where(
                ExecutionRow.tenant == tenant,
                ExecutionRow.namespace == namespace,
                ExecutionRow.flow_id == flow_id,
                state_in(ExecutionRow.state, _ACTIVE),
            )
        )
        or 0
    )


def oldest_queued_executions(
    session: Session, tenant: str, namespace: str, flow_id: str, limit: int
) -> Sequence[ExecutionRow]:
    return session.scalars(
        select(ExecutionRow)
        .where(
            ExecutionRow.tenant == tenant,
            ExecutionRow.namespace == namespace,
            ExecutionRow.flow_id == flow_id,
            state_is(ExecutionRow.state, State.QUEUED),
        )
        .order_by(ExecutionRow.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def clear_sla(session: Session, execution_id: str) -> None:
    session.execute(update(ExecutionRow).where(ExecutionRow.id == execution_id).values(sla_due_at=None))


def running_children(session: Session, execution_id: str) -> list[str]:
    """Subflow executions of this one that have not ended, those not started yet (CREATED, QUEUED) first.

    A kill cascade goes through them in this order, so a queued child is killed before a running sibling's
    end frees the concurrency slot it waits for (FlowConcurrencyCaseTest.flowConcurrencyParallelSubflowKill).
    """
    terminal = [str(s) for s in State if s.is_terminal]
    rows = session.execute(
        select(ExecutionRow.id, ExecutionRow.state)
        .where(ExecutionRow.parent_execution_id == execution_id, ExecutionRow.state.not_in(terminal))
        .order_by(ExecutionRow.created_at)
    ).all()
    waiting = (str(State.CREATED), str(State.QUEUED))
    return [row.id for row in sorted(rows, key=lambda row: row.state not in waiting)]


def update_labels(session: Session, execution: ExecutionRow, labels: list[dict[str, str]]) -> None:
    session.execute(update(ExecutionRow).where(ExecutionRow.id == execution.id).values(labels=labels))
    execution.labels = labels


def touch_execution(session: Session, execution_id: str, at: datetime) -> None:
    """Mark progress (not a state change): keeps the stale-execution sweep away from live runs.

    No index may hold `updated_at` (nor be partial on it): then this update is HOT, written in place on its
    page without a new entry in every index (the labels GIN included). `test_hot_touches` holds that.
    """
    touched: set[str] = session.info.setdefault("touched", set())
    if execution_id in touched:
        return  # once per transaction is enough: its commit is the progress
    touched.add(execution_id)
    executions = table_of(ExecutionRow)
    session.execute(update(executions).where(executions.c.id == execution_id).values(updated_at=at))
