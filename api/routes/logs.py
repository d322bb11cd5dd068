"""Logs: of an execution (filters plain and `filters[...]`), download as text, follow (SSE), search."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from api.bounds import INT32, PAGE, SIZE
from api.deps import EngineDep, PrincipalDep, SessionDep, authenticate
from api.filters import Fields, parse_search
from api.permissions import Permission, prefixes
from api.routes.executions import visible_execution
from api.schemas import log_public
from api.sse import log_stream
from orchestrator import store
from orchestrator.core.states import State
from orchestrator.store import search as store_search
from orchestrator.store.queries import Filter, Group, Op, Search, SortKey

router = APIRouter(tags=["Logs"], dependencies=[Depends(authenticate)])

LOG_FIELDS = Fields(
    filters=store_search.LOG_FILTERS,
    sorts=frozenset(store_search.LOG_SORTS),
    legacy={
        "minLevel": ("level", Op.EQUALS),
        "taskRunId": ("taskRunId", Op.EQUALS),
        "taskId": ("taskId", Op.EQUALS),
        "attempt": ("attempt", Op.EQUALS),
        "namespace": ("namespace", Op.PREFIX),
        "flowId": ("flowId", Op.EQUALS),
        "q": ("q", Op.CONTAINS),
        "startDate": ("startDate", Op.GREATER_THAN_OR_EQUAL_TO),
        "endDate": ("endDate", Op.LESS_THAN_OR_EQUAL_TO),
    },
    default_sort=(SortKey("timestamp"),),
)

_LEVEL = Query(default=None, description="Minimum level: TRACE, DEBUG, INFO, WARN or ERROR.")


def _of_execution(request: Request, execution_id: str) -> Search:
    search = parse_search(request.query_params, LOG_FIELDS, page=1, size=1000, sort=[])
    where = Group(any_of=False, items=(Filter("executionId", Op.EQUALS, (execution_id,)), search.where))
    return replace(search, where=where, sort=())


@router.get("/logs/search")
def search_logs(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    page: int = PAGE,
    size: int = SIZE,
    sort: list[str] = Query(default=[]),
    minLevel: str | None = _LEVEL,
) -> dict[str, Any]:
    search = parse_search(request.query_params, LOG_FIELDS, page=page, size=size, sort=sort)
    search = replace(search, visible_prefixes=prefixes(principal, Permission.LOG_READ))
    rows, total = store_search.search_logs(session, search)
    return {"results": [log_public(r) for r in rows], "total": total, "type": "OFFSET"}


@router.get("/logs/{execution_id}")
@router.get("/executions/{execution_id}/logs")
def execution_logs(
    request: Request,
    execution_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    minLevel: str | None = _LEVEL,
    taskRunId: str | None = None,
    taskId: str | None = None,
    attempt: int | None = Query(default=None, ge=0, le=INT32),
) -> list[dict[str, Any]]:
    visible_execution(request, session, principal, Permission.LOG_READ, execution_id)
    rows, _ = store_search.search_logs(session, _of_execution(request, execution_id), paged=False)
    return [log_public(r) for r in rows]


@router.get("/logs/{execution_id}/download", response_class=PlainTextResponse)
def download_logs(
    request: Request,
    execution_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    minLevel: str | None = _LEVEL,
    taskRunId: str | None = None,
    taskId: str | None = None,
    attempt: int | None = Query(default=None, ge=0, le=INT32),
) -> PlainTextResponse:
    """`<ISO timestamp> <LEVEL> <message>` per line, as Kestra's download."""
    row = visible_execution(request, session, principal, Permission.LOG_READ, execution_id)
    rows, _ = store_search.search_logs(session, _of_execution(request, execution_id), paged=False)
    headers = {"Content-Disposition": f'attachment; filename="{execution_id}.log"'}
    if not State(row.state).is_terminal:
        headers["Cache-Control"] = "no-cache"
    return PlainTextResponse("\n".join(f"{store.iso(r.at)} {r.level} {r.message}" for r in rows), headers=headers)


@router.get(
    "/logs/{execution_id}/follow",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
def follow_logs(
    request: Request,
    execution_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    eng: EngineDep,
    minLevel: str | None = _LEVEL,
) -> StreamingResponse:
    """SSE of LogEntry: every stored line, then live ones; closes once the execution has ended."""
    visible_execution(request, session, principal, Permission.LOG_READ, execution_id)
    return StreamingResponse(
        log_stream(eng, execution_id, _of_execution(request, execution_id), request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
