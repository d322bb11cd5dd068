"""Timestamps as the database and Kestra's JSON see them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session


def iso_millis(moment: datetime) -> str:
    """Kestra's rendering of instants in expressions: milliseconds, UTC, `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


def db_now(session: Session) -> datetime:
    """The database's clock: the one clock every process agrees on, for heartbeats and their staleness."""
    moment: datetime = session.scalar(text("SELECT now()"))
    return moment


def db_started_at(session: Session) -> datetime:
    """When the database server started: right after a restart, no worker has had the chance to heartbeat."""
    moment: datetime = session.scalar(text("SELECT pg_postmaster_start_time()"))
    return moment


def iso(moment: datetime) -> str:
    """Kestra's timestamp form: ISO-8601 in UTC with a `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
