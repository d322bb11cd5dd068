"""The state of Flow triggers that wait for several preconditions within a time window.

Each ended execution that meets some of a trigger's preconditions is recorded in that trigger's current
window, under a row lock, in the transaction that would start the flow: two executions ending at the
same moment on different workers are serialised by the lock, so the window completes once and the flow
starts once. With `resetOnSuccess` (Kestra's default) a completed window starts over empty.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from orchestrator.core.flow import Flow, TriggerSpec
from orchestrator.core.flow_conditions import (
    EndedExecution,
    preconditions_matched,
    window_at,
    window_complete,
    window_spec,
)
from orchestrator.store.tables import FlowTriggerWindowRow


def record(
    session: Session, tenant: str, flow: Flow, trigger: TriggerSpec, ended: EndedExecution, now: datetime
) -> bool:
    """Count what `ended` meets in the trigger's current window; True when that completes the window."""
    preconditions = window_spec(trigger)
    if preconditions is None:
        return False
    matched = preconditions_matched(preconditions, ended)
    window = window_at(preconditions, now)
    if not matched or window is None:
        return False
    key = {"tenant": tenant, "namespace": flow.namespace, "flow_id": flow.id, "trigger_id": trigger.id}
    # Windows that ended are history: drop them as we go (sliding windows keep their one row).
    session.execute(
        delete(FlowTriggerWindowRow).where(
            *(getattr(FlowTriggerWindowRow, k) == v for k, v in key.items()),
            FlowTriggerWindowRow.window_end < now,
            FlowTriggerWindowRow.window_end != FlowTriggerWindowRow.window_start,
        )
    )
    session.execute(
        pg_insert(FlowTriggerWindowRow)
        .values(**key, window_start=window.start, window_end=window.end, met={}, updated_at=now)
        .on_conflict_do_nothing()
    )
    row = session.scalars(
        select(FlowTriggerWindowRow)
        .where(*(getattr(FlowTriggerWindowRow, k) == v for k, v in key.items()))
        .where(FlowTriggerWindowRow.window_start == window.start)
        .with_for_update()
    ).one()
    met = {**row.met, **{condition: now.isoformat() for condition in matched}}
    complete = window_complete(preconditions, window, met, now)
    if complete and preconditions.get("resetOnSuccess", True) is not False:
        met = {}
    row.met, row.updated_at = met, now
    return complete
