"""Executions: create (multipart inputs, labels, wait), get, search, list by flow, follow (SSE) — Kestra's shapes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.bounds import PAGE, REVISION, SIZE
from api.deps import (
    ActorDep,
    EngineDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    SubmitGroupsDep,
    TenantDep,
    api_action,
    authenticate,
    note,
)
from api.errors import QueryInvalid, UnsupportedMediaType
from api.filters import Fields, parse_labels, parse_search
from api.forms import form_inputs, is_multipart
from api.permissions import Permission, allowed, guard, prefixes
from api.schemas import execution_public
from api.sse import execution_stream
from api.waiting import wait_for_execution
from orchestrator import internal_storage as storage
from orchestrator import store
from orchestrator.core.errors import InputInvalid, NotFound
from orchestrator.core.ids import new_id
from orchestrator.core.states import State
from orchestrator.engine import Engine, SubmitRequest, ledger_replay
from orchestrator.engine.accounts import Principal
from orchestrator.engine.evaluation import evaluate
from orchestrator.engine.housekeeping import Housekeeping
from orchestrator.store import search as store_search
from orchestrator.store.database import Session, read_only
from orchestrator.store.queries import Op, Search, SortKey
from orchestrator.store.tables import ExecutionRow

router = APIRouter(tags=["Executions"], dependencies=[Depends(authenticate)])

EXECUTION_FIELDS = Fields(
    filters=store_search.EXECUTION_FILTERS,
    sorts=frozenset(store_search.EXECUTION_SORTS),
    legacy={
        "namespace": ("namespace", Op.PREFIX),
        "flowId": ("flowId", Op.EQUALS),
        "state": ("state", Op.EQUALS),
        "labels": ("labels", Op.EQUALS),
        "q": ("q", Op.CONTAINS),
        "startDate": ("startDate", Op.GREATER_THAN_OR_EQUAL_TO),
        "endDate": ("endDate", Op.LESS_THAN_OR_EQUAL_TO),
        "timeRange": ("timeRange", Op.EQUALS),
        "triggerExecutionId": ("triggerExecutionId", Op.EQUALS),
        "childFilter": ("childFilter", Op.EQUALS),
    },
    default_sort=(SortKey("state.startDate", descending=True),),
)

_FLOW_LISTING_FIELDS = replace(
    EXECUTION_FIELDS, legacy={**EXECUTION_FIELDS.legacy, "namespace": ("namespace", Op.EQUALS)}
)


def _labels(raw: list[str]) -> list[dict[str, str]]:
    labels = []
    for key, value in parse_labels(raw):
        if key.startswith("system.") and key != "system.correlationId":
            raise InputInvalid("labels", f"label '{key}' is reserved for the system")
        labels.append({"key": key, "value": value})
    return labels


def execution_json(session: Session, execution_id: str) -> dict[str, Any]:
    row = store.get_execution(session, execution_id)
    if row is None:
        raise NotFound("execution", execution_id)
    return execution_public(row, store.task_runs_of(session, execution_id))


def visible_execution(
    request: Request, session: Session, principal: Principal, permission: Permission, execution_id: str
) -> Any:
    """The execution row when the caller may act on it: 404 if missing or invisible, 403 if only the act is denied."""
    row = store.get_execution(session, execution_id)
    if row is None:
        raise NotFound("execution", execution_id)
    guard(request, principal, permission, "execution", row.namespace, execution_id)
    return row


@router.post("/executions/{namespace}/{flow_id}")
async def create_execution(
    namespace: str,
    flow_id: str,
    request: Request,
    principal: PrincipalDep,
    eng: EngineDep,
    groups: SubmitGroupsDep,
    who: ActorDep,
    labels: list[str] = Query(default=[]),
    wait: bool = False,
    revision: int | None = REVISION,
    scheduleDate: datetime | None = Query(default=None, description="Start then, not now (ISO-8601 with offset)."),
) -> dict[str, Any]:
    if scheduleDate is not None and scheduleDate.tzinfo is None:
        raise QueryInvalid("scheduleDate", "needs a time zone offset, e.g. 2026-01-01T09:00:00Z")
    entry = note(request, "execution.create", namespace=namespace, flow_id=flow_id, subject=f"{namespace}.{flow_id}")
    guard(request, principal, Permission.EXECUTION_RUN, "flow", namespace, f"{namespace}.{flow_id}")
    if _has_body(request) and not is_multipart(request):
        # Kestra takes inputs as multipart only; a JSON body would otherwise be ignored and run with defaults.
        received = request.headers.get("content-type", "")
        raise UnsupportedMediaType(received, "inputs as multipart/form-data (curl -F name=value), or no body")
    execution_id = new_id()  # chosen first, so uploaded files are stored where the execution will look
    inputs = await form_inputs(request, eng.settings.data_dir, namespace, flow_id, execution_id)
    # A start with no body at all is Kestra's engine starting a flow without inputs (its tests, a trigger):
    # required inputs may then be missing. Any inputs sent are checked as Kestra's API checks them.
    require_inputs = bool(inputs) or is_multipart(request) or bool(await request.body())
    label_list = _labels(labels)
    row = await groups.submit(
        SubmitRequest(
            namespace,
            flow_id,
            inputs,
            who,
            labels=label_list,
            revision=revision,
            execution_id=execution_id,
            scheduled_at=scheduleDate,
            require_inputs=require_inputs,
        )
    )
    entry.audited, entry.subject = True, row.id
    if wait:
        # Until the execution ends or pauses (it waits for a person then); the answer is then as it is.
        await wait_for_execution(eng, row.id, _at_rest, request=request, stop_when_draining=True)
        body = await run_in_threadpool(_read_execution_json, eng, row.id)
    else:
        # The row as it was committed: reading it back would cost a transaction per start, and a task
        # run started since is what a client polls for anyway (Kestra answers the created execution).
        body = execution_public(row, [])
    body["url"] = f"{request.base_url}ui/main/executions/{namespace}/{flow_id}/{row.id}"
    return body


def _at_rest(row: ExecutionRow) -> bool:
    return State(row.state).is_terminal or row.state == State.PAUSED


def _read_execution_json(eng: Engine, execution_id: str) -> dict[str, Any]:
    with eng.sessions() as session:
        return execution_json(session, execution_id)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return (length is not None and length.strip() != "0") or "chunked" in request.headers.get("transfer-encoding", "")


def _search(request: Request, session: Session, tenant: str, principal: Principal, search: Search) -> dict[str, Any]:
    search = replace(search, visible_prefixes=prefixes(principal, Permission.EXECUTION_READ))
    rows, total = store_search.search_executions(session, tenant, search)
    runs = store_search.task_runs_by_execution(session, [r.id for r in rows])
    return {"results": [execution_public(r, runs.get(r.id, [])) for r in rows], "total": total}


@router.get("/executions/search")
def search_executions(
    request: Request,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    page: int = PAGE,
    size: int = SIZE,
    sort: list[str] = Query(default=[]),
    namespace: str | None = Query(default=None, description="Deprecated: namespace prefix."),
    flowId: str | None = Query(default=None, description="Deprecated: flow id."),
    state: list[str] = Query(default=[], description="Deprecated: states."),
    labels: list[str] = Query(default=[], description="Deprecated: `key:value` labels."),
) -> dict[str, Any]:
    """`filters[namespace][EQUALS]=..`, `filters[state][IN]=..`, `filters[labels][EQUALS][k]=v`, time range, ..."""
    search = parse_search(request.query_params, EXECUTION_FIELDS, page=page, size=size, sort=sort)
    return _search(request, session, tenant, principal, search)


@router.get("/executions")
def list_flow_executions(
    request: Request,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    page: int = PAGE,
    size: int = SIZE,
    sort: list[str] = Query(default=[]),
    namespace: str | None = None,
    flowId: str | None = None,
) -> dict[str, Any]:
    """The MCP server's listing: `?namespace=&flowId=` with exact namespace (plus every search filter)."""
    search = parse_search(request.query_params, _FLOW_LISTING_FIELDS, page=page, size=size, sort=sort)
    return _search(request, session, tenant, principal, search)


