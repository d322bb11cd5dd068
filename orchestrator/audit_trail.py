"""Audit events for API actions (flow chains, or the tenant's global chain), redaction, and chain verification.

Engine transitions write to each execution's chain (`store.record_transition`); this module adds what
people do through the API: who, what, which object, from where, and the outcome, denied attempts
included. Payloads are redacted before they are hashed, so no secret ever enters the trail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import store
from orchestrator.core.audit import ChainBreak, verify_chain
from orchestrator.database import transaction
from orchestrator.tables import AuditEventRow, AuditHeadRow

REDACTED = "******"
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authorization|credential", re.IGNORECASE)


def global_chain_key(tenant: str) -> str:
    """The chain of API actions that concern no single flow or execution (KV, tokens, users, denials)."""
    return f"api:{tenant}"


def redact(value: Any) -> Any:
    """A copy with every value under a secret-looking key (password, token, apiKey, ...) replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True)
class ApiAction:
    """One thing a caller did (or tried to do) through the API."""

    actor: str  #: `user:alice`, `token:alice/ci`, `anonymous`
    client: str  #: the caller's address
    action: str  #: e.g. `kv.put`, `flow.update`, `execution.read`
    outcome: str  #: `success`, `denied`, `failed`
    status: int  #: the HTTP status answered
    namespace: str | None = None
    flow_id: str | None = None
    subject: str | None = None  #: the object acted on (`ns.flow`, an execution id, `ns/kv/key`)
    method: str = ""
    path: str = ""
    detail: dict[str, Any] | None = None


def record(session: Session, tenant: str, event: ApiAction) -> AuditEventRow:
    """Append an API action to the flow's chain when it names a flow, else to the tenant's global chain."""
    if event.namespace and event.flow_id:
        chain = store.flow_chain_key(tenant, event.namespace, event.flow_id)
    else:
        chain = global_chain_key(tenant)
    payload: dict[str, Any] = {
        "client": event.client,
        "outcome": event.outcome,
        "status": event.status,
        "namespace": event.namespace,
        "method": event.method,
        "path": _text(event.path, 2000),
    }
    if event.detail:
        payload["detail"] = redact(event.detail)
    subject = _text(event.subject, 600) if event.subject is not None else None
    return store.append_audit(
        session, chain, actor=_text(event.actor, 256), action=_text(event.action, 64), subject=subject, payload=payload
    )


def _text(value: str, limit: int) -> str:
    """Fit a column: PostgreSQL text cannot hold NUL, and the columns are bounded."""
    return value.replace("\x00", "\\0")[:limit]


def record_alone(sessions: sessionmaker[Session], tenant: str, event: ApiAction) -> None:
    """Record an action that changed nothing (a denial, a failure) in a transaction of its own."""
    with transaction(sessions) as session:
        record(session, tenant, event)


# ---- verification -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    chain_key: str
    events: int
    broken: ChainBreak | None
    broken_event_id: int | None = None  #: the audit_events row id of the first broken link


def check_chain(chain_key: str, events: Sequence[AuditEventRow]) -> ChainReport:
    """Re-walk one chain from its first event; names the first event whose link does not hold."""
    broken = verify_chain(
        (
            e.seq,
            e.prev_hash,
            e.hash,
            store.hashed_event(e.chain_key, e.seq, e.at, e.actor, e.action, e.subject, e.payload),
        )
        for e in events
    )
    row_id = next((e.id for e in events if broken is not None and e.seq == broken.seq), None)
    return ChainReport(chain_key, len(events), broken, row_id)


def verify_chains(session: Session, chain_keys: Sequence[str] | None = None) -> Iterator[ChainReport]:
    """Reports for the given chains (every chain when None), one chain in memory at a time."""
    for key in chain_keys if chain_keys is not None else store.audit_chain_keys(session):
        events = store.audit_events(session, key)
        head = _head_seq(session, key)
        report = check_chain(key, events)
        if report.broken is None and head is not None and head != len(events):
            # Rows missing at the end leave no gap to see; the head row remembers how long the chain was.
            report = ChainReport(key, len(events), ChainBreak(len(events) + 1, f"chain ends early: head at {head}"))
        yield report


def _head_seq(session: Session, chain_key: str) -> int | None:
    return session.scalar(select(AuditHeadRow.seq).where(AuditHeadRow.chain_key == chain_key))
