"""Read queries over the audit trail: search by namespace, actor, action and time (never writes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, String, and_, case, false, func, literal, or_, select, true
from sqlalchemy.orm import Session

from orchestrator.store.tables import AuditEventRow, ExecutionRow


@dataclass(frozen=True)
class AuditQuery:
    tenant: str
    namespace: str | None = None  #: a namespace prefix (`a` matches `a` and `a.b`)
    actor: str | None = None  #: matches when contained in the actor (`alice` finds `user:alice@10.0.0.1`)
    action: str | None = None  #: exact, or a family with a trailing `*` (`flow.*`)
    since: datetime | None = None
    until: datetime | None = None
    visible_prefixes: tuple[str, ...] | None = None  #: None: every namespace, and events with none
    offset: int = 0
    limit: int = 100


def _namespace_of() -> ColumnElement[str]:
    """An event's namespace: its execution's, its flow or namespace chain's (`flow:<tenant>/<ns>/<id>`,
    `namespace:<tenant>/<ns>`), or its payload's."""
    chain_ns = func.split_part(AuditEventRow.chain_key, "/", 2)
    named = or_(AuditEventRow.chain_key.startswith("flow:"), AuditEventRow.chain_key.startswith("namespace:"))
    return func.coalesce(
        ExecutionRow.namespace,
        func.nullif(case((named, chain_ns), else_=literal(None, String)), ""),
        AuditEventRow.payload["namespace"].astext,
    )


def _in_prefix(namespace: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    base = prefix.rstrip(".")
    if not base:
        return true()
    return or_(namespace == base, namespace.startswith(base + ".", autoescape=True))


def search_audit(session: Session, query: AuditQuery) -> tuple[Sequence[tuple[AuditEventRow, str | None]], int]:
    """Events (with their namespace) matching the query, newest first, one page of them and the total."""
    namespace = _namespace_of()
    conditions: list[ColumnElement[bool]] = []
    if query.namespace:
        conditions.append(_in_prefix(namespace, query.namespace))
    if query.visible_prefixes is not None:
        visible = or_(false(), *(_in_prefix(namespace, p) for p in query.visible_prefixes))
        conditions.append(and_(namespace.is_not(None), visible))
    if query.actor:
        conditions.append(AuditEventRow.actor.icontains(query.actor, autoescape=True))
    if query.action:
        if query.action.endswith("*"):
            conditions.append(AuditEventRow.action.startswith(query.action[:-1], autoescape=True))
        else:
            conditions.append(AuditEventRow.action == query.action)
    if query.since:
        conditions.append(AuditEventRow.at >= query.since)
    if query.until:
        conditions.append(AuditEventRow.at <= query.until)
    base = (
        select(AuditEventRow, namespace.label("namespace"))
        .outerjoin(ExecutionRow, ExecutionRow.id == AuditEventRow.chain_key)
        .where(and_(true(), *conditions))
    )
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.execute(
        base.order_by(AuditEventRow.at.desc(), AuditEventRow.id.desc()).offset(query.offset).limit(query.limit)
    ).all()
    return [(r[0], r[1]) for r in rows], total
