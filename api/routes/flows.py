"""Flows: create (YAML body), update, get, delete, search, validate — Kestra's paths and shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import actor, check_tenant, engine, read_session
from api.errors import validation_body
from api.schemas import flow_public
from orchestrator import store
from orchestrator.core.errors import Conflict, FlowInvalid, NotFound
from orchestrator.core.parse import parse_flow, split_documents
from orchestrator.engine import Engine

router = APIRouter(tags=["Flows"])


async def _yaml_body(request: Request) -> str:
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FlowInvalid([], "the flow body is not UTF-8 text") from e


@router.post("/flows")
async def create_flow(
    request: Request, tenant: str = Depends(check_tenant), eng: Engine = Depends(engine), who: str = Depends(actor)
) -> dict[str, Any]:
    source = await _yaml_body(request)
    flow = await run_in_threadpool(parse_flow, source)

    def deploy() -> dict[str, Any]:
        with eng.sessions() as session:
            existing = store.latest_flow(session, eng.settings.tenant, flow.namespace, flow.id)
        if existing is not None and not existing.deleted:
            raise FlowInvalid([], f"Flow id already exists: {flow.namespace}.{flow.id}")
        return flow_public(eng.deploy_flow(source, actor=who))

    return await run_in_threadpool(deploy)


@router.put("/flows/{namespace}/{flow_id}")
async def update_flow(
    namespace: str,
    flow_id: str,
    request: Request,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    source = await _yaml_body(request)

    def update() -> dict[str, Any]:
        with eng.sessions() as session:
            existing = store.latest_flow(session, eng.settings.tenant, namespace, flow_id)
        if existing is None or existing.deleted:
            raise NotFound("flow", f"{namespace}.{flow_id}")
        return flow_public(eng.deploy_flow(source, actor=who, expect=(namespace, flow_id)))

    return await run_in_threadpool(update)


@router.get("/flows/{namespace}/{flow_id}")
def get_flow(
    namespace: str,
    flow_id: str,
    source: bool = False,
    revision: int | None = None,
    allowDeleted: bool = False,  # noqa: N803 - Kestra's query parameter name
    tenant: str = Depends(check_tenant),
    session: Session = Depends(read_session),
) -> dict[str, Any]:
    row = store.latest_flow(session, tenant, namespace, flow_id, revision=revision)
    if row is None or (row.deleted and not allowDeleted):
        raise NotFound("flow", f"{namespace}.{flow_id}")
    return flow_public(row, with_source=True)


@router.delete("/flows/{namespace}/{flow_id}", status_code=204)
def delete_flow(
    namespace: str,
    flow_id: str,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> Response:
    eng.delete_flow(namespace, flow_id, actor=who)
    return Response(status_code=204)


@router.get("/flows/search")
def search_flows(
    namespace: str | None = None,
    page: int = 1,
    size: int = 25,
    tenant: str = Depends(check_tenant),
    session: Session = Depends(read_session),
) -> dict[str, Any]:
    rows = store.live_flows(session, tenant, namespace)
    start = max(page - 1, 0) * size
    return {"results": [flow_public(r, with_source=False) for r in rows[start : start + size]], "total": len(rows)}


@router.get("/flows/{namespace}")
def list_namespace_flows(
    namespace: str, tenant: str = Depends(check_tenant), session: Session = Depends(read_session)
) -> list[dict[str, Any]]:
    return [flow_public(r, with_source=False) for r in store.live_flows(session, tenant, namespace)]


@router.post("/flows/validate")
async def validate_flows(request: Request, tenant: str = Depends(check_tenant)) -> list[dict[str, Any]]:
    """One verdict per YAML document; problems go into `constraints`, never into an error status."""
    text = await _yaml_body(request)
    results = []
    for index, document in enumerate(split_documents(text)):
        try:
            flow = parse_flow(document)
            results.append(
                {
                    "index": index,
                    "flow": flow.id,
                    "namespace": flow.namespace,
                    "constraints": None,
                    "outdated": False,
                    "deprecationPaths": [],
                    "warnings": [],
                    "infos": [],
                    "errors": [],
                }
            )
        except FlowInvalid as e:
            results.append(
                {
                    "index": index,
                    "flow": None,
                    "namespace": None,
                    "constraints": e.message,
                    "outdated": False,
                    "deprecationPaths": [],
                    "warnings": [],
                    "infos": [],
                    "errors": validation_body(e)["_embedded"]["errors"],
                }
            )
    return results


__all__ = ["Conflict", "router"]
