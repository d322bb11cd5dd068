"""Kestra's metric repository on the engine side: the metrics a `metric.Publish` task run published are recorded
in the transaction that records its success (so a failed or rolled-back attempt records none), and are what
`metric.PurgeMetrics` and `execution.PurgeExecutions` (`purgeMetric`) delete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator import store
from orchestrator.store import metric_entries
from orchestrator.store.database import Session
from orchestrator.store.metric_entries import MetricEntry
from orchestrator.store.tables import ExecutionRow, TaskRunRow


def record_published_metrics(
    session: Session, execution: ExecutionRow, row: TaskRunRow, outputs: Mapping[str, Any] | None
) -> int:
    """Record the `metrics` a Publish task run returned (already validated by its body); return how many."""
    now = store.utcnow()
    entries = [
        MetricEntry(
            tenant=execution.tenant,
            namespace=execution.namespace,
            flow_id=execution.flow_id,
            execution_id=execution.id,
            task_id=row.task_id,
            task_run_id=row.id,
            attempt=row.attempt,
            type=str(metric.get("type", "counter")),
            name=str(metric["name"]),
            value=float(metric["value"]),
            tags={str(k): str(v) for k, v in (metric.get("tags") or {}).items()},
            at=now,
        )
        for metric in (outputs or {}).get("metrics") or []
        if isinstance(metric, Mapping) and "name" in metric and isinstance(metric.get("value"), int | float)
    ]
    metric_entries.insert_metrics(session, entries)
    return len(entries)
