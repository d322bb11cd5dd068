"""Queries over `events` (the outbox of published events) and `trigger_receipts`; the caller owns the transaction."""

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
class PublishedEvent:
    """One row of the outbox."""

    id: str
    tenant: str
    name: str
    namespace: str
    flow_id: str
    execution_id: str
    task_id: str
    task_run_id: str
    attempt: int
    payload: Any
    created_at: datetime
    delivered_at: datetime | None


_COLUMNS = "id, tenant, name, namespace, flow_id, execution_id, task_id, task_run_id, attempt, payload, created_at"

_INSERT = text(
    f"INSERT INTO events ({_COLUMNS}) VALUES (:id, :tenant, :name, :namespace, :flow_id, :execution_id, :task_id, "
    ":task_run_id, :attempt, :payload, :created_at) ON CONFLICT (task_run_id, attempt) DO NOTHING RETURNING id"
).bindparams(bindparam("payload", type_=JSONB))


def insert_event(session: Session, event: PublishedEvent) -> bool:
    """Write one event to the outbox; False when this attempt of the task run already published it."""
    values = {k: getattr(event, k) for k in _COLUMNS.split(", ")}
    return session.scalar(_INSERT, values) is not None


def get_event(session: Session, event_id: str) -> PublishedEvent | None:
    row = session.execute(text(f"SELECT {_COLUMNS}, delivered_at FROM events WHERE id = :id"), {"id": event_id}).first()
    return PublishedEvent(*row) if row is not None else None


def undelivered_events(session: Session, tenant: str, created_before: datetime, limit: int = 100) -> Sequence[str]:
    """Events committed but not yet delivered, oldest first (a crash between commit and delivery leaves them)."""
    return session.scalars(
        text(
            "SELECT id FROM events WHERE tenant = :tenant AND delivered_at IS NULL AND created_at < :before "
            "ORDER BY created_at LIMIT :limit"
        ),
        {"tenant": tenant, "before": created_before, "limit": limit},
    ).all()


def mark_delivered(session: Session, event_id: str, at: datetime) -> None:
    session.execute(
        text("UPDATE events SET delivered_at = :at WHERE id = :id AND delivered_at IS NULL"), {"id": event_id, "at": at}
    )


def claim_receipt(
    session: Session, tenant: str, source_id: str, key: tuple[str, str, str], execution_id: str, at: datetime
) -> bool:
    """Record that `source_id` fired trigger `key` (namespace, flow, trigger id); False when it already had.

    A concurrent claimer of the same receipt waits on the unique index until this transaction ends, and
    then gets False: at most one execution per (source, trigger), with any number of deliverers.
    """
    inserted = session.scalar(
        text(
            "INSERT INTO trigger_receipts "
            "(tenant, source_id, namespace, flow_id, trigger_id, execution_id, created_at) "
            "VALUES (:tenant, :source_id, :namespace, :flow_id, :trigger_id, :execution_id, :at) "
            "ON CONFLICT DO NOTHING RETURNING execution_id"
        ),
        {
            "tenant": tenant,
            "source_id": source_id,
            "namespace": key[0],
            "flow_id": key[1],
            "trigger_id": key[2],
            "execution_id": execution_id,
            "at": at,
        },
    )
    return inserted is not None


def receipt_execution(session: Session, tenant: str, source_id: str, key: tuple[str, str, str]) -> str | None:
    """The execution a source already started through trigger `key`, if any."""
    found = session.scalar(
        text(
            "SELECT execution_id FROM trigger_receipts WHERE tenant = :tenant AND source_id = :source_id "
            "AND namespace = :namespace AND flow_id = :flow_id AND trigger_id = :trigger_id"
        ),
        {"tenant": tenant, "source_id": source_id, "namespace": key[0], "flow_id": key[1], "trigger_id": key[2]},
    )
    return str(found) if found is not None else None


def receipts_for(session: Session, tenant: str, source_id: str) -> Sequence[tuple[str, str, str, str]]:
    """(namespace, flow id, trigger id, execution id) of every trigger `source_id` fired."""
    rows = session.execute(
        text(
            "SELECT namespace, flow_id, trigger_id, execution_id FROM trigger_receipts "
            "WHERE tenant = :tenant AND source_id = :source_id ORDER BY namespace, flow_id, trigger_id"
        ),
        {"tenant": tenant, "source_id": source_id},
    ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]
