"""Queries over `notification_outbox` (requests written with their task run); the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import bindparam

PENDING, SENT, FAILED = "PENDING", "SENT", "FAILED"


@dataclass(frozen=True)
class OutboxEntry:
    """One notification to send: the request as the task rendered it, and where its delivery stands."""

    id: str
    tenant: str
    idempotency_key: str
    execution_id: str
    task_run_id: str
    task_id: str
    kind: str  #: the task type that asked for it (SlackIncomingWebhook, ...)
    method: str
    url: str
    target: str  #: scheme and host of `url`: what is kept once the request is erased
    headers: dict[str, str]
    body: bytes | None
    connect_timeout_s: float
    read_timeout_s: float
    status: str
    sends: int
    due_at: datetime
    created_at: datetime


_COLUMNS = (
    "id, tenant, idempotency_key, execution_id, task_run_id, task_id, kind, method, url, target, headers, body, "
    "connect_timeout_s, read_timeout_s, status, sends, due_at, created_at"
)
_NAMES = _COLUMNS.split(", ")

_INSERT = text(
    f"INSERT INTO notification_outbox ({_COLUMNS}) VALUES ({', '.join(':' + n for n in _NAMES)}) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
).bindparams(bindparam("headers", type_=JSONB))


def _entry(row: Any) -> OutboxEntry:
    values = dict(zip(_NAMES, row, strict=True))
    values["body"] = bytes(values["body"]) if values["body"] is not None else None
    return OutboxEntry(**values)


def insert_entry(session: Session, entry: OutboxEntry) -> bool:
    """Write one request to the outbox; False when its key already has one (the logical task already asked)."""
    return session.scalar(_INSERT, {n: getattr(entry, n) for n in _NAMES}) is not None


def take_due(session: Session, tenant: str, now: datetime, margin_s: float, limit: int = 50) -> list[OutboxEntry]:
    """Lease the pending requests due by `now` to the caller, oldest first, and return them.

    The lease runs the request's own timeouts plus `margin_s`: a sender that dies mid-send leaves the row to
    the next sweep once it runs out; SKIP LOCKED keeps two sweepers from leasing the same row.
    """
    rows = session.execute(
        text(
            "UPDATE notification_outbox SET due_at = :now + make_interval(secs => connect_timeout_s + read_timeout_s "
            "+ :margin) WHERE id IN (SELECT id FROM notification_outbox WHERE tenant = :tenant AND status = 'PENDING' "
            "AND due_at <= :now ORDER BY due_at LIMIT :limit FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_COLUMNS}"
        ),
        {"tenant": tenant, "now": now, "margin": margin_s, "limit": limit},
    ).all()
    return [_entry(row) for row in rows]


def get_entry(session: Session, entry_id: str) -> OutboxEntry | None:
    row = session.execute(text(f"SELECT {_COLUMNS} FROM notification_outbox WHERE id = :id"), {"id": entry_id}).first()
    return _entry(row) if row is not None else None


def end_entry(session: Session, entry_id: str, status: str, at: datetime, code: int | None, error: str | None) -> bool:
    """Mark a pending request SENT or FAILED and erase what it carried (the URL of a Slack webhook is a secret);
    False when it had already ended (another sender got there first): Chorus never re-sends an ended row."""
    ended = session.scalar(
        text(
            "UPDATE notification_outbox SET status = :status, ended_at = :at, response_code = :code, "
            "last_error = :error, sends = sends + 1, url = '', headers = '{}'::jsonb, body = NULL "
            "WHERE id = :id AND status = 'PENDING' RETURNING id"
        ),
        {"id": entry_id, "status": status, "at": at, "code": code, "error": error},
    )
    return ended is not None


def postpone_entry(session: Session, entry_id: str, due_at: datetime, code: int | None, error: str) -> int | None:
    """Count a failed send that may succeed later and set when to try again; the number of sends so far."""
    sends = session.scalar(
        text(
            "UPDATE notification_outbox SET due_at = :due, response_code = :code, last_error = :error, "
            "sends = sends + 1 WHERE id = :id AND status = 'PENDING' RETURNING sends"
        ),
        {"id": entry_id, "due": due_at, "code": code, "error": error},
    )
    return int(sends) if sends is not None else None


def purge_ended(session: Session, ended_before: datetime, limit: int) -> int:
    """Delete up to `limit` SENT or FAILED rows that ended before `ended_before`, oldest first; how many went.

    A pending row is never deleted, however old: it is a notification still owed. SKIP LOCKED: a row a sender
    is ending right now is left to the next purge."""
    result = session.execute(
        text(
            "DELETE FROM notification_outbox WHERE id IN (SELECT id FROM notification_outbox WHERE status <> 'PENDING' "
            "AND ended_at < :before ORDER BY ended_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
        ),
        {"before": ended_before, "limit": limit},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def entries_of(session: Session, execution_id: str) -> Sequence[dict[str, Any]]:
    """Where each notification of an execution stands (no URL, headers or body: they may hold secrets)."""
    rows = session.execute(
        text(
            "SELECT idempotency_key, task_run_id, task_id, kind, target, status, sends, created_at, ended_at, "
            "response_code, last_error FROM notification_outbox WHERE execution_id = :id ORDER BY created_at"
        ),
        {"id": execution_id},
    ).mappings()
    return [dict(row) for row in rows]
