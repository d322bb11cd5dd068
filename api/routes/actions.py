"""Execution actions: kill, pause, resume, restart — on Kestra 2.0's `/actions/` paths and the older ones.

Kestra 2.0 (kestrapy) answers every `/executions/{id}/actions/{action}` with the Execution JSON;
Kestra <= 1.x and the MCP server call `/executions/{id}/{action}` and get 202 (kill) or 204 (resume).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import actor, check_tenant, engine
from api.errors import QueryInvalid
from api.forms import form_inputs, is_multipart
from api.idempotency import check_key, once
from api.schemas import execution_public
from orchestrator import store
from orchestrator.core.errors import InputInvalid, NotFound
from orchestrator.core.states import State
from orchestrator.engine import Engine
from orchestrator.store.database import read_only

router = APIRouter(tags=["Executions"])


async def _form_inputs(request: Request, eng: Engine, execution_id: str) -> dict[str, Any]:
    """The `onResume` inputs of a multipart form; a file goes to the execution's storage."""
    if not is_multipart(request):
        return {}  # no execution lookup for a body without inputs
    with read_only(eng.sessions) as session:
        row = store.get_execution(session, execution_id)
    if row is None:
        raise NotFound("execution", execution_id)
    return await form_inputs(request, eng.settings.data_dir, row.namespace, row.flow_id, row.id)


def _json_text(value: str | None) -> bytes:
    import json

    return json.dumps(value).encode()


def _body(shape: Any, raw: bytes) -> Any:
    """Validate a body the way FastAPI would have (a 422 with the same error shape)."""
    try:
        return TypeAdapter(shape).validate_json(raw or b"null")
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False)) from e


def _is_execution(eng: Engine, execution_id: str) -> bool:
    with eng.sessions() as session:
        return store.get_execution(session, execution_id) is not None


async def _create_instead(namespace: str, action: str, request: Request, eng: Engine, who: str) -> dict[str, Any]:
    """`POST /executions/{x}/pause` where `x` is no execution: Kestra's create-execution path for a flow
    named `pause` in namespace `x` (the two path shapes collide; the action wins only for real ids)."""
    from api.deps import authenticate
    from api.routes.executions import create_execution

    return await create_execution(
        namespace,
        action,
        request,
        labels=list(request.query_params.getlist("labels")),
        wait=request.query_params.get("wait", "false").lower() == "true",
        revision=None,
        scheduleDate=_schedule_date(request.query_params.get("scheduleDate")),
        tenant=check_tenant(request),
        principal=authenticate(request),
        eng=eng,
        who=who,
    )


