"""Counts and purges of executions, task runs, log lines and old flow revisions, on a caller-owned Session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Result, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from orchestrator.core.states import State
from orchestrator.store.tables import ExecutionRow, FlowRevisionRow, LogLineRow, TaskRunRow
from orchestrator.store.task_runs import forget_held_sets

_TERMINAL = [s.value for s in State if s.is_terminal]


def _scope(namespaces: Sequence[str], flows: Sequence[tuple[str, str]]) -> ColumnElement[bool]:
    either = [and_(ExecutionRow.namespace == ns, ExecutionRow.flow_id == fid) for ns, fid in flows]
    either += [ExecutionRow.namespace == ns for ns in namespaces]
    return or_(*either)


def _rowcount(result: Result[object]) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def execution_counts(
    session: Session,
    tenant: str,
    *,
    flows: Sequence[tuple[str, str]],
    namespaces: Sequence[str],
    states: Sequence[str] | None,
    start: datetime,
    end: datetime,
) -> dict[tuple[str, str], int]:
    """Executions created in [start, end] per (namespace, flow id), for the listed flows and namespaces."""
    query = (
        select(ExecutionRow.namespace, ExecutionRow.flow_id, func.count())
        .where(ExecutionRow.tenant == tenant)
        .where(ExecutionRow.created_at >= start, ExecutionRow.created_at <= end)
        .where(_scope(namespaces, flows))
        .group_by(ExecutionRow.namespace, ExecutionRow.flow_id)
    )
    if states is not None:
        query = query.where(ExecutionRow.state.in_(states))
    return {(ns, fid): int(n) for ns, fid, n in session.execute(query)}


def lock_purgeable_executions(
    session: Session,
    tenant: str,
    *,
    namespace: str | None,
    flow_id: str | None,
    start: datetime | None,
    end: datetime,
    states: Sequence[str] | None,
    keep: str,
) -> list[ExecutionRow]:
    """Ended executions created in [start, end] (never `keep`), locked; rows another transaction holds are skipped."""
    query = select(ExecutionRow).where(
        ExecutionRow.tenant == tenant,
        ExecutionRow.created_at <= end,
        ExecutionRow.state.in_(states if states is not None else _TERMINAL),
        ExecutionRow.state.in_(_TERMINAL),
        ExecutionRow.id != keep,
    )
    if start is not None:
        query = query.where(ExecutionRow.created_at >= start)
    if namespace is not None:
        query = query.where(ExecutionRow.namespace == namespace)
    if flow_id is not None:
        query = query.where(ExecutionRow.flow_id == flow_id)
    return list(session.scalars(query.with_for_update(skip_locked=True)))


def lock_executions(session: Session, tenant: str, execution_ids: Sequence[str]) -> list[ExecutionRow]:
    """These executions of the tenant (missing ids left out), locked for this transaction."""
    if not execution_ids:
        return []
    query = select(ExecutionRow).where(ExecutionRow.tenant == tenant, ExecutionRow.id.in_(list(execution_ids)))
    return list(session.scalars(query.order_by(ExecutionRow.id).with_for_update()))


def delete_log_lines_of(session: Session, execution_ids: Sequence[str]) -> int:
    """Delete the log lines of these executions; return how many."""
    return _rowcount(session.execute(delete(LogLineRow).where(LogLineRow.execution_id.in_(execution_ids))))


def delete_executions(session: Session, execution_ids: Sequence[str]) -> None:
    """Delete these executions and their task runs."""
    session.execute(delete(TaskRunRow).where(TaskRunRow.execution_id.in_(execution_ids)))
    forget_held_sets(session)
    session.execute(delete(ExecutionRow).where(ExecutionRow.id.in_(execution_ids)))


def started_children(session: Session, tenant: str, execution_id: str) -> list[str]:
    """Live executions this one started (their trigger names it), by id."""
    started_by = ExecutionRow.trigger["variables"]["executionId"].astext
    query = select(ExecutionRow.id).where(
        ExecutionRow.tenant == tenant,
        started_by == execution_id,
        ExecutionRow.state.not_in(_TERMINAL),
    )
    return list(session.scalars(query))


def delete_log_lines(
    session: Session,
    *,
    namespace: str | None,
    flow_id: str | None,
    levels: Sequence[str] | None,
    start: datetime | None,
    end: datetime,
) -> int:
    """Delete the log lines written in [start, end], by namespace, flow and level; return how many."""
    statement = delete(LogLineRow).where(LogLineRow.at <= end)
    if start is not None:
        statement = statement.where(LogLineRow.at >= start)
    if namespace is not None:
        statement = statement.where(LogLineRow.namespace == namespace)
    if flow_id is not None:
        statement = statement.where(LogLineRow.flow_id == flow_id)
    if levels is not None:
        statement = statement.where(LogLineRow.level.in_(levels))
    return _rowcount(session.execute(statement))


def flow_revisions(session: Session, tenant: str) -> dict[tuple[str, str], list[FlowRevisionRow]]:
    """Every flow's revisions by (namespace, flow id), oldest first; flows whose newest revision is deleted are
    left out (Kestra purges the revisions of live flows only)."""
    rows = session.scalars(
        select(FlowRevisionRow)
        .where(FlowRevisionRow.tenant == tenant)
        .order_by(FlowRevisionRow.namespace, FlowRevisionRow.flow_id, FlowRevisionRow.revision)
    ).all()
    found: dict[tuple[str, str], list[FlowRevisionRow]] = {}
    for row in rows:
        found.setdefault((row.namespace, row.flow_id), []).append(row)
    return {key: revisions for key, revisions in found.items() if not revisions[-1].deleted}


def revisions_in_use(session: Session, tenant: str) -> set[tuple[str, str, int]]:
    """(namespace, flow id, revision) that an execution not ended yet runs on."""
    rows = session.execute(
        select(ExecutionRow.namespace, ExecutionRow.flow_id, ExecutionRow.flow_revision)
        .where(ExecutionRow.tenant == tenant, ExecutionRow.state.not_in(_TERMINAL))
        .distinct()
    )
    return {(ns, fid, int(rev)) for ns, fid, rev in rows}


def delete_flow_revisions(session: Session, tenant: str, namespace: str, flow_id: str, revisions: Sequence[int]) -> int:
    """Delete these revisions of one flow; how many went."""
    result = session.execute(
        delete(FlowRevisionRow).where(
            FlowRevisionRow.tenant == tenant,
            FlowRevisionRow.namespace == namespace,
            FlowRevisionRow.flow_id == flow_id,
            FlowRevisionRow.revision.in_(list(revisions)),
        )
    )
    return _rowcount(result)
