"""Queries and writes over namespace KV entries, on a caller-owned Session (never commits)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from orchestrator.store.tables import KeyValueRow


def get_entry(session: Session, tenant: str, namespace: str, key: str, *, lock: bool = False) -> KeyValueRow | None:
    query = select(KeyValueRow).where(
        KeyValueRow.tenant == tenant, KeyValueRow.namespace == namespace, KeyValueRow.key == key
    )
    return session.scalars(query.with_for_update() if lock else query).first()


def entries(session: Session, tenant: str, namespace: str, *, now: datetime) -> Sequence[KeyValueRow]:
    """Live (unexpired) entries of one namespace, by key."""
    return session.scalars(
        select(KeyValueRow)
        .where(
            KeyValueRow.tenant == tenant,
            KeyValueRow.namespace == namespace,
            (KeyValueRow.expires_at.is_(None)) | (KeyValueRow.expires_at > now),
        )
        .order_by(KeyValueRow.key)
    ).all()


def upsert_entry(
    session: Session,
    tenant: str,
    namespace: str,
    key: str,
    *,
    value_type: str,
    value: Any,
    description: str | None,
    expires_at: datetime | None,
    now: datetime,
) -> int:
    """Insert or replace an entry; the revision counts up from 1 across replacements. Returns it."""
    insert = pg_insert(KeyValueRow).values(
        tenant=tenant,
        namespace=namespace,
        key=key,
        value_type=value_type,
        value={"v": value},
        description=description,
        revision=1,
        created_at=now,
        updated_at=now,
        expires_at=expires_at,
    )
    statement = insert.on_conflict_do_update(
        index_elements=["tenant", "namespace", "key"],
        set_={
            "value_type": insert.excluded.value_type,
            "value": insert.excluded.value,
            "description": insert.excluded.description,
            "revision": KeyValueRow.revision + 1,
            "updated_at": insert.excluded.updated_at,
            "expires_at": insert.excluded.expires_at,
        },
    ).returning(KeyValueRow.revision)
    return int(session.execute(statement).scalar_one())


def delete_entry(session: Session, tenant: str, namespace: str, key: str) -> bool:
    result = session.execute(
        delete(KeyValueRow).where(
            KeyValueRow.tenant == tenant, KeyValueRow.namespace == namespace, KeyValueRow.key == key
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def all_entries(session: Session, tenant: str) -> Sequence[KeyValueRow]:
    """Every entry of the tenant, expired ones included (for purges that filter in Python)."""
    return session.scalars(select(KeyValueRow).where(KeyValueRow.tenant == tenant)).all()
