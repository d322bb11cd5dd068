"""Audit events for API actions (flow chains, or the tenant's global chain), redaction, and chain verification.

Engine transitions write to each execution's chain (`store.record_transition`); this module adds what
people do through the API: who, what, which object, from where, and the outcome, denied attempts
included. Payloads are redacted before they are hashed, so no secret ever enters the trail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator import store
from orchestrator.core.audit import AuditKey, ChainBreak, event_mac_problem, head_mac_problem, verify_chain
from orchestrator.store.database import Session, sessionmaker, transaction
from orchestrator.store.tables import AuditEventRow

REDACTED = "******"
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authorization|credential", re.IGNORECASE)


def global_chain_key(tenant: str) -> str:
    """The chain of API actions that concern no single flow, namespace or execution (tokens, users, denials).

    KV writes were appended here until migration 0012's release; they now go to their namespace's chain
    (`store.namespace_chain_key`), so one head row no longer serialises every KV write of the cluster. The
    events already on this chain stay where they are (audit rows are append-only) and keep verifying: a
    chain is checked link by link over its own rows, and it simply has no KV events after that release.
    """
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


def record(session: Session, tenant: str, event: ApiAction, *, chain: str | None = None) -> AuditEventRow:
    """Append an API action to `chain`, else to the flow's chain when it names a flow, else the tenant's global one."""
    if chain is None and event.namespace and event.flow_id:
        chain = store.flow_chain_key(tenant, event.namespace, event.flow_id)
    elif chain is None:
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
    unkeyed: int = 0  #: events without a MAC (written while no key was configured)


def check_chain(
    chain_key: str,
    events: Sequence[AuditEventRow],
    keys: Mapping[str, AuditKey] | None = None,
    *,
    require_mac: bool = False,
) -> ChainReport:
    """Re-walk one chain from its first event; names the first event whose link or MAC does not hold.

    Without `keys` only the SHA-256 links are checked: that shows changes by someone who could not also
    rewrite the rows after them, not a rewrite by a database superuser.
    """
    broken = verify_chain(
        (
            e.seq,
            e.prev_hash,
            e.hash,
            store.hashed_event(e.chain_key, e.seq, e.at, e.actor, e.action, e.subject, e.payload),
        )
        for e in events
    )
    if keys is not None:
        for e in events:
            if broken is not None and e.seq >= broken.seq:
                break
            problem = event_mac_problem(keys, e.key_id, e.mac, e.hash, require=require_mac)
            if problem is not None:
                broken = ChainBreak(e.seq, problem)
                break
    row_id = next((e.id for e in events if broken is not None and e.seq == broken.seq), None)
    return ChainReport(chain_key, len(events), broken, row_id, unkeyed=sum(1 for e in events if e.mac is None))


def verify_chains(
    session: Session,
    chain_keys: Sequence[str] | None = None,
    keys: Mapping[str, AuditKey] | None = None,
    *,
    require_mac: bool = False,
) -> Iterator[ChainReport]:
    """Reports for the given chains (every chain when None), one chain in memory at a time."""
    for key in chain_keys if chain_keys is not None else store.audit_chain_keys(session):
        events = store.audit_events(session, key)
        head = store.audit_head(session, key)
        report = check_chain(key, events, keys, require_mac=require_mac)
        if report.broken is None and head is not None and head.seq != len(events):
            # Rows missing at the end leave no gap to see; the head row remembers how long the chain was.
            broken = ChainBreak(len(events) + 1, f"chain ends early: head at {head.seq}")
            report = ChainReport(key, len(events), broken, unkeyed=report.unkeyed)
        if report.broken is None and head is not None and keys is not None:
            # The head's MAC covers its length: rows dropped from the end with the head lowered to match show here.
            problem = head_mac_problem(keys, head.key_id, head.mac, key, head.seq, head.hash, require=require_mac)
            if problem is None and events and head.hash != events[-1].hash:
                problem = "does not match the last event's hash"
            if problem is not None:
                report = ChainReport(key, len(events), ChainBreak(head.seq, f"head: {problem}"), unkeyed=report.unkeyed)
        yield report
