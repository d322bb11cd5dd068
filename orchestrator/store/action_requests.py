"""The `action_requests` table: which execution an API request with an Idempotency-Key started."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session


def forget_requests_older_than(session: Session, ttl: timedelta) -> None:
    """Delete the keys remembered longer than `ttl` (by the database clock)."""
    session.execute(
        text("DELETE FROM action_requests WHERE created_at < now() - make_interval(secs => :ttl)"),
        {"ttl": ttl.total_seconds()},
    )


def execution_of_request(session: Session, key: str) -> str | None:
    """The execution the request with this (hashed) key started, or None when it is new."""
    seen = session.execute(text("SELECT execution_id FROM action_requests WHERE key = :k"), {"k": key}).scalar()
    return None if seen is None else str(seen)


def remember_request(session: Session, key: str, execution_id: str) -> None:
    """Record that the request with this (hashed) key started `execution_id`."""
    session.execute(
        text("INSERT INTO action_requests (key, execution_id) VALUES (:k, :e)"), {"k": key, "e": execution_id}
    )