_MAX_DELETED = 10_000


def _delete(
    request: Request, eng: Engine, ids: list[str], *, delete_logs: bool, delete_storage: bool
) -> dict[str, int]:
    """Delete ended executions in one transaction (a live or missing one refuses them all, 400), audited."""
    entry = note(request, "execution.delete", subject=",".join(ids)[:600])
    keeper = Housekeeping(eng.settings.tenant, eng.sessions, eng.settings.data_dir)
    deleted = keeper.delete_executions(
        ids, delete_logs=delete_logs, delete_storage=delete_storage, audit=api_action(request, entry)
    )
    entry.audited = True
    return {"count": len(deleted)}


def matching_executions(
    request: Request, session: Session, tenant: str, principal: Principal, *, limit: int
) -> list[ExecutionRow]:
    """What `/executions/search` lists for this request's filters (legacy parameters or `filters[...]`),
    every page of it up to `limit`: the executions a by-query action acts on."""
    search = parse_search(request.query_params, EXECUTION_FIELDS, page=1, size=1, sort=[])
    search = replace(search, size=limit, visible_prefixes=prefixes(principal, Permission.EXECUTION_READ))
    rows, _ = store_search.search_executions(session, tenant, search)
    return list(rows)


def _deletable(request: Request, session: Session, principal: Principal, ids: list[str]) -> list[str]:
    """The ids the caller may delete; a missing or invisible one stays in so the deletion names it as not found."""
    for execution_id in ids:
        row = store.get_execution(session, execution_id)
        if row is not None and allowed(principal, Permission.EXECUTION_READ, row.namespace):
            guard(request, principal, Permission.EXECUTION_CONTROL, "execution", row.namespace, execution_id)
    return ids


