"""Log lines of executions and task runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from orchestrator.store.tables import (
    LogLineRow,
    table_of,
)


def error_log_lines(session: Session, execution_id: str) -> Sequence[LogLineRow]:
    write_pending_log_lines(session)  # this transaction's own lines too
    return session.scalars(
        select(LogLineRow)
        .where(LogLineRow.execution_id == execution_id, LogLineRow.level == "ERROR")
        .order_by(LogLineRow.id)
    ).all()


#: Lines per INSERT: one statement's parameters (about ten a line) stay far below PostgreSQL's 65,535.
_INSERT_LINES = insert(table_of(LogLineRow))


_PENDING = "log_lines_pending"  #: lines this transaction inserted and not yet wrote


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def insert_log_lines(session: Session, lines: Sequence[dict[str, Any]]) -> None:
    """Insert a task run's (or an execution's) lines, written with the transaction's other lines (and its audit
    events) in one statement just before it commits (a transaction that runs several task runs inserts their
    lines once); inside a savepoint, whose rollback must take them along, at once. Reads of this module see them
    first."""
    if not lines:
        return
    pending: list[dict[str, Any]] = session.info.setdefault(_PENDING, [])
    pending.extend(lines)
    if session.in_nested_transaction():
        write_pending_log_lines(session)


def take_pending_log_lines(session: Session) -> list[dict[str, Any]]:
    """The lines this transaction inserted and not yet wrote, now the caller's to write (`commit_writes`: with the
    transaction's audit events, in one statement)."""
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    return pending


def write_log_lines(session: Session, lines: Sequence[dict[str, Any]]) -> None:
    if lines:
        session.execute(_INSERT_LINES, list(lines))


def write_pending_log_lines(session: Session) -> None:
    """Write the lines this transaction inserted and not yet wrote: multi-row INSERTs from one cached statement.

    A list of parameter sets (not `.values([...])`, which compiles afresh on every call): SQLAlchemy batches
    it into multi-row INSERTs below PostgreSQL's parameter limit (insertmanyvalues)."""
    write_log_lines(session, take_pending_log_lines(session))


def log_lines_of(session: Session, execution_id: str, *, task_run_id: str | None = None) -> Sequence[LogLineRow]:
    write_pending_log_lines(session)  # this transaction's own lines too
    query = select(LogLineRow).where(LogLineRow.execution_id == execution_id)
    if task_run_id:
        query = query.where(LogLineRow.task_run_id == task_run_id)
    return session.scalars(query.order_by(LogLineRow.id)).all()
