"""The audit chains' writing side: events hashed and MAC'd in the changing transaction, heads upserted at commit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, TextClause, bindparam, event, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.selectable import LateralFromClause

from orchestrator.core.audit import GENESIS_HASH, AuditKey, chain_hash, event_mac, head_mac
from orchestrator.store.clock import iso, utcnow
from orchestrator.store.pending_runs import RUNS_CTE
from orchestrator.store.tables import (
    AuditEventRow,
    AuditHeadRow,
    LogLineRow,
)


def flow_chain_key(tenant: str, namespace: str, flow_id: str) -> str:
    return f"flow:{tenant}/{namespace}/{flow_id}"


def namespace_chain_key(tenant: str, namespace: str) -> str:
    """The chain of a namespace's own objects (its KV entries): appends lock one namespace's head, not the cluster's."""
    return f"namespace:{tenant}/{namespace}"


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_transaction_memory(session: Session) -> None:
    """Remembered chain heads are only true while this transaction holds their locks; touches are per
    transaction; events not written by a rolled-back transaction are dropped with it."""
    session.info.pop("audit_heads", None)
    session.info.pop("audit_pending", None)
    session.info.pop("touched", None)


#: Built once: a statement built per call costs more CPU than its round trip (construction and cache key).
_LOCK_HEAD = (
    select(AuditHeadRow.seq, AuditHeadRow.hash)
    .where(AuditHeadRow.chain_key == bindparam("chain_key"))
    .with_for_update()
)


