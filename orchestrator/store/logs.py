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
_INSERT_LINES = insert(table_of(LogLineRow))


def insert_log_lines(session: Session, lines: Sequence[dict[str, Any]]) -> None:
    """Insert a task run's (or an execution's) lines: multi-row INSERTs from one cached statement, nothing returned.

    A list of parameter sets (not `.values([...])`, which compiles afresh on every call): SQLAlchemy batches
    it into multi-row INSERTs below PostgreSQL's parameter limit (insertmanyvalues)."""
    if lines:
        session.execute(_INSERT_LINES, list(lines))


def log_lines_of(session: Session, execution_id: str, *, task_run_id: str | None = None) -> Sequence[LogLineRow]:
    query = select(LogLineRow).where(LogLineRow.execution_id == execution_id)
    if task_run_id:
        query = query.where(LogLineRow.task_run_id == task_run_id)
    return session.scalars(query.order_by(LogLineRow.id)).all()
