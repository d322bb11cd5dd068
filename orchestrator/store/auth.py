"""Queries and writes over users, API tokens and role bindings, on a caller-owned Session (never commits)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from orchestrator.store.tables import ApiTokenRow, RoleBindingRow, UserRow


def user_by_name(session: Session, username: str) -> UserRow | None:
    return session.scalars(select(UserRow).where(UserRow.username == username)).first()


def user_by_id(session: Session, user_id: str) -> UserRow | None:
    return session.get(UserRow, user_id)


def users(session: Session) -> Sequence[UserRow]:
    return session.scalars(select(UserRow).order_by(UserRow.username)).all()


def count_users(session: Session) -> int:
    return len(session.scalars(select(UserRow.id).limit(1)).all())


def insert_user(session: Session, row: UserRow) -> UserRow:
    session.add(row)
    session.flush()
    return row


def set_password_hash(session: Session, user_id: str, password_hash: str) -> None:
    session.execute(update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash))


def bindings_of(session: Session, user_id: str) -> Sequence[RoleBindingRow]:
    return session.scalars(
        select(RoleBindingRow).where(RoleBindingRow.user_id == user_id).order_by(RoleBindingRow.id)
    ).all()


def add_binding(session: Session, user_id: str, role: str, namespace_prefix: str) -> None:
    session.execute(
        pg_insert(RoleBindingRow)
        .values(user_id=user_id, role=role, namespace_prefix=namespace_prefix)
        .on_conflict_do_nothing(constraint="uq_role_bindings")
    )


def remove_bindings(session: Session, user_id: str) -> None:
    session.execute(delete(RoleBindingRow).where(RoleBindingRow.user_id == user_id))


def token_by_hash(session: Session, token_hash: str) -> ApiTokenRow | None:
    return session.scalars(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash)).first()


def token_by_id(session: Session, token_id: str) -> ApiTokenRow | None:
    return session.get(ApiTokenRow, token_id)


def tokens(session: Session, user_id: str | None = None) -> Sequence[ApiTokenRow]:
    query = select(ApiTokenRow).order_by(ApiTokenRow.created_at)
    if user_id is not None:
        query = query.where(ApiTokenRow.user_id == user_id)
    return session.scalars(query).all()


def insert_token(session: Session, row: ApiTokenRow) -> ApiTokenRow:
    session.add(row)
    session.flush()
    return row


def revoke_token(session: Session, token_id: str, at: datetime) -> bool:
    result = session.execute(
        update(ApiTokenRow).where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None)).values(revoked_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def touch_token(session: Session, token_id: str, at: datetime) -> None:
    session.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=at))
