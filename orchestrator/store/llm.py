"""SQL over `llm_calls`: insert a call, find a recorded answer to replay, sum usage. Caller-owned Session."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from orchestrator.store.tables import LlmCallRow


def insert_llm_call(session: Session, values: dict[str, Any]) -> int:
    """Insert one call and return its id."""
    return int(session.execute(insert(LlmCallRow).values(**values).returning(LlmCallRow.id)).scalar_one())


def recorded_response(session: Session, task_run_id: str, request_hash: str) -> tuple[int, dict[str, Any]] | None:
    """The newest successful answer recorded for this task run and this exact request, with its call id."""
    row = session.execute(
        select(LlmCallRow.id, LlmCallRow.response)
        .where(
            LlmCallRow.task_run_id == task_run_id,
            LlmCallRow.request_hash == request_hash,
            LlmCallRow.error.is_(None),
            LlmCallRow.response.is_not(None),
        )
        .order_by(LlmCallRow.id.desc())
        .limit(1)
    ).first()
    return (row.id, row.response) if row is not None and row.response is not None else None


def usage(
    session: Session, *, task_run_id: str | None = None, execution_id: str | None = None
) -> tuple[int, int, float, int]:
    """Tokens in, tokens out, cost and number of calls, for one task run or one execution."""
    query = select(
        func.coalesce(func.sum(LlmCallRow.tokens_in), 0),
        func.coalesce(func.sum(LlmCallRow.tokens_out), 0),
        func.coalesce(func.sum(LlmCallRow.cost), 0.0),
        func.count(),
    )
    if task_run_id is not None:
        query = query.where(LlmCallRow.task_run_id == task_run_id)
    if execution_id is not None:
        query = query.where(LlmCallRow.execution_id == execution_id)
    tokens_in, tokens_out, cost, calls = session.execute(query).one()
    return int(tokens_in), int(tokens_out), float(cost), int(calls)


def calls_of(session: Session, execution_id: str) -> list[LlmCallRow]:
    """Every call of an execution, oldest first (for the API's LLM usage view and tests)."""
    return list(
        session.scalars(select(LlmCallRow).where(LlmCallRow.execution_id == execution_id).order_by(LlmCallRow.id))
    )


def call_by_id(session: Session, call_id: int) -> LlmCallRow | None:
    return session.get(LlmCallRow, call_id)
