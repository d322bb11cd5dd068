"""A2A endpoints: agent cards for the server and per flow, and JSON-RPC `message/send`, `message/stream`,
`tasks/get`, `tasks/cancel` over executions.

`POST /a2a` serves every exposed flow (the skill is named by `metadata.skillId`, `namespace.flowId`);
`POST /a2a/{namespace}/{flowId}` serves one. Credentials and RBAC are the REST API's: running needs
`execution.run`, reading `execution.read`, cancelling `execution.control` on the flow's namespace. Protocol
errors are JSON-RPC errors with HTTP 200; only a missing or bad credential is an HTTP 401.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from api import a2a_shapes as a2a
from api import flow_tools
from api.deps import authenticate, engine
from api.permissions import Permission, require_on
from orchestrator import store
from orchestrator.core import json_text
from orchestrator.core.errors import ChorusError, Conflict, InputInvalid, NotFound
from orchestrator.core.ids import new_id
from orchestrator.core.states import State
from orchestrator.core.tool_schema import ToolSpec
from orchestrator.engine import Engine
from orchestrator.engine.accounts import PermissionDenied, Principal, Unauthenticated
from orchestrator.store.database import read_only

router = APIRouter(tags=["A2A"])
M = TypeVar("M", bound=BaseModel)


class RpcError(Exception):
    """A JSON-RPC error answered to the caller (code, message, data)."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _version() -> str:
    from importlib.metadata import version

    return version("chorus")


async def _authenticated(request: Request) -> Principal:
    """`authenticate` off the event loop: it checks a password hash or a token in the database."""
    return await run_in_threadpool(authenticate, request)


async def _principal_or_none(request: Request) -> Principal | None:
    """The caller when credentials were sent (or none are required); None for an anonymous card fetch."""
    if request.headers.get("authorization") or not engine(request).settings.auth_required:
        return await _authenticated(request)
    return None


@router.get("/.well-known/agent-card.json")
async def server_card(request: Request) -> dict[str, Any]:
    """The server's card; its skills (the flows this caller may run) are listed only to an authenticated caller."""
    principal = await _principal_or_none(request)
    tools = await flow_tools.runnable_tools(engine(request), principal) if principal is not None else []
    return a2a.card(
        name="Chorus", description="Chorus flows as A2A skills: each message starts an execution of the named skill.",
        url=f"{request.base_url}a2a", version=_version(), skills=[a2a.skill(t) for t in tools],
        extended=principal is None,
    )  # fmt: skip


@router.get("/a2a/{namespace}/{flow_id}/.well-known/agent-card.json")
async def flow_card(namespace: str, flow_id: str, request: Request) -> dict[str, Any]:
    """One exposed flow's card (credentials required where the server requires them)."""
    tool = await flow_tools.find_tool(engine(request), await _authenticated(request), key=f"{namespace}.{flow_id}")
    return a2a.card(
        name=tool.title, description=tool.description or f"The Chorus flow {namespace}.{flow_id}.",
        url=f"{request.base_url}a2a/{namespace}/{flow_id}", version=_version(), skills=[a2a.skill(tool)],
        extended=False,
    )  # fmt: skip


@router.post("/a2a", response_model=None)
async def rpc_server(request: Request) -> Response:
    return await _rpc(request, None)


@router.post("/a2a/{namespace}/{flow_id}", response_model=None)
async def rpc_flow(namespace: str, flow_id: str, request: Request) -> Response:
    return await _rpc(request, f"{namespace}.{flow_id}")


