"""Queries over the `triggers` table (schedule state of flow triggers); the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orchestrator.store.flows import flows_version_query, live_flows_query
from orchestrator.store.notify import fetch_one
from orchestrator.store.tables import FlowRevisionRow, TriggerRow


def triggers_of(session: Session, tenant: str, namespace: str | None = None) -> Sequence[TriggerRow]:
    query = select(TriggerRow).where(TriggerRow.tenant == tenant)
    if namespace:
        query = query.where(TriggerRow.namespace == namespace)
    return session.scalars(query.order_by(TriggerRow.namespace, TriggerRow.flow_id, TriggerRow.trigger_id)).all()


def get_trigger(
    session: Session, tenant: str, namespace: str, flow_id: str, trigger_id: str, *, lock: bool = False
) -> TriggerRow | None:
    query = select(TriggerRow).where(
        TriggerRow.tenant == tenant,
        TriggerRow.namespace == namespace,
        TriggerRow.flow_id == flow_id,
        TriggerRow.trigger_id == trigger_id,
    )
    return session.scalars(query.with_for_update() if lock else query).first()


def due_triggers(session: Session, tenant: str, now: datetime, limit: int = 100) -> Sequence[TriggerRow]:
    """Enabled triggers whose next fire time has come, locked (a row being edited elsewhere is skipped)."""
    return session.scalars(
        select(TriggerRow)
        .where(TriggerRow.tenant == tenant, TriggerRow.enabled.is_(True), TriggerRow.next_fire_at <= now)
        .order_by(TriggerRow.next_fire_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def insert_trigger(
    session: Session,
    tenant: str,
    key: tuple[str, str, str],
    *,
    next_fire_at: datetime | None,
    state: dict[str, Any],
    now: datetime,
) -> TriggerRow:
    row = TriggerRow(
        tenant=tenant,
        namespace=key[0],
        flow_id=key[1],
        trigger_id=key[2],
        enabled=True,
        next_fire_at=next_fire_at,
        last_fire_at=None,
        last_execution_id=None,
        state=state,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def delete_trigger(session: Session, row: TriggerRow) -> None:
    session.execute(
        delete(TriggerRow).where(
            TriggerRow.tenant == row.tenant,
            TriggerRow.namespace == row.namespace,
            TriggerRow.flow_id == row.flow_id,
            TriggerRow.trigger_id == row.trigger_id,
        )
    )


def flows_with_flow_triggers(session: Session, tenant: str) -> Sequence[FlowRevisionRow]:
    """The newest revision of live flows that may declare a Flow trigger (a cheap textual pre-filter)."""
    query = live_flows_query(tenant)
    return session.scalars(
        query.where(FlowRevisionRow.source.contains("triggers"), FlowRevisionRow.source.contains("Flow"))
    ).all()


def backfilling_triggers(session: Session, tenant: str, limit: int = 100) -> Sequence[TriggerRow]:
    """Triggers with a backfill in progress, locked (skipping rows being edited elsewhere)."""
    return session.scalars(
        select(TriggerRow)
        .where(TriggerRow.tenant == tenant, TriggerRow.state.has_key("backfill"))
        .order_by(TriggerRow.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def flows_version(session: Session, tenant: str) -> tuple[Any, ...]:
    """Changes whenever a flow is deployed, updated or deleted: (revisions, newest revision time, deleted)."""
    return tuple(session.execute(flows_version_query(tenant)).one())


def flows_version_on(conn: psycopg.Connection[Any], tenant: str) -> tuple[Any, ...]:
    """`flows_version`, read on the flows listener's own connection (store.notify.listen_flows)."""
    return fetch_one(conn, flows_version_query(tenant))
