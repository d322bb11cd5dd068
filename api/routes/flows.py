"""Flows: create (YAML body), update, get, delete, search, list, revisions, validate — Kestra's paths and shapes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.bounds import INT32, PAGE, REVISION, SIZE
from api.deps import ActorDep, EngineDep, PrincipalDep, SessionDep, TenantDep, authenticate, note
from api.errors import validation_body
from api.filters import Fields, parse_search
from api.permissions import Permission, allowed, guard, prefixes, require
from api.schemas import flow_public
from orchestrator import store
from orchestrator.core.errors import FlowInvalid, NotFound
from orchestrator.core.parse import split_documents
from orchestrator.core.task_lookup import find_task_document
from orchestrator.engine.accounts import Principal
from orchestrator.engine.flow_validation import validate_flow, validate_flow_with_warnings
from orchestrator.store import search as store_search
from orchestrator.store.database import Session
from orchestrator.store.queries import Op, Search, SortKey

router = APIRouter(tags=["Flows"], dependencies=[Depends(authenticate)])

FLOW_FIELDS = Fields(
    filters=frozenset({"namespace", "flowId", "id", "q", "labels", "updated"}),
    sorts=frozenset(store_search.FLOW_SORTS),
    legacy={
        "namespace": ("namespace", Op.PREFIX),
        "q": ("q", Op.CONTAINS),
        "query": ("q", Op.CONTAINS),
        "labels": ("labels", Op.EQUALS),
    },
    default_sort=(SortKey("namespace"), SortKey("id")),
)
_YAML = {"content": {"application/x-yaml": {"schema": {"type": "string"}}}, "required": True}


async def yaml_body(request: Request) -> str:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FlowInvalid([], "the flow body is not UTF-8 text") from e
    if "\x00" in text:
        raise FlowInvalid([], "the flow body contains a NUL character")
    return text


def _live(session: Session, tenant: str, namespace: str, flow_id: str) -> Any:
    row = store.latest_flow(session, tenant, namespace, flow_id)
    return None if row is None or row.deleted else row


@router.post("/flows", openapi_extra={"requestBody": _YAML})
async def create_flow(
    request: Request,
    tenant: TenantDep,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, Any]:
    source = await yaml_body(request)
    entry = note(request, "flow.create")
    flow = await run_in_threadpool(validate_flow, source)
    entry.namespace, entry.flow_id, entry.subject = flow.namespace, flow.id, f"{flow.namespace}.{flow.id}"
    require(principal, Permission.FLOW_WRITE, flow.namespace)

    def deploy() -> dict[str, Any]:
        with eng.sessions() as session:
            if _live(session, tenant, flow.namespace, flow.id) is not None:
                raise FlowInvalid([], f"Flow id already exists: {flow.namespace}.{flow.id}")
        row = flow_public(eng.deploy_flow(source, actor=who))
        entry.audited = True
        return row

    return await run_in_threadpool(deploy)


@router.put("/flows/{namespace}/{flow_id}", openapi_extra={"requestBody": _YAML})
async def update_flow(
    namespace: str,
    flow_id: str,
    request: Request,
    tenant: TenantDep,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, Any]:
    source = await yaml_body(request)
    entry = note(request, "flow.update", namespace=namespace, flow_id=flow_id, subject=f"{namespace}.{flow_id}")
    guard(request, principal, Permission.FLOW_WRITE, "flow", namespace, f"{namespace}.{flow_id}")

    def update() -> dict[str, Any]:
        with eng.sessions() as session:
            if _live(session, tenant, namespace, flow_id) is None:
                raise NotFound("flow", f"{namespace}.{flow_id}")
        row = flow_public(eng.deploy_flow(source, actor=who, expect=(namespace, flow_id)))
        entry.audited = True
        return row

    return await run_in_threadpool(update)


@router.get("/flows/search")
def search_flows(
    request: Request,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    page: int = PAGE,
    size: int = SIZE,
    sort: list[str] = Query(default=[]),
) -> dict[str, Any]:
    """Kestra's search: `filters[namespace][PREFIX]=..`, `filters[q][EQUALS]=..`, labels, or the plain params."""
    search = parse_search(request.query_params, FLOW_FIELDS, page=page, size=size, sort=sort)
    search = _narrowed(search, principal)
    rows, total = store_search.search_flows(session, tenant, search)
    return {"results": [flow_public(r, with_source=False) for r in rows], "total": total}


def _narrowed(search: Search, principal: Principal) -> Search:
    return replace(search, visible_prefixes=prefixes(principal, Permission.FLOW_READ))


@router.get("/flows/distinct-namespaces")
def distinct_flow_namespaces(
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
) -> list[str]:
    rows, _ = store_search.search_flows(
        session, tenant, Search(size=100_000, visible_prefixes=prefixes(principal, Permission.FLOW_READ))
    )
    return sorted({r.namespace for r in rows})