def _schedule_date(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as e:
        raise QueryInvalid("scheduleDate", f"expected an ISO-8601 date-time, got {raw!r}") from e


def _json(eng: Engine, execution_id: str) -> dict[str, Any]:
    with eng.sessions() as session:
        row = store.get_execution(session, execution_id)
        assert row is not None
        return execution_public(row, store.task_runs_of(session, execution_id))


@router.delete("/executions/{execution_id}/actions/kill")
async def kill(
    execution_id: str, tenant: str = Depends(check_tenant), eng: Engine = Depends(engine), who: str = Depends(actor)
) -> dict[str, Any]:
    await run_in_threadpool(eng.kill, execution_id, actor=who)
    return await run_in_threadpool(_json, eng, execution_id)


@router.delete("/executions/{execution_id}/kill", status_code=202)
async def kill_legacy(
    execution_id: str, tenant: str = Depends(check_tenant), eng: Engine = Depends(engine), who: str = Depends(actor)
) -> Response:
    await run_in_threadpool(eng.kill, execution_id, actor=who)
    return Response(status_code=202)


@router.post("/executions/{execution_id}/actions/resume")
async def resume(
    execution_id: str,
    request: Request,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    inputs = await _form_inputs(request, eng, execution_id)
    await run_in_threadpool(eng.resume, execution_id, inputs, actor=who)
    return await run_in_threadpool(_json, eng, execution_id)


@router.post("/executions/{execution_id}/resume", status_code=204, response_model=None)
async def resume_legacy(
    execution_id: str,
    request: Request,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> Response | dict[str, Any]:
    if not await run_in_threadpool(_is_execution, eng, execution_id):
        return await _create_instead(execution_id, "resume", request, eng, who)
    inputs = await _form_inputs(request, eng, execution_id)
    await run_in_threadpool(eng.resume, execution_id, inputs, actor=who)
    return Response(status_code=204)


@router.post("/executions/{execution_id}/actions/pause")
async def pause(
    execution_id: str, tenant: str = Depends(check_tenant), eng: Engine = Depends(engine), who: str = Depends(actor)
) -> dict[str, Any]:
    await run_in_threadpool(eng.pause, execution_id, actor=who)
    return await run_in_threadpool(_json, eng, execution_id)


@router.post("/executions/{execution_id}/pause")
async def pause_legacy(
    execution_id: str,
    request: Request,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    if not await run_in_threadpool(_is_execution, eng, execution_id):
        return await _create_instead(execution_id, "pause", request, eng, who)
    await run_in_threadpool(eng.pause, execution_id, actor=who)
    return await run_in_threadpool(_json, eng, execution_id)


@router.post("/executions/{execution_id}/restart")
async def restart_legacy(
    execution_id: str,
    request: Request,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    if not await run_in_threadpool(_is_execution, eng, execution_id):
        return await _create_instead(execution_id, "restart", request, eng, who)
    return await restart(execution_id, tenant, eng, who, request.headers.get("Idempotency-Key"))


@router.post("/executions/{execution_id}/actions/restart")
async def restart(
    execution_id: str,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> dict[str, Any]:
    key = check_key(idempotency_key)
    restarted: list[str] = []

    def run() -> str:
        restarted.append(eng.restart(execution_id, actor=who).state)
        return execution_id

    await run_in_threadpool(once, eng.sessions, f"{who}|restart|{execution_id}", key, run)
    body = await run_in_threadpool(_json, eng, execution_id)
    # The answer shows the execution as the restart left it (RESTARTED), as Kestra's does.
    body["state"]["current"] = "RESTARTED" if restarted == ["RESTARTED"] else body["state"]["current"]
    return body


@router.post("/executions/{execution_id}/actions/replay")
@router.post("/executions/{execution_id}/replay")
async def replay(
    execution_id: str,
    taskRunId: str | None = None,  # Kestra's query parameter name
    revision: int | None = None,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> dict[str, Any]:
    """A new execution from a task run (or from the start); the answer is the new execution.

    With an `Idempotency-Key`, a repeat of the same request (a double-click) answers with the first one's.
    """
    key = check_key(idempotency_key)
    scope = f"{who}|replay|{execution_id}|{taskRunId}|{revision}"
    new_id = await run_in_threadpool(
        once,
        eng.sessions,
        scope,
        key,
        lambda: eng.replay(execution_id, task_run_id=taskRunId, revision=revision, actor=who).id,
    )
    return await run_in_threadpool(_json, eng, new_id)


@router.post("/executions/{execution_id}/actions/replay-with-inputs")
async def replay_with_inputs(
    execution_id: str,
    request: Request,
    taskRunId: str | None = None,  # Kestra's query parameter name
    revision: int | None = None,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    inputs = await _form_inputs(request, eng, execution_id)
    new = await run_in_threadpool(
        lambda: eng.replay(execution_id, task_run_id=taskRunId, revision=revision, inputs=inputs, actor=who)
    )
    return await run_in_threadpool(_json, eng, new.id)


class TaskRunStateChange(BaseModel):
    """Kestra's body for changing one task run's state."""

    taskRunId: str  # Kestra's field name
    state: State


@router.post("/executions/{execution_id}/state")
async def change_task_run_state_legacy(
    execution_id: str,
    request: Request,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    if not await run_in_threadpool(_is_execution, eng, execution_id):
        return await _create_instead(execution_id, "state", request, eng, who)
    change = _body(TaskRunStateChange, await request.body())
    return await change_task_run_state(execution_id, change, tenant, eng, who)


@router.post("/executions/{execution_id}/actions/state")
async def change_task_run_state(
    execution_id: str,
    change: TaskRunStateChange,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    await run_in_threadpool(lambda: eng.change_task_run_state(execution_id, change.taskRunId, change.state, actor=who))
    return await run_in_threadpool(_json, eng, execution_id)


@router.post("/executions/{execution_id}/change-status")
async def change_status_legacy(
    execution_id: str,
    request: Request,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    if not await run_in_threadpool(_is_execution, eng, execution_id):
        return await _create_instead(execution_id, "change-status", request, eng, who)
    status = _body(State, _json_text(request.query_params.get("status")))
    return await change_status(execution_id, status, tenant, eng, who)


@router.post("/executions/{execution_id}/actions/change-status")
async def change_status(
    execution_id: str,
    status: State,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    await run_in_threadpool(lambda: eng.change_status(execution_id, status, actor=who))
    return await run_in_threadpool(_json, eng, execution_id)


class LabelPublic(BaseModel):
    key: str
    value: str


@router.post("/executions/{execution_id}/labels")
async def set_labels_legacy(
    execution_id: str,
    request: Request,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    if not await run_in_threadpool(_is_execution, eng, execution_id):
        return await _create_instead(execution_id, "labels", request, eng, who)
    labels = _body(list[LabelPublic], await request.body())
    return await set_labels(execution_id, labels, tenant, eng, who)


@router.post("/executions/{execution_id}/actions/labels")
async def set_labels(
    execution_id: str,
    labels: list[LabelPublic],
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    """Add or override labels of an execution (Kestra allows it on ended executions); `system.*` is refused."""
    reserved = [label.key for label in labels if label.key.startswith("system.")]
    if reserved:
        raise InputInvalid("labels", f"labels {reserved} are reserved for the system")
    await run_in_threadpool(lambda: eng.set_labels(execution_id, [label.model_dump() for label in labels], actor=who))
    return await run_in_threadpool(_json, eng, execution_id)
