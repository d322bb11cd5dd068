"""SQL over `llm_calls` for the usage views: sums by flow, model and day, and per-execution or per-task-run peaks.

Caller-owned Session, like every store module. Namespaces are narrowed to the caller's visible prefixes
(None: all), so an aggregate never leaks the spend of a namespace the caller cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Date, cast, false, func, or_, select, true
from sqlalchemy.orm import Session

from orchestrator.store.tables import LlmCallRow, TaskRunRow


@dataclass(frozen=True)
class UsageWindow:
    """Which calls an aggregate covers."""

    since: datetime | None = None
    until: datetime | None = None
    namespace: str | None = None  #: a prefix
    visible_prefixes: tuple[str, ...] | None = None  #: None: every namespace


@dataclass(frozen=True)
class UsageSum:
    key: tuple[Any, ...]
    tokens_in: int
    tokens_out: int
    cost: float
    calls: int


def _in_prefix(prefix: str) -> ColumnElement[bool]:
    base = prefix.rstrip(".")
    if not base:
        return true()
    escaped = base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(LlmCallRow.namespace == base, LlmCallRow.namespace.like(escaped + ".%", escape="\\"))


def _where(window: UsageWindow) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if window.since is not None:
        conditions.append(LlmCallRow.at >= window.since)
    if window.until is not None:
        conditions.append(LlmCallRow.at < window.until)
    if window.namespace:
        conditions.append(_in_prefix(window.namespace))
    if window.visible_prefixes is not None:
        conditions.append(or_(false(), *(_in_prefix(p) for p in window.visible_prefixes)))
    return conditions


def _sums(session: Session, window: UsageWindow, *keys: Any) -> list[UsageSum]:
    query = (
        select(
            *keys,
            func.coalesce(func.sum(LlmCallRow.tokens_in), 0),
            func.coalesce(func.sum(LlmCallRow.tokens_out), 0),
            func.coalesce(func.sum(LlmCallRow.cost), 0.0),
            func.count(),
        )
        .where(*_where(window))
        .group_by(*keys)
        .order_by(*keys)
    )
    n = len(keys)
    return [
        UsageSum(tuple(row[:n]), int(row[n]), int(row[n + 1]), float(row[n + 2]), int(row[n + 3]))
        for row in session.execute(query)
    ]


def usage_by_flow(session: Session, window: UsageWindow) -> list[UsageSum]:
    return _sums(session, window, LlmCallRow.namespace, LlmCallRow.flow_id)


def usage_by_model(session: Session, window: UsageWindow) -> list[UsageSum]:
    return _sums(session, window, LlmCallRow.provider, LlmCallRow.model)


def usage_by_day(session: Session, window: UsageWindow) -> list[UsageSum]:
    """Per UTC day (the column is timestamptz; the session's time zone is UTC)."""
    return _sums(session, window, cast(func.timezone("UTC", LlmCallRow.at), Date))


def usage_by_execution(session: Session, window: UsageWindow, namespace: str, flow_id: str) -> list[UsageSum]:
    """Per execution of one flow, with the time of its last call as the second key (newest last)."""
    flow = [LlmCallRow.namespace == namespace, LlmCallRow.flow_id == flow_id]
    return _sums_scoped(session, window, flow, LlmCallRow.execution_id)


def usage_by_task_run(
    session: Session, window: UsageWindow, namespace: str, flow_id: str, task_id: str
) -> list[UsageSum]:
    """Per task run of one task of one flow (task ids are on task runs, not on calls)."""
    flow = [LlmCallRow.namespace == namespace, LlmCallRow.flow_id == flow_id, TaskRunRow.task_id == task_id]
    return _sums_scoped(session, window, flow, LlmCallRow.task_run_id, join_task_runs=True)


def _sums_scoped(
    session: Session,
    window: UsageWindow,
    conditions: Sequence[ColumnElement[bool]],
    key: Any,
    *,
    join_task_runs: bool = False,
) -> list[UsageSum]:
    query = select(
        key,
        func.max(LlmCallRow.at),
        func.coalesce(func.sum(LlmCallRow.tokens_in), 0),
        func.coalesce(func.sum(LlmCallRow.tokens_out), 0),
        func.coalesce(func.sum(LlmCallRow.cost), 0.0),
        func.count(),
    )
    if join_task_runs:
        query = query.join(TaskRunRow, TaskRunRow.id == LlmCallRow.task_run_id)
    query = query.where(*_where(window), *conditions).group_by(key).order_by(func.max(LlmCallRow.at))
    return [
        UsageSum((row[0], row[1]), int(row[2]), int(row[3]), float(row[4]), int(row[5]))
        for row in session.execute(query)
    ]