@router.delete("/executions/by-ids")
def delete_executions_by_ids(
    request: Request,
    ids: list[str],
    principal: PrincipalDep,
    session: SessionDep,
    eng: EngineDep,
    deleteLogs: bool = True,  # Kestra's query parameter names
    deleteStorage: bool = True,
    deleteMetrics: bool = True,
    includeNonTerminated: bool = False,
) -> dict[str, int]:
    """Kestra's bulk delete: `{"count": n}`; a missing or still-live execution answers 400 and deletes nothing.

    Live executions are never deleted (kill them first), whatever `includeNonTerminated` says.
    """
    if len(ids) > _MAX_DELETED:
        raise QueryInvalid("body", f"at most {_MAX_DELETED} execution ids at once")
    return _delete(
        request, eng, _deletable(request, session, principal, ids), delete_logs=deleteLogs, delete_storage=deleteStorage
    )


@router.delete("/executions/by-query")
def delete_executions_by_query(
    request: Request,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    eng: EngineDep,
    deleteLogs: bool = True,
    deleteStorage: bool = True,
    deleteMetrics: bool = True,
    includeNonTerminated: bool = False,
) -> dict[str, int]:
    """The executions `/executions/search` would list for the same filters (ended ones, unless
    `includeNonTerminated`, which then refuses the deletion as by-ids does)."""
    rows = matching_executions(request, session, tenant, principal, limit=_MAX_DELETED)
    live = {s.value for s in State if not s.is_terminal}
    ids = [r.id for r in rows if includeNonTerminated or r.state not in live]
    return _delete(
        request, eng, _deletable(request, session, principal, ids), delete_logs=deleteLogs, delete_storage=deleteStorage
    )


