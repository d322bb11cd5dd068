"""The audit trail over HTTP: an execution's or a flow's chain with its verification, and a search across all."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from api.deps import PrincipalDep, SessionDep, TenantDep, authenticate
from api.errors import QueryInvalid
from api.permissions import Permission, guard, prefixes
from api.routes.executions import visible_execution
from orchestrator import store
from orchestrator.core.audit import AuditKey
from orchestrator.core.errors import NotFound
from orchestrator.engine.audit_trail import check_chain
from orchestrator.store import audit as store_audit
from orchestrator.store.tables import AuditEventRow

router = APIRouter(tags=["Audit"], dependencies=[Depends(authenticate)])


def event_public(e: AuditEventRow, namespace: str | None = None) -> dict[str, Any]:
    body = {
        "id": e.id,
        "chain": e.chain_key,
        "seq": e.seq,
        "at": store.iso(e.at),
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "payload": e.payload,
        "prevHash": e.prev_hash,
        "hash": e.hash,
    }
    if namespace is not None:
        body["namespace"] = namespace
    return body


def chain_public(chain_key: str, events: list[AuditEventRow], keys: Mapping[str, AuditKey] | None) -> dict[str, Any]:
    """The chain and its check: SHA-256 links, and each event's MAC when an audit key is configured."""
    report = check_chain(chain_key, events, keys or None)
    return {
        "verified": report.broken is None,
        "keyed": bool(keys) and report.unkeyed == 0,  #: every event's MAC checked, not just the plain hashes
        "brokenAt": None
        if report.broken is None
        else {"seq": report.broken.seq, "reason": report.broken.reason, "eventId": report.broken_event_id},
        "events": [event_public(e) for e in events],
    }


@router.get("/executions/{execution_id}/audit")
@router.get("/audit/executions/{execution_id}", include_in_schema=False)
def execution_audit(
    request: Request,
    execution_id: str,
    principal: PrincipalDep,
    session: SessionDep,
) -> dict[str, Any]:
    """Chorus's addition: the execution's audit chain, oldest first, and whether it verifies."""
    visible_execution(request, session, principal, Permission.EXECUTION_READ, execution_id)
    return chain_public(execution_id, list(store.audit_events(session, execution_id)), _keys(request))


@router.get("/flows/{namespace}/{flow_id}/audit")
def flow_audit(
    request: Request,
    namespace: str,
    flow_id: str,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
) -> dict[str, Any]:
    """The flow's chain: its revisions, deletions and the API actions on it."""
    guard(request, principal, Permission.FLOW_READ, "flow", namespace, f"{namespace}.{flow_id}")
    key = store.flow_chain_key(tenant, namespace, flow_id)
    events = list(store.audit_events(session, key))
    if not events:
        raise NotFound("flow", f"{namespace}.{flow_id}")
    return chain_public(key, events, _keys(request))


def _keys(request: Request) -> Mapping[str, AuditKey] | None:
    keys: Mapping[str, AuditKey] | None = getattr(request.app.state, "audit_keys", None)
    return keys


def _moment(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryInvalid(name, f"'{value}' is not an ISO-8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/audit")
def search_audit(
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    namespace: str | None = Query(default=None, description="Namespace prefix."),
    actor: str | None = Query(default=None, description="Part of the actor, e.g. a username."),
    action: str | None = Query(default=None, description="An action, or a family such as `flow.*`."),
    from_: str | None = Query(default=None, alias="from", description="ISO-8601 lower bound."),
    to: str | None = Query(default=None, description="ISO-8601 upper bound."),
    page: int = Query(default=1, ge=1, le=1_000_000),
    size: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """Audit events across every chain, newest first; needs `audit.read` (admins), within the caller's prefixes."""
    visible = prefixes(principal, Permission.AUDIT_READ)
    if visible == ():
        from orchestrator.engine.accounts import PermissionDenied

        raise PermissionDenied(Permission.AUDIT_READ, namespace)
    query = store_audit.AuditQuery(
        tenant=tenant,
        namespace=namespace,
        actor=actor,
        action=action,
        since=_moment("from", from_),
        until=_moment("to", to),
        visible_prefixes=visible,
        offset=(page - 1) * size,
        limit=size,
    )
    rows, total = store_audit.search_audit(session, query)
    return {"results": [event_public(e, ns) for e, ns in rows], "total": total}