@router.get("/flows/{namespace}")
def list_namespace_flows(
    namespace: str,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
) -> list[dict[str, Any]]:
    if not allowed(principal, Permission.FLOW_READ, namespace):
        return []
    return [flow_public(r, with_source=False) for r in store.live_flows(session, tenant, namespace)]


@router.get("/flows/{namespace}/{flow_id}")
def get_flow(
    request: Request,
    namespace: str,
    flow_id: str,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    source: bool = False,
    revision: int | None = REVISION,
    allowDeleted: bool = False,
) -> dict[str, Any]:
    guard(request, principal, Permission.FLOW_READ, "flow", namespace, f"{namespace}.{flow_id}")
    row = store.latest_flow(session, tenant, namespace, flow_id, revision=revision)
    if row is None or (row.deleted and not allowDeleted):
        raise NotFound("flow", f"{namespace}.{flow_id}")
    # Kestra answers a Flow without its source unless `source=true` (FlowController.index).
    return flow_public(row, with_source=source)


@router.get("/flows/{namespace}/{flow_id}/tasks/{task_id}")
def flow_task(
    request: Request,
    namespace: str,
    flow_id: str,
    task_id: str,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    revision: int | None = REVISION,
) -> dict[str, Any]:
    """One task of a flow, at any depth, as written (Kestra's FlowController.flowTask); 404 when absent."""
    guard(request, principal, Permission.FLOW_READ, "flow", namespace, f"{namespace}.{flow_id}")
    row = store.latest_flow(session, tenant, namespace, flow_id, revision=revision)
    if row is None or row.deleted:
        raise NotFound("flow", f"{namespace}.{flow_id}")
    task = find_task_document(row.document, task_id)
    if task is None:
        raise NotFound("task", task_id, why=f"flow {namespace}.{flow_id} has no task with this id")
    return task


@router.get("/flows/{namespace}/{flow_id}/revisions")
def flow_revisions(
    request: Request,
    namespace: str,
    flow_id: str,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
) -> list[dict[str, Any]]:
    """Every revision, oldest first, each with its source (Kestra's `FlowWithSource` list)."""
    guard(request, principal, Permission.FLOW_READ, "flow", namespace, f"{namespace}.{flow_id}")
    rows = store_search.flow_revisions(session, tenant, namespace, flow_id)
    if not rows:
        raise NotFound("flow", f"{namespace}.{flow_id}")
    return [flow_public(r) for r in rows]


@router.get("/flows/{namespace}/{flow_id}/revisions/{revision}")
def flow_revision(
    request: Request,
    namespace: str,
    flow_id: str,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    revision: int = Path(ge=1, le=INT32),
) -> dict[str, Any]:
    guard(request, principal, Permission.FLOW_READ, "flow", namespace, f"{namespace}.{flow_id}")
    row = store.latest_flow(session, tenant, namespace, flow_id, revision=revision)
    if row is None:
        raise NotFound("flow revision", f"{namespace}.{flow_id}@{revision}")
    return flow_public(row)


@router.delete("/flows/{namespace}/{flow_id}", status_code=204)
def delete_flow(
    request: Request,
    namespace: str,
    flow_id: str,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> Response:
    entry = note(request, "flow.delete", namespace=namespace, flow_id=flow_id, subject=f"{namespace}.{flow_id}")
    guard(request, principal, Permission.FLOW_WRITE, "flow", namespace, f"{namespace}.{flow_id}")
    eng.delete_flow(namespace, flow_id, actor=who)
    entry.audited = True
    return Response(status_code=204)


@router.post("/flows/validate", openapi_extra={"requestBody": _YAML})
async def validate_flows(
    request: Request,
    principal: PrincipalDep,
    eng: EngineDep,
) -> list[dict[str, Any]]:
    """One verdict per YAML document; problems go into `constraints`, never into an error status."""
    note(request, "flow.validate", read_only=True)
    # Kestra lists validation with flow reading: a principal without any flow role has no use for it.
    require(principal, Permission.FLOW_READ)
    text = await yaml_body(request)
    results = []
    for index, document in enumerate(split_documents(text)):
        verdict: dict[str, Any] = {
            "index": index,
            "outdated": False,
            "deprecationPaths": [],
            "warnings": [],
            "infos": [],
        }
        try:
            flow, warnings = await run_in_threadpool(validate_flow_with_warnings, document)
            # Namespaces the flow may not use: it deploys, and the crossing fails when it happens.
            warnings = [*warnings, *await run_in_threadpool(eng.reference_warnings, flow)]
            verdict.update(flow=flow.id, namespace=flow.namespace, constraints=None, errors=[])
            verdict["warnings"] = [str(w) for w in warnings]
        except FlowInvalid as e:
            verdict.update(
                flow=None, namespace=None, constraints=e.message, errors=validation_body(e)["_embedded"]["errors"]
            )
        results.append(verdict)
    return results
