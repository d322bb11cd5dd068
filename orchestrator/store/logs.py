"""Log lines of executions and task runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from orchestrator.store.tables import (
    LogLineRow,
    table_of,
)


def error_log_lines(session: Session, execution_id: str) -> Sequence[LogLineRow]:
    return session.scalars(
        select(LogLineRow)
        .where(LogLineRow.execution_id == execution_id, LogLineRow.level == "ERROR")
        .order_by(LogLineRow.id)
    ).all()


#: Lines per INSERT: one statement's parameters (about ten a line) stay far below PostgreSQL's 65,535.
_LINES_PER_INSERT = 1000


def insert_log_lines(session: Session, lines: Sequence[dict[str, Any]]) -> None:
    """Insert a task run's (or an execution's) lines: one multi-row INSERT, nothing returned."""
    for start in range(0, len(lines), _LINES_PER_INSERT):
        session.execute(insert(table_of(LogLineRow)).values(list(lines[start : start + _LINES_PER_INSERT])))


def log_lines_of(session: Session, execution_id: str, *, task_run_id: str | None = None) -> Sequence[LogLineRow]:
    query = select(LogLineRow).where(LogLineRow.execution_id == execution_id)
    if task_run_id:
        query = query.where(LogLineRow.task_run_id == task_run_id)
    return session.scalars(query.order_by(LogLineRow.id)).all()