def append_audit(
    session: Session,
    chain_key: str,
    *,
    actor: str,
    action: str,
    subject: str | None,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> AuditEventRow:
    """Append one event to a hash chain; the head row's lock orders concurrent appends.

    The event's place and hash are decided now; the row is written with the transaction's other events
    in one statement just before it commits (`write_pending_audit`), so it commits or rolls back with
    the change it records. The head row stays locked by this transaction after its first read, so later
    appends to the same chain trust what this transaction decided last. Inside a savepoint, whose
    rollback must take its events along, events are written at once.
    """
    return AuditEventRow(
        **note_audit(session, chain_key, actor=actor, action=action, subject=subject, payload=payload, at=at)
    )


def note_audit(
    session: Session,
    chain_key: str,
    *,
    actor: str,
    action: str,
    subject: str | None,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> dict[str, Any]:
    """`append_audit` for a caller that needs no row back (the hot path's transitions): the event's column
    values, with no ORM object built for them."""
    at = at or utcnow()
    heads: dict[str, tuple[int, str]] = session.info.setdefault("audit_heads", {})
    nested = session.in_nested_transaction()
    if nested:
        write_pending_audit(session)  # the savepoint's own head read must see them
    cached = None if nested else heads.get(chain_key)
    if cached is not None:
        seq, prev_hash = cached[0] + 1, cached[1]
    else:
        head = session.execute(_LOCK_HEAD, {"chain_key": chain_key}).first()
        seq, prev_hash = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
    event = hashed_event(chain_key, seq, at, actor, action, subject, payload)
    digest = chain_hash(prev_hash, event)
    key = audit_key_of(session)
    row = {
        "chain_key": chain_key,
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "payload": payload,
        "prev_hash": prev_hash,
        "hash": digest,
        "key_id": key.key_id if key else None,
        "mac": event_mac(key, digest) if key else None,  # one HMAC: as cheap as the hash, no round trip
    }
    if nested:
        heads.pop(chain_key, None)
        _write_audit(session, [row])
    else:
        heads[chain_key] = (seq, digest)
        session.info.setdefault("audit_pending", []).append(row)
    return row


def locked_head_of(chain_key: ColumnElement[str] | InstrumentedAttribute[str]) -> LateralFromClause:
    """The head of the chain `chain_key` names, locked, to LEFT JOIN LATERAL to the statement that locks its subject.

    An execution's lock statement reads its chain's head in the same round trip: `... FROM locked LEFT JOIN
    LATERAL (SELECT seq, hash FROM audit_heads WHERE chain_key = locked.id FOR UPDATE) head ON true`. The
    nested loop takes the subject's row lock first (the outer side, a CTE) and the head's second, the order
    every writer of an execution's chain takes them in. (A plain outer join cannot lock: PostgreSQL refuses
    FOR UPDATE on the nullable side of an outer join; a lateral subquery locks its own rows.)
    """
    return (
        select(AuditHeadRow.seq, AuditHeadRow.hash)
        .where(AuditHeadRow.chain_key == chain_key)
        .with_for_update()
        .lateral("audit_head")
    )


def seed_head(session: Session, chain_key: str, seq: int | None, hash_: str | None) -> None:
    """The head this transaction has just read and locked with its subject's row (`locked_head_of`): the chain's
    first append needs no read of its own. None (no head row: a chain not written yet, or one whose head a
    later writer may still create) leaves the first append to read and lock it as before.

    What this transaction already appended wins over the database's (older) head, and inside a savepoint
    nothing is remembered: its rollback could take back events the head counted.
    """
    if seq is None or hash_ is None or session.in_nested_transaction():
        return
    session.info.setdefault("audit_heads", {}).setdefault(chain_key, (seq, hash_))


def start_chain(session: Session, chain_key: str) -> None:
    """The chain of a subject this transaction has just inserted (a new execution): it cannot have a head yet,
    so its first append reads none. Were it to exist after all, the events' unique (chain, seq) refuses the
    commit rather than forking the chain."""
    if not session.in_nested_transaction():
        session.info.setdefault("audit_heads", {}).setdefault(chain_key, (0, GENESIS_HASH))


def write_pending_audit(
    session: Session, *, log_lines: Sequence[dict[str, Any]] = (), task_runs: str | None = None
) -> bool:
    """Write the events this transaction appended and not yet wrote (one statement), and `log_lines` and the new
    `task_runs` (`pending_runs.take_pending`'s JSON) in the same statement (`commit_writes`). False when there were
    no events, and so nothing was written (the lines and task runs neither)."""
    pending: list[dict[str, Any]] = session.info.pop("audit_pending", [])
    if pending:
        _write_audit(session, pending, log_lines, task_runs)
    return bool(pending)


_AUDIT_COLUMNS = [c.key for c in AuditEventRow.__table__.columns if c.key != "id"]
_HEAD_COLUMNS = ("chain_key", "seq", "hash", "key_id", "mac")
# Built once, one statement for a transaction's events and their chains' heads: the events come as one JSON array
# (a fixed statement whatever their number: no recompiling per row count, no parameter limit), in the order they
# were appended (the ids follow it). Data-modifying CTEs run to completion in the statement, so the events and the
# heads are written together or not at all; two first appends racing to one chain both find no head, and the
# events' unique (chain, seq) refuses the loser, as it did when these were two statements.
_EVENTS_AND_HEADS = f"""events AS (INSERT INTO audit_events ({", ".join(_AUDIT_COLUMNS)})
 SELECT {", ".join(_AUDIT_COLUMNS)} FROM jsonb_populate_recordset(NULL::audit_events, CAST(:events AS JSONB))
 WITH ORDINALITY AS e ORDER BY e.ordinality)
INSERT INTO audit_heads ({", ".join(_HEAD_COLUMNS)})
 SELECT {", ".join(_HEAD_COLUMNS)} FROM jsonb_populate_recordset(NULL::audit_heads, CAST(:heads AS JSONB))
ON CONFLICT (chain_key) DO UPDATE SET {", ".join(f"{c} = excluded.{c}" for c in _HEAD_COLUMNS if c != "chain_key")}"""
_WRITE_AUDIT = text(f"WITH {_EVENTS_AND_HEADS}")
# The same with the transaction's log lines in a third CTE (in the order they were inserted: ids follow it).
_LINE_COLUMNS = [c.key for c in LogLineRow.__table__.columns if c.key != "id"]
_LINES_AND_AUDIT = f"""WITH lines AS (INSERT INTO log_lines ({", ".join(_LINE_COLUMNS)})
 SELECT {", ".join(_LINE_COLUMNS)} FROM jsonb_populate_recordset(NULL::log_lines, CAST(:lines AS JSONB))
 WITH ORDINALITY AS l ORDER BY l.ordinality),
{_EVENTS_AND_HEADS}"""
_WRITE_LINES_AND_AUDIT = text(_LINES_AND_AUDIT)


def audit_key_of(session: Session) -> AuditKey | None:
    """The MAC key this session's sessionmaker was given (`database.make_sessionmaker(audit_key=...)`)."""
    key = session.info.get("audit_key")
    return key if isinstance(key, AuditKey) else None


def _with_runs(statement: str) -> TextClause:
    """`statement` (a WITH ...) with a first CTE inserting the transaction's new task runs."""
    return text(f"WITH {RUNS_CTE},\n{statement.removeprefix('WITH ')}")


_WRITE_RUNS_AND_AUDIT = _with_runs(f"WITH {_EVENTS_AND_HEADS}")
_WRITE_RUNS_LINES_AND_AUDIT = _with_runs(_LINES_AND_AUDIT)


def _write_audit(
    session: Session, rows: Sequence[dict[str, Any]], lines: Sequence[dict[str, Any]] = (), runs: str | None = None
) -> None:
    events = [{key: row[key] for key in _AUDIT_COLUMNS} | {"at": row["at"].isoformat()} for row in rows]
    last = {row["chain_key"]: row for row in rows}
    key = audit_key_of(session)
    heads = [
        {
            "chain_key": r["chain_key"],
            "seq": r["seq"],
            "hash": r["hash"],
            "key_id": key.key_id if key else None,
            "mac": head_mac(key, r["chain_key"], r["seq"], r["hash"]) if key else None,
        }
        for r in last.values()
    ]
    params = {"events": json.dumps(events), "heads": json.dumps(heads)}
    if runs is not None:
        params["runs"] = runs
    if lines:
        stored = [{key: line.get(key) for key in _LINE_COLUMNS} | {"at": line["at"].isoformat()} for line in lines]
        statement = _WRITE_RUNS_LINES_AND_AUDIT if runs is not None else _WRITE_LINES_AND_AUDIT
        session.execute(statement, params | {"lines": json.dumps(stored)})
    else:
        session.execute(_WRITE_RUNS_AND_AUDIT if runs is not None else _WRITE_AUDIT, params)


def hashed_event(
    chain_key: str, seq: int, at: datetime, actor: str, action: str, subject: str | None, payload: dict[str, Any]
) -> dict[str, Any]:
    """The exact content covered by an event's hash (also rebuilt by verification)."""
    return {
        "chain": chain_key,
        "seq": seq,
        "at": iso(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "payload": payload,
    }


def audit_events(session: Session, chain_key: str) -> Sequence[AuditEventRow]:
    return session.scalars(
        select(AuditEventRow).where(AuditEventRow.chain_key == chain_key).order_by(AuditEventRow.seq)
    ).all()


def last_audit_hash(session: Session, chain_key: str, subject: str) -> str | None:
    """The hash of the latest event of a chain about `subject` (a task run's end, which a trace links to)."""
    return session.scalar(
        select(AuditEventRow.hash)
        .where(AuditEventRow.chain_key == chain_key, AuditEventRow.subject == subject)
        .order_by(AuditEventRow.seq.desc())
        .limit(1)
    )


def audit_chain_keys(session: Session) -> Sequence[str]:
    return session.scalars(select(AuditHeadRow.chain_key).order_by(AuditHeadRow.chain_key)).all()


def audit_head(session: Session, chain_key: str) -> AuditHeadRow | None:
    """The head row of a chain: its length, last hash and MAC, or None for a chain never written."""
    return session.get(AuditHeadRow, chain_key)
