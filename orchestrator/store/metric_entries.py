"""Queries over `metric_entries`, Kestra's metric repository: what `metric.Publish` recorded per task run.

The caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import bindparam


@dataclass(frozen=True)
class MetricEntry:
    """One recorded metric of one task run attempt (Kestra's `MetricEntry`)."""

    tenant: str
    namespace: str
    flow_id: str
    execution_id: str
    task_id: str
    task_run_id: str
    attempt: int
    type: str
    name: str
    value: float
    tags: dict[str, str]
    at: datetime


_COLUMNS = "tenant, namespace, flow_id, execution_id, task_id, task_run_id, attempt, type, name, value, tags, at"

_INSERT = text(
    f"INSERT INTO metric_entries ({_COLUMNS}) VALUES (:tenant, :namespace, :flow_id, :execution_id, :task_id, "
    ":task_run_id, :attempt, :type, :name, :value, :tags, :at)"
).bindparams(bindparam("tags", type_=JSONB))


def insert_metrics(session: Session, entries: Sequence[MetricEntry]) -> None:
    if entries:
        session.execute(_INSERT, [{k: getattr(e, k) for k in _COLUMNS.split(", ")} for e in entries])


def metrics_of(session: Session, execution_id: str) -> list[MetricEntry]:
    rows = session.execute(
        text(f"SELECT {_COLUMNS} FROM metric_entries WHERE execution_id = :id ORDER BY id"), {"id": execution_id}
    ).all()
    return [MetricEntry(*row) for row in rows]


def delete_metrics_of(session: Session, execution_ids: Sequence[str]) -> int:
    """Delete the metrics of these executions (PurgeExecutions' `purgeMetric`); return how many."""
    result = session.execute(
        text("DELETE FROM metric_entries WHERE execution_id = ANY(:ids)"), {"ids": list(execution_ids)}
    )
    return int(getattr(result, "rowcount", 0) or 0)


def purge_metrics(
    session: Session,
    tenant: str,
    *,
    namespace: str | None,
    flow_id: str | None,
    start: datetime | None,
    end: datetime,
) -> int:
    """Delete the metrics recorded in [start, end]: of one flow (namespace and flowId), of a namespace prefix
    (namespace alone: Kestra's PurgeMetrics reads it as a prefix), or of the whole tenant; return how many."""
    where = ["tenant = :tenant", "at <= :end"]
    values: dict[str, Any] = {"tenant": tenant, "end": end}
    if start is not None:
        where.append("at >= :start")
        values["start"] = start
    if namespace is not None and flow_id is not None:
        where += ["namespace = :namespace", "flow_id = :flow_id"]
        values |= {"namespace": namespace, "flow_id": flow_id}
    elif namespace is not None:
        where.append("starts_with(namespace, :namespace)")  # a literal prefix: no LIKE wildcard in a name
        values["namespace"] = namespace
    result = session.execute(text(f"DELETE FROM metric_entries WHERE {' AND '.join(where)}"), values)
    return int(getattr(result, "rowcount", 0) or 0)
