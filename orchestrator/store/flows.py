"""Flow revisions: the live revision of a flow, saving, deleting, listing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from orchestrator.store.clock import anchor, utcnow
from orchestrator.store.locks import lock_flow_revisions
from orchestrator.store.notify import notify_flows_changed
from orchestrator.store.tables import (
    FlowRevisionRow,
)


def latest_flow(
    session: Session, tenant: str, namespace: str, flow_id: str, *, revision: int | None = None
) -> FlowRevisionRow | None:
    query = select(FlowRevisionRow).where(
        FlowRevisionRow.tenant == tenant, FlowRevisionRow.namespace == namespace, FlowRevisionRow.flow_id == flow_id
    )
    if revision is not None:
        query = query.where(FlowRevisionRow.revision == revision)
    return session.scalars(query.order_by(FlowRevisionRow.revision.desc()).limit(1)).first()


# Built once: a start reads this per execution, and building a statement per call costs more CPU than its trip.
# It brings the database's clock along: the execution the start creates is stamped by it (`clock.transaction_now`).
_REVISION_OF = select(FlowRevisionRow.revision, FlowRevisionRow.deleted, func.now().label("now")).where(
    FlowRevisionRow.tenant == bindparam("tenant"),
    FlowRevisionRow.namespace == bindparam("namespace"),
    FlowRevisionRow.flow_id == bindparam("flow_id"),
)
_LATEST_REVISION = _REVISION_OF.order_by(FlowRevisionRow.revision.desc()).limit(1)
_REVISION = _REVISION_OF.where(FlowRevisionRow.revision == bindparam("revision")).limit(1)


def latest_flow_revision(
    session: Session, tenant: str, namespace: str, flow_id: str, *, revision: int | None = None
) -> tuple[int, bool] | None:
    """(revision, deleted) of the newest revision (or of `revision`): what a start reads when it has the flow parsed."""
    key = {"tenant": tenant, "namespace": namespace, "flow_id": flow_id}
    if revision is None:
        found = session.execute(_LATEST_REVISION, key).first()
    else:
        found = session.execute(_REVISION, {**key, "revision": revision}).first()
    if found is None:
        return None
    anchor(session, found.now)
    return found.revision, bool(found.deleted)


def save_flow_revision(
    session: Session, tenant: str, namespace: str, flow_id: str, source: str, document: dict[str, Any]
) -> FlowRevisionRow:
    """A new revision (numbered after the newest), or the newest itself when its source is unchanged."""
    lock_flow_revisions(session, tenant, namespace, flow_id)
    latest = latest_flow(session, tenant, namespace, flow_id)
    if latest is not None and not latest.deleted and latest.source == source:
        return latest
    row = FlowRevisionRow(
        tenant=tenant,
        namespace=namespace,
        flow_id=flow_id,
        revision=(latest.revision + 1) if latest else 1,
        source=source,
        document=document,
        deleted=False,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    notify_flows_changed(session, tenant)
    return row


def mark_flow_deleted(session: Session, tenant: str, namespace: str, flow_id: str) -> int:
    result = session.execute(
        update(FlowRevisionRow)
        .where(
            FlowRevisionRow.tenant == tenant,
            FlowRevisionRow.namespace == namespace,
            FlowRevisionRow.flow_id == flow_id,
            FlowRevisionRow.deleted.is_(False),
        )
        .values(deleted=True)
    )
    deleted = int(result.rowcount)  # type: ignore[attr-defined]
    if deleted:
        notify_flows_changed(session, tenant)
    return deleted


def flows_version_query(tenant: str) -> Select[int, datetime, int]:
    """Changes whenever a flow is deployed, updated or deleted: (revisions, newest revision time, deleted)."""
    return select(
        func.count(),
        func.max(FlowRevisionRow.created_at),
        func.count().filter(FlowRevisionRow.deleted.is_(True)),
    ).where(FlowRevisionRow.tenant == tenant)


def live_flows_query(tenant: str) -> Select[FlowRevisionRow]:
    """The newest revision of every non-deleted flow of a tenant, as a query callers can narrow."""
    newest = (
        select(
            FlowRevisionRow.namespace,
            FlowRevisionRow.flow_id,
            func.max(FlowRevisionRow.revision).label("revision"),
        )
        .where(FlowRevisionRow.tenant == tenant)
        .group_by(FlowRevisionRow.namespace, FlowRevisionRow.flow_id)
        .subquery()
    )
    query = select(FlowRevisionRow).join(
        newest,
        and_(
            FlowRevisionRow.namespace == newest.c.namespace,
            FlowRevisionRow.flow_id == newest.c.flow_id,
            FlowRevisionRow.revision == newest.c.revision,
        ),
    )
    return query.where(FlowRevisionRow.tenant == tenant, FlowRevisionRow.deleted.is_(False))


def live_flows_mentioning(session: Session, tenant: str, *words: str) -> Sequence[FlowRevisionRow]:
    """Live flows whose source contains any of `words` (a textual pre-filter: the parsed flow decides)."""
    query = live_flows_query(tenant).where(or_(*(FlowRevisionRow.source.contains(word) for word in words)))
    return session.scalars(query).all()


def live_flows(session: Session, tenant: str, namespace: str | None = None) -> Sequence[FlowRevisionRow]:
    """The newest revision of every non-deleted flow."""
    query = live_flows_query(tenant)
    if namespace:
        query = query.where(FlowRevisionRow.namespace == namespace)
    return session.scalars(query.order_by(FlowRevisionRow.namespace, FlowRevisionRow.flow_id)).all()
