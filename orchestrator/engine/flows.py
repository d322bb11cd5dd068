"""Flows: parsing revisions once per process, deploying, deleting, and finding the flow an execution runs."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator import store
from orchestrator.core.errors import FlowErrorDetail, FlowInvalid, NotFound
from orchestrator.core.flow import Flow
from orchestrator.core.namespace_access import refused_references
from orchestrator.core.parse import parse_flow
from orchestrator.engine.flow_validation import validate_flow
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow, FlowRevisionRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

logger = logging.getLogger(__name__)


@dataclass
class FlowCache:
    """Parsed flows by revision: a revision never changes, so parsing once per process is enough."""

    flows: dict[tuple[str, str, str, int], Flow] = field(default_factory=dict)
    task_types: dict[tuple[str, str, int], dict[str, str]] = field(default_factory=dict)
    #: Whether a task may run inside a controller's transaction, by (tenant, namespace, flow, revision, task).
    purity: dict[tuple[str, str, str, int, str], bool] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def cached_flows(engine: Engine, namespace: str, flow_id: str) -> list[Flow]:
    """The revisions of a flow this process has parsed (a cheap look before a query)."""
    with engine.flow_cache.lock:
        return [f for (_, ns, fid, _), f in engine.flow_cache.flows.items() if ns == namespace and fid == flow_id]


def flow_of(engine: Engine, row: FlowRevisionRow) -> Flow:
    key = (row.tenant, row.namespace, row.flow_id, row.revision)
    with engine.flow_cache.lock:
        flow = engine.flow_cache.flows.get(key)
    if flow is None:
        flow = parse_flow(row.source)
        with engine.flow_cache.lock:
            engine.flow_cache.flows[key] = flow
    return flow


def deploy_flow(engine: Engine, source: str, *, actor: str, expect: tuple[str, str] | None = None) -> FlowRevisionRow:
    """Validate and save a flow as a new revision (unchanged source keeps its revision)."""
    flow = validate_flow(source)
    if expect is not None and (flow.namespace, flow.id) != expect:
        raise FlowInvalid(
            [],
            f"flow id and namespace in the body ({flow.namespace}.{flow.id}) differ from the path "
            f"({expect[0]}.{expect[1]})",
        )
    from orchestrator.core.parse import load_document

    document = load_document(source)
    tenant = engine.settings.tenant
    with engine.transaction() as session:
        before = store.latest_flow(session, tenant, flow.namespace, flow.id)
        row = store.save_flow_revision(session, tenant, flow.namespace, flow.id, source, document)
        if before is None or before.revision != row.revision or before.deleted:
            store.append_audit(
                session,
                store.flow_chain_key(tenant, flow.namespace, flow.id),
                actor=actor,
                action="flow.created" if before is None else "flow.updated",
                subject=f"{flow.namespace}.{flow.id}",
                payload={"revision": row.revision},
            )
    return row


def reference_warnings(engine: Engine, flow: Flow) -> list[FlowErrorDetail]:
    """The namespaces a flow names that its own may not use (CHORUS_NAMESPACE_ACCESS), each with its line.

    They are warnings, not refusals: as in Kestra (EE's allowedNamespaces is checked when the act happens), the
    flow deploys, and the task, trigger or function that would cross fails then with the same message
    (workers and the Flow trigger matcher ask `NamespaceAccess.allows` at run time, where most namespaces
    are rendered anyway). A Subflow into another namespace behind `when: false` never crosses at all.
    """
    return refused_references(flow, engine.settings.namespace_grants)


def delete_flow(engine: Engine, namespace: str, flow_id: str, *, actor: str) -> None:
    tenant = engine.settings.tenant
    with engine.transaction() as session:
        if store.mark_flow_deleted(session, tenant, namespace, flow_id) == 0:
            raise NotFound("flow", f"{namespace}.{flow_id}")
        store.append_audit(
            session,
            store.flow_chain_key(tenant, namespace, flow_id),
            actor=actor,
            action="flow.deleted",
            subject=f"{namespace}.{flow_id}",
            payload={},
        )


def live_revision(
    engine: Engine, session: Session, namespace: str, flow_id: str, revision: int | None
) -> FlowRevisionRow:
    row = store.latest_flow(session, engine.settings.tenant, namespace, flow_id, revision=revision)
    if row is None or row.deleted:
        raise NotFound("flow", f"{namespace}.{flow_id}")
    return row


@dataclass(frozen=True)
class LiveRevision:
    """The revision a start runs: its number (what `create_execution` records) and its parsed flow."""

    revision: int
    flow: Flow


def live_flow(engine: Engine, session: Session, namespace: str, flow_id: str, revision: int | None) -> LiveRevision:
    """The flow a start runs, reading only its revision number when this process has already parsed it.

    Every start needs the newest revision; its source and document (kilobytes of JSON decoded per start)
    are read only on the first start of a revision in this process, as a revision never changes.
    """
    tenant = engine.settings.tenant
    found = store.latest_flow_revision(session, tenant, namespace, flow_id, revision=revision)
    if found is None or found[1]:
        raise NotFound("flow", f"{namespace}.{flow_id}")
    with engine.flow_cache.lock:
        flow = engine.flow_cache.flows.get((tenant, namespace, flow_id, found[0]))
    if flow is None:
        flow = engine.flow_of(live_revision(engine, session, namespace, flow_id, found[0]))
    return LiveRevision(found[0], flow)


def flow_of_execution(engine: Engine, session: Session, execution: ExecutionRow) -> Flow:
    # A revision never changes: once parsed, later transitions of its executions skip the query.
    key = (execution.tenant, execution.namespace, execution.flow_id, execution.flow_revision)
    with engine.flow_cache.lock:
        flow = engine.flow_cache.flows.get(key)
    if flow is None:
        row = store.latest_flow(
            session, execution.tenant, execution.namespace, execution.flow_id, revision=execution.flow_revision
        )
        if row is None:
            raise NotFound("flow", f"{execution.namespace}.{execution.flow_id} revision {execution.flow_revision}")
        flow = engine.flow_of(row)
    store.note_flow(session, task_types(engine, flow), concurrency=flow.concurrency is not None)
    return flow


def task_types(engine: Engine, flow: Flow) -> dict[str, str]:
    key = (flow.namespace, flow.id, id(flow))
    types = engine.flow_cache.task_types.get(key)
    if types is None:
        types = {task.id: task.type for task in flow.iter_tasks()}
        engine.flow_cache.task_types[key] = types
    return types
