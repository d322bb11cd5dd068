"""PostgreSQL advisory locks."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def try_advisory_lock(session: Session, key: int) -> bool:
    """A transaction-scoped advisory lock, without waiting (one sweeper among replicas)."""
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}))