async def _rpc(request: Request, skill: str | None) -> Response:
    principal = await _authenticated(request)  # a ChorusError -> the API's 401 table before any JSON-RPC
    request_id: str | int | None = None
    method, raw = "", None
    try:
        try:
            raw = json_text.loads(await request.body())
        except ValueError as e:  # JsonTooDeep too: "not JSON: JSON nested too deeply to read"
            raise RpcError(a2a.PARSE_ERROR, f"not JSON: {e}") from e
        if isinstance(raw, dict):
            request_id = raw.get("id") if isinstance(raw.get("id"), str | int) else None
        call = _parse(a2a.RpcRequest, raw, a2a.INVALID_REQUEST)
        eng = engine(request)
        method = call.method
        if method == "agent/getAuthenticatedExtendedCard":
            # The server's card with the caller's skills, whichever endpoint is asked.
            card = await _extended_card(eng, principal, f"{request.base_url}a2a")
            return JSONResponse({"jsonrpc": "2.0", "id": call.id, "result": card})
        if call.method == "message/stream":
            events = await _stream_start(eng, principal, call.params, skill)
            return StreamingResponse(_sse(call.id, events), media_type="text/event-stream")
        handler = _METHODS.get(call.method)
        if handler is None:
            raise RpcError(a2a.METHOD_NOT_FOUND, f"method '{call.method}' not found", {"method": call.method})
        result = await handler(eng, principal, call.params, skill)
        return JSONResponse({"jsonrpc": "2.0", "id": call.id, "result": result})
    except (RpcError, ChorusError) as e:
        if isinstance(e, PermissionDenied):
            who = flow_tools.actor_of("a2a", principal, None)
            await flow_tools.audit_denied(request, e, actor=who, action=f"a2a.{method}", subject=_subject(raw, skill))
        error = e if isinstance(e, RpcError) else _rpc_error(e)
        body = {"code": error.code, "message": error.message, **({"data": error.data} if error.data else {})}
        return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": body})


def _subject(raw: Any, skill: str | None) -> str:
    """What a denied call was about, for the audit: the skill, or the task id of tasks/*."""
    params = raw.get("params") if isinstance(raw, dict) else None
    if skill or not isinstance(params, dict):
        return skill or ""
    message = params.get("message")
    named = message.get("metadata", {}).get("skillId") if isinstance(message, dict) else None
    return str(params.get("id") or named or params.get("metadata", {}).get("skillId") or "")


def _rpc_error(e: ChorusError) -> RpcError:
    if isinstance(e, Unauthenticated):
        raise e  # not a protocol error: the API answers 401
    if isinstance(e, InputInvalid):
        return RpcError(a2a.INVALID_PARAMS, str(e), {"field": e.path})
    if isinstance(e, PermissionDenied):
        return RpcError(a2a.PERMISSION_DENIED, str(e))
    if isinstance(e, NotFound):
        code = a2a.TASK_NOT_FOUND if e.kind == "execution" else a2a.INVALID_PARAMS
        return RpcError(code, str(e), {"field": "id" if e.kind == "execution" else "metadata.skillId"})
    return RpcError(a2a.INVALID_REQUEST, str(e))


def _parse(model: type[M], raw: Any, code: int = a2a.INVALID_PARAMS) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "params"
        raise RpcError(code, f"{field}: {first['msg']}", {"field": field}) from e


async def _submit(
    eng: Engine, principal: Principal, params: dict[str, Any], skill: str | None
) -> tuple[str, str, ToolSpec]:
    send = _parse(a2a.SendParams, params)
    if send.message.task_id:
        # Continuing a task (answering input-required) would be a resume; not offered yet.
        raise RpcError(
            a2a.UNSUPPORTED_OPERATION, "message.taskId: continuing a task is not supported", {"field": "message.taskId"}
        )
    key = skill or send.message.metadata.get("skillId") or send.metadata.get("skillId")
    if not isinstance(key, str) or not key:
        raise RpcError(
            a2a.INVALID_PARAMS,
            "metadata.skillId: name the skill (namespace.flowId) on /a2a",
            {"field": "metadata.skillId"},
        )
    tool = await flow_tools.find_tool(eng, principal, key=key)
    context_id = send.message.context_id or new_id()
    who = flow_tools.actor_of("a2a", principal, None)
    inputs = a2a.inputs_of(send.message, tool)
    execution_id = await flow_tools.start(
        eng, tool, inputs, actor=who, protocol="a2a", extra_labels=[{"key": a2a.CONTEXT_LABEL, "value": context_id}]
    )
    return execution_id, context_id, tool


async def _send(eng: Engine, principal: Principal, params: dict[str, Any], skill: str | None) -> dict[str, Any]:
    execution_id, _, _ = await _submit(eng, principal, params, skill)
    if params.get("configuration", {}).get("blocking", True) is not False:
        async for _step in flow_tools.follow(eng, execution_id, timeout_s=eng.settings.wait_timeout_s):
            pass
    return await _task(eng, principal, execution_id, Permission.EXECUTION_RUN)