@router.delete("/executions/{execution_id}", status_code=204, response_class=Response)
def delete_execution(
    request: Request,
    execution_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    eng: EngineDep,
    deleteLogs: bool = True,
    deleteStorage: bool = True,
    deleteMetrics: bool = True,
) -> Response:
    """Kestra's delete: 204, or 404 when there is no such execution; a live one answers 400 (kill it first)."""
    visible_execution(request, session, principal, Permission.EXECUTION_CONTROL, execution_id)
    _delete(request, eng, [execution_id], delete_logs=deleteLogs, delete_storage=deleteStorage)
    return Response(status_code=204)


@router.get("/executions/{execution_id}")
def get_execution(
    request: Request,
    execution_id: str,
    principal: PrincipalDep,
    session: SessionDep,
) -> dict[str, Any]:
    visible_execution(request, session, principal, Permission.EXECUTION_READ, execution_id)
    return execution_json(session, execution_id)


@router.get("/executions/{execution_id}/diff/{other_id}")
def diff_executions(
    request: Request,
    execution_id: str,
    other_id: str,
    principal: PrincipalDep,
    session: SessionDep,
) -> dict[str, Any]:
    """Two executions side by side, task run by task run (matched by place): states, outputs, `same`.

    Made for a replay and its original (`replay?mode=ledger`), it compares any two; both must be readable.
    """
    visible_execution(request, session, principal, Permission.EXECUTION_READ, execution_id)
    visible_execution(request, session, principal, Permission.EXECUTION_READ, other_id)
    return ledger_replay.diff(session, execution_id, other_id)


@router.post(
    "/executions/{execution_id}/eval/{task_run_id}",
    openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}, "required": True}},
)
def eval_expression(
    request: Request,
    execution_id: str,
    task_run_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    eng: EngineDep,
    expression: str = Body(media_type="text/plain"),
) -> dict[str, Any]:
    """Kestra's expression evaluation in one task run's context: `{result}` or `{error, stackTrace}`."""
    row = visible_execution(request, session, principal, Permission.EXECUTION_READ, execution_id)
    return evaluate(eng, session, row, task_run_id, expression)


@router.get(
    "/executions/{execution_id}/file",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
)
def download_execution_file(
    request: Request,
    execution_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    config: SettingsDep,
    path: str = Query(description="The file's kestra:/// URI, as task outputs and FILE inputs give it."),
) -> FileResponse:
    """Kestra's execution file download: a file of this execution's internal storage (inputs, task outputs)."""
    row = visible_execution(request, session, principal, Permission.EXECUTION_READ, execution_id)
    prefix = storage.execution_prefix(row.namespace, row.flow_id, row.id)
    try:
        local = storage.local_path(config.data_dir, path)
    except storage.StorageError as e:
        raise QueryInvalid("path", e.message) from e
    if not storage.belongs_to(path, prefix):
        raise QueryInvalid("path", f"{path} is not a file of execution {execution_id}")
    if not local.is_file():
        raise NotFound("file", path)
    return FileResponse(local, filename=local.name, media_type="application/octet-stream")


def _check_readable(request: Request, eng: Engine, principal: Principal, execution_id: str) -> None:
    with read_only(eng.sessions) as session:
        visible_execution(request, session, principal, Permission.EXECUTION_READ, execution_id)


@router.get(
    "/executions/{execution_id}/follow",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def follow_execution(
    request: Request,
    execution_id: str,
    principal: PrincipalDep,
    eng: EngineDep,
) -> StreamingResponse:
    """Server-Sent Events: `start`, then the Execution on every change (`progress`), then `end`, then close.

    Unknown and invisible ids are the same immediate 404: waiting for an unknown id (Kestra's race with a
    just-created execution, which cannot happen here: creation commits before it answers) told them apart.
    """
    await run_in_threadpool(_check_readable, request, eng, principal, execution_id)
    return StreamingResponse(
        execution_stream(eng, execution_id, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
