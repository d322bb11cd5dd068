"""SQL for LLM budgets: reserve what a model call may spend before it is sent, release it once recorded.

Caller-owned Session. A reservation is taken under a transaction-scoped advisory lock on the budget's
scope, after summing what the scope's calls spent (`llm_calls`) and what its in-flight calls reserved:
two calls of one execution cannot both read the same remainder and both pass. Usage recorded plus
reservations never exceed what was checked, so the overshoot of a budget is at most one call's reservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from orchestrator.tables import LlmBudgetReservationRow, LlmCallRow


@dataclass(frozen=True)
class Spent:
    """A budget scope's recorded usage and its in-flight reservations."""

    tokens: int
    cost: float
    reserved_tokens: int
    reserved_cost: float


def lock_scope(session: Session, scope_key: str) -> None:
    """Serialize the check-and-reserve of one scope until the transaction ends."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 17))"), {"key": scope_key})


def spent(
    session: Session, scope_key: str, now: datetime, *, execution_id: str | None, task_run_id: str | None
) -> Spent:
    """Tokens and cost recorded for the scope, and what its unexpired reservations hold."""
    used = select(
        func.coalesce(func.sum(LlmCallRow.tokens_in + LlmCallRow.tokens_out), 0),
        func.coalesce(func.sum(LlmCallRow.cost), 0.0),
    )
    if task_run_id is not None:
        used = used.where(LlmCallRow.task_run_id == task_run_id)
    if execution_id is not None:
        used = used.where(LlmCallRow.execution_id == execution_id)
    tokens, cost = session.execute(used).one()
    reserved_tokens, reserved_cost = session.execute(
        select(
            func.coalesce(func.sum(LlmBudgetReservationRow.tokens), 0),
            func.coalesce(func.sum(LlmBudgetReservationRow.cost), 0.0),
        ).where(LlmBudgetReservationRow.scope_key == scope_key, LlmBudgetReservationRow.expires_at > now)
    ).one()
    return Spent(int(tokens), float(cost), int(reserved_tokens), float(reserved_cost))


def insert_reservation(
    session: Session,
    *,
    scope_key: str,
    execution_id: str,
    task_run_id: str | None,
    tokens: int,
    cost: float,
    expires_at: datetime,
) -> int:
    statement = (
        insert(LlmBudgetReservationRow)
        .values(
            scope_key=scope_key,
            execution_id=execution_id,
            task_run_id=task_run_id,
            tokens=tokens,
            cost=cost,
            expires_at=expires_at,
        )
        .returning(LlmBudgetReservationRow.id)
    )
    return int(session.execute(statement).scalar_one())


def delete_reservation(session: Session, reservation_id: int) -> None:
    session.execute(delete(LlmBudgetReservationRow).where(LlmBudgetReservationRow.id == reservation_id))


def delete_expired(session: Session, now: datetime) -> None:
    session.execute(delete(LlmBudgetReservationRow).where(LlmBudgetReservationRow.expires_at <= now))
