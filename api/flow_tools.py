"""Flows as tools, for the MCP server and the A2A endpoints: which a caller may run, running one, following it.

Both protocols share this so that they list the same tools, apply the same RBAC as `POST /executions`
(`execution.run` on the flow's namespace; a flow the caller cannot read is not there at all) and make
each call an ordinary execution whose audit actor names the protocol and its client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.deps import client_address, engine
from api.permissions import Permission, allowed
from orchestrator import store
from orchestrator.core.errors import NotFound
from orchestrator.core.states import State
from orchestrator.core.tool_schema import ToolSpec, tool_of
from orchestrator.draining import draining
from orchestrator.engine import Engine
from orchestrator.engine.accounts import PermissionDenied, Principal
from orchestrator.engine.audit_trail import ApiAction, record_alone
from orchestrator.store.database import read_only

logger = logging.getLogger(__name__)

POLL_S = 0.1
#: The label Kestra puts on executions started by its MCP server (`system.from: mcp`).
FROM_LABEL = "system.from"


def actor_of(protocol: str, principal: Principal, client: str | None) -> str:
    """`mcp:alice/ci/claude-desktop`: the protocol, the token (or user) and the client that called."""
    who = principal.actor.split(":", 1)[-1]
    return f"{protocol}:{who}/{client}" if client else f"{protocol}:{who}"


def _all_tools(eng: Engine) -> list[ToolSpec]:
    with read_only(eng.sessions) as session:
        rows = store.live_flows(session, eng.settings.tenant)
        tools = []
        for row in rows:
            try:
                spec = tool_of(eng.flow_of(row))
            except Exception:  # a revision saved before a parser change must not hide every other tool
                continue
            if spec is not None:
                tools.append(spec)
    # Two flows may claim one toolName; clients key tools by name, so the later ones (by namespace and id, a
    # stable order) keep their own flow key instead of shadowing the first.
    taken: set[str] = set()
    for index, spec in enumerate(tools):
        if spec.name in taken:
            tools[index] = replace(spec, name=f"{spec.namespace}.{spec.flow_id}")
        taken.add(tools[index].name)
    return tools


async def runnable_tools(eng: Engine, principal: Principal) -> list[ToolSpec]:
    """Every flow marked as a tool that this principal may run."""
    tools = await run_in_threadpool(_all_tools, eng)
    return [t for t in tools if allowed(principal, Permission.EXECUTION_RUN, t.namespace)]


async def find_tool(eng: Engine, principal: Principal, *, name: str | None = None, key: str | None = None) -> ToolSpec:
    """The tool by MCP name or by `namespace.flowId`: NotFound when invisible, PermissionDenied when not runnable."""
    tools = await run_in_threadpool(_all_tools, eng)
    found = next((t for t in tools if (t.name == name if name else f"{t.namespace}.{t.flow_id}" == key)), None)
    if found is None or not (
        allowed(principal, Permission.FLOW_READ, found.namespace)
        or allowed(principal, Permission.EXECUTION_RUN, found.namespace)
    ):
        raise NotFound("tool", name or key or "")
    if not allowed(principal, Permission.EXECUTION_RUN, found.namespace):
        raise PermissionDenied(Permission.EXECUTION_RUN, found.namespace)
    return found


async def start(
    eng: Engine,
    tool: ToolSpec,
    inputs: Mapping[str, Any],
    *,
    actor: str,
    protocol: str,
    extra_labels: list[dict[str, str]] | None = None,
) -> str:
    """Submit the tool's flow with these inputs; the execution id. Bad inputs raise InputInvalid naming the input."""
    labels = [{"key": FROM_LABEL, "value": protocol}, *(extra_labels or [])]
    row = await run_in_threadpool(
        lambda: eng.submit(tool.namespace, tool.flow_id, inputs=dict(inputs), labels=labels, actor=actor)
    )
    return row.id


@dataclass(frozen=True)
class Progress:
    """What happened since the last look: task runs that ended, and the execution as it is now."""

    state: State
    ended: tuple[tuple[str, str], ...]  #: (task id, state) of task runs that ended since the last event
    done: int  #: task runs ended so far
    total: int  #: task runs created so far
    outputs: dict[str, Any]


def _look(eng: Engine, execution_id: str) -> tuple[State, list[tuple[str, str, str]], dict[str, Any]]:
    with read_only(eng.sessions) as session:
        row = store.get_execution(session, execution_id)
        if row is None:
            raise NotFound("execution", execution_id)
        runs = [(r.id, r.task_id, r.state) for r in store.task_runs_of(session, execution_id)]
        return State(row.state), runs, dict(row.outputs or {})


async def follow(eng: Engine, execution_id: str, *, timeout_s: float | None = None) -> AsyncIterator[Progress]:
    """Yield on every change until the execution ends or pauses (a person must act then), the server drains
    or `timeout_s` passes (an MCP call has none: its client cancels when it no longer wants the answer)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen: set[str] = set()
    last: State | None = None
    while True:
        state, runs, outputs = await run_in_threadpool(_look, eng, execution_id)
        ended = [(rid, task, s) for rid, task, s in runs if State(s).is_terminal and rid not in seen]
        seen.update(rid for rid, _, _ in ended)
        if ended or state != last:
            last = state
            yield Progress(state, tuple((t, s) for _, t, s in ended), len(seen), len(runs), outputs)
        timed_out = deadline is not None and time.monotonic() > deadline
        if state.is_terminal or state is State.PAUSED or draining.is_set() or timed_out:
            return
        await asyncio.sleep(POLL_S)


async def audit_denied(request: Request, e: PermissionDenied, *, actor: str, action: str, subject: str) -> None:
    """Record a denied MCP or A2A call: it answers HTTP 200 (an error result), so the audit middleware cannot."""
    event = ApiAction(
        actor, client_address(request), action, "denied", 403, namespace=e.namespace, subject=subject,
        method=request.method, path=request.url.path, detail={"message": str(e)},
    )  # fmt: skip
    eng = engine(request)
    try:
        await run_in_threadpool(record_alone, eng.sessions, eng.settings.tenant, event)
    except Exception:
        logger.critical("could not record audit event %s", event, exc_info=True)


async def kill(eng: Engine, execution_id: str, *, actor: str) -> None:
    """Kill a running execution on the caller's behalf (an MCP cancellation, an A2A tasks/cancel)."""
    await run_in_threadpool(lambda: eng.kill(execution_id, actor=actor))
