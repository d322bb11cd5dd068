"""The MCP server's read-only tools: get an execution, list executions, get an execution's logs (REST's RBAC)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from mcp import types
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from api.filters import parse_search
from api.permissions import Permission, prefixes, require_on
from api.routes.executions import EXECUTION_FIELDS
from api.routes.logs import LOG_FIELDS
from api.schemas import execution_public, log_public
from orchestrator import store
from orchestrator.core.errors import InputInvalid, NotFound
from orchestrator.engine import Engine
from orchestrator.engine.accounts import Principal
from orchestrator.store import search as store_search
from orchestrator.store.database import read_only
from orchestrator.store.queries import Filter, Group, Op

_READ_ONLY = types.ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)
_ID = {"executionId": {"type": "string", "description": "The execution id (an MCP tool call's _meta gives it)."}}

_TOOLS = (
    types.Tool(
        name="chorus_get_execution",
        description="An execution of a Chorus flow: state, inputs, outputs and task runs.",
        inputSchema={"type": "object", "properties": _ID, "required": ["executionId"]},
        annotations=_READ_ONLY,
    ),
    types.Tool(
        name="chorus_list_executions",
        description="Recent executions, newest first, optionally of one namespace, flow or state.",
        inputSchema={
            "type": "object",
            "properties": {
                "namespace": {"type": "string", "description": "Namespace prefix."},
                "flowId": {"type": "string"},
                "state": {"type": "string", "description": "e.g. RUNNING, SUCCESS, FAILED."},
                "size": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
            },
        },
        annotations=_READ_ONLY,
    ),
    types.Tool(
        name="chorus_get_logs",
        description="The log lines of an execution, oldest first.",
        inputSchema={
            "type": "object",
            "properties": {**_ID, "minLevel": {"type": "string", "enum": ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]}},
            "required": ["executionId"],
        },
        annotations=_READ_ONLY,
    ),
)
TOOLS = frozenset(t.name for t in _TOOLS)


def tool_list() -> list[types.Tool]:
    return list(_TOOLS)


def _execution_id(arguments: dict[str, Any]) -> str:
    value = arguments.get("executionId")
    if not isinstance(value, str) or not value:
        raise InputInvalid("executionId", "required: the execution id")
    return value


def _get(eng: Engine, principal: Principal, arguments: dict[str, Any]) -> Any:
    execution_id = _execution_id(arguments)
    with read_only(eng.sessions) as session:
        row = store.get_execution(session, execution_id)
        if row is None:
            raise NotFound("execution", execution_id)
        require_on(principal, Permission.EXECUTION_READ, "execution", row.namespace, execution_id)
        return execution_public(row, store.task_runs_of(session, execution_id))


def _list(eng: Engine, principal: Principal, arguments: dict[str, Any]) -> Any:
    size = arguments.get("size", 20)
    query = {k: str(arguments[k]) for k in ("namespace", "flowId", "state") if arguments.get(k)}
    search = parse_search(
        QueryParams(query), EXECUTION_FIELDS, page=1, size=size if isinstance(size, int) else 0, sort=[]
    )
    search = replace(search, visible_prefixes=prefixes(principal, Permission.EXECUTION_READ))
    with read_only(eng.sessions) as session:
        rows, total = store_search.search_executions(session, eng.settings.tenant, search)
        runs = store_search.task_runs_by_execution(session, [r.id for r in rows])
        return {"results": [execution_public(r, runs.get(r.id, [])) for r in rows], "total": total}


def _logs(eng: Engine, principal: Principal, arguments: dict[str, Any]) -> Any:
    execution_id = _execution_id(arguments)
    level = arguments.get("minLevel")
    search = parse_search(QueryParams({"minLevel": level} if level else {}), LOG_FIELDS, page=1, size=1000, sort=[])
    where = Group(any_of=False, items=(Filter("executionId", Op.EQUALS, (execution_id,)), search.where))
    with read_only(eng.sessions) as session:
        row = store.get_execution(session, execution_id)
        if row is None:
            raise NotFound("execution", execution_id)
        require_on(principal, Permission.LOG_READ, "log", row.namespace, execution_id)
        rows, _ = store_search.search_logs(session, replace(search, where=where, sort=()), paged=False)
        return [log_public(r) for r in rows]


_HANDLERS = {"chorus_get_execution": _get, "chorus_list_executions": _list, "chorus_get_logs": _logs}


async def call(name: str, arguments: dict[str, Any], eng: Engine, principal: Principal) -> types.CallToolResult:
    """Run one read-only tool; ChorusErrors (not found, denied, bad argument) propagate to the caller's error result."""
    result = await run_in_threadpool(_HANDLERS[name], eng, principal, arguments)
    text = json.dumps(result, default=str)
    # structuredContent must be an object: a list of log lines is wrapped.
    structured = result if isinstance(result, dict) else {"results": result}
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structuredContent=structured)