async def _stream_start(
    eng: Engine, principal: Principal, params: dict[str, Any], skill: str | None
) -> AsyncIterator[dict[str, Any]]:
    execution_id, context_id, tool = await _submit(eng, principal, params, skill)  # errors answer as JSON, not SSE
    return _events(eng, execution_id, context_id, f"{tool.namespace}.{tool.flow_id}")


async def _events(eng: Engine, execution_id: str, context_id: str, flow: str) -> AsyncIterator[dict[str, Any]]:
    yield a2a.task(execution_id, context_id, State.CREATED, {}, flow)
    async for step in flow_tools.follow(eng, execution_id, timeout_s=eng.settings.wait_timeout_s):
        final = step.state.is_terminal or step.state is State.PAUSED
        if final and step.outputs:
            artifact = a2a.artifact(step.outputs)
            yield {
                "kind": "artifact-update",
                "taskId": execution_id,
                "contextId": context_id,
                "artifact": artifact,
                "lastChunk": True,
            }
        note = ", ".join(f"{task} {state}" for task, state in step.ended) or f"execution {step.state}"
        status = a2a.status(step.state, execution_id, context_id, note)
        yield {
            "kind": "status-update",
            "taskId": execution_id,
            "contextId": context_id,
            "status": status,
            "final": final,
        }


async def _sse(request_id: str | int | None, events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    async for item in events:
        yield f"data: {json.dumps({'jsonrpc': '2.0', 'id': request_id, 'result': item}, default=str)}\n\n"


def _read_task(eng: Engine, principal: Principal, execution_id: str, permission: Permission) -> dict[str, Any]:
    with read_only(eng.sessions) as session:
        row = store.get_execution(session, execution_id)
        if row is None:
            raise NotFound("execution", execution_id)
        require_on(principal, permission, "execution", row.namespace, execution_id)
        labels = {label["key"]: label["value"] for label in row.labels or []}
        context_id = labels.get(a2a.CONTEXT_LABEL, execution_id)
        return a2a.task(row.id, context_id, State(row.state), dict(row.outputs or {}), f"{row.namespace}.{row.flow_id}")


async def _task(eng: Engine, principal: Principal, execution_id: str, permission: Permission) -> dict[str, Any]:
    return await run_in_threadpool(_read_task, eng, principal, execution_id, permission)


async def _get(eng: Engine, principal: Principal, params: dict[str, Any], skill: str | None) -> dict[str, Any]:
    ids = _parse(a2a.TaskIdParams, params)
    return await _task(eng, principal, ids.id, Permission.EXECUTION_READ)


async def _cancel(eng: Engine, principal: Principal, params: dict[str, Any], skill: str | None) -> dict[str, Any]:
    ids = _parse(a2a.TaskIdParams, params)
    current = await _task(eng, principal, ids.id, Permission.EXECUTION_CONTROL)
    if current["status"]["state"] in ("completed", "failed", "canceled"):
        raise RpcError(
            a2a.TASK_NOT_CANCELABLE, f"task {ids.id} is already {current['status']['state']}", {"id": ids.id}
        )
    try:
        await flow_tools.kill(eng, ids.id, actor=flow_tools.actor_of("a2a", principal, None))
    except Conflict as e:
        raise RpcError(a2a.TASK_NOT_CANCELABLE, str(e), {"id": ids.id}) from e
    async for _step in flow_tools.follow(eng, ids.id, timeout_s=5):
        pass  # a kill settles quickly; answer with the task as it is then
    return await _task(eng, principal, ids.id, Permission.EXECUTION_READ)


async def _extended_card(eng: Engine, principal: Principal, url: str) -> dict[str, Any]:
    tools = await flow_tools.runnable_tools(eng, principal)
    return a2a.card(
        name="Chorus", description="Chorus flows as A2A skills.", url=url, version=_version(),
        skills=[a2a.skill(t) for t in tools], extended=False,
    )  # fmt: skip


_METHODS = {
    "message/send": _send,
    "tasks/get": _get,
    "tasks/cancel": _cancel,
}
