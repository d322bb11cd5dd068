"""The MCP server at `/mcp`: flows marked as tools, plus read-only tools over executions and logs.

Streamable HTTP through the official SDK: `/mcp` keeps sessions (spec 2025-03-26 to 2025-11-25 clients that
send `Mcp-Session-Id`), `/mcp/stateless` answers each POST on its own. Every HTTP request is authenticated
with the same Basic/Bearer credentials as the REST API before the SDK sees it; each tool call is checked
with the caller of *that* request, so a session id alone grants nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from mcp import types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from api import flow_tools, mcp_reads
from api.deps import authenticate, engine
from orchestrator.core import json_text
from orchestrator.core.errors import ChorusError
from orchestrator.core.states import State
from orchestrator.engine import Engine
from orchestrator.engine.accounts import PermissionDenied

logger = logging.getLogger(__name__)

_SUCCEEDED = {State.SUCCESS, State.WARNING}


def _request() -> Request:
    request = server.request_context.request
    assert isinstance(request, Request), "the Streamable HTTP transport hands every handler its HTTP request"
    return request


def _client_name() -> str | None:
    params = server.request_context.session.client_params  # None in stateless mode: no initialize was kept
    return params.clientInfo.name if params is not None else None


server: Server[Any, Request] = Server("chorus", instructions="Chorus flows as tools; executions and logs, read-only.")


@server.list_tools()  # type: ignore[no-untyped-call, untyped-decorator]
async def list_tools() -> list[types.Tool]:
    request = _request()
    tools = await flow_tools.runnable_tools(engine(request), await run_in_threadpool(authenticate, request))
    listed = [
        types.Tool(
            name=t.name,
            title=t.title,
            description=t.description or f"Run the Chorus flow {t.namespace}.{t.flow_id}.",
            inputSchema=t.input_schema,
            outputSchema=t.output_schema if t.output_schema["properties"] else None,
            annotations=types.ToolAnnotations(title=t.title, readOnlyHint=False, openWorldHint=True),
            _meta={"chorus.io/flow": f"{t.namespace}.{t.flow_id}"},
        )
        for t in tools
        if t.name not in mcp_reads.TOOLS
    ]
    return [*mcp_reads.tool_list(), *listed]


@server.call_tool(validate_input=False)  # type: ignore[untyped-decorator]
async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    # Inputs are checked by the engine's own coercion: its errors name the input, and it is the one rule.
    request = _request()
    principal = await run_in_threadpool(authenticate, request)
    eng = engine(request)
    try:
        if name in mcp_reads.TOOLS:
            return await mcp_reads.call(name, arguments, eng, principal)
        tool = await flow_tools.find_tool(eng, principal, name=name)
        who = flow_tools.actor_of("mcp", principal, _client_name())
        execution_id = await flow_tools.start(eng, tool, arguments, actor=who, protocol="mcp")
    except ChorusError as e:
        if isinstance(e, PermissionDenied):
            who = flow_tools.actor_of("mcp", principal, _client_name())
            await flow_tools.audit_denied(request, e, actor=who, action="mcp.tools/call", subject=name)
        return _error(f"{type(e).__name__}: {e}")
    # The SDK keeps no public handle on "this request was cancelled by its client"; its responder knows.
    responder = server.request_context.session._in_flight.get(server.request_context.request_id)
    try:
        return await _run(eng, execution_id)
    except anyio.get_cancelled_exc_class():
        # Only notifications/cancelled stops the work: a dropped connection or a server restart does not (the
        # spec says a disconnection is not a cancellation), and the execution stays readable by its id.
        if responder is not None and responder.cancelled:
            with anyio.CancelScope(shield=True):
                try:
                    await flow_tools.kill(eng, execution_id, actor=who)
                except ChorusError:
                    logger.info("cancelled MCP call: execution %s had already ended", execution_id)
        raise


async def _run(eng: Engine, execution_id: str) -> types.CallToolResult:
    context = server.request_context
    token = context.meta.progressToken if context.meta is not None else None
    last = None
    async for step in flow_tools.follow(eng, execution_id):
        first, last = last is None, step
        if token is not None and (step.ended or first):
            # The first notification gives the execution id, so a client that loses the call can still find it.
            ended = ", ".join(f"{task} {state}" for task, state in step.ended)
            message = f"execution {execution_id} {step.state}" + (f": {ended}" if ended else "") if first else ended
            await context.session.send_progress_notification(
                token, step.done, step.total or None, message, related_request_id=str(context.request_id)
            )
    assert last is not None, "follow yields the execution at least once"
    meta = {"chorus.io/executionId": execution_id, "chorus.io/state": str(last.state)}
    if last.state in _SUCCEEDED:
        text = json.dumps(last.outputs, default=str)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], structuredContent=last.outputs, _meta=meta
        )
    if last.state is State.PAUSED:
        text = f"execution {execution_id} is PAUSED: it waits for a person to resume it (chorus_get_execution)"
        # No outputs yet; an empty object still satisfies the tool's output schema, which clients check.
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], structuredContent={}, _meta=meta
        )
    if not last.state.is_terminal:  # the server is shutting down: the execution goes on without this call
        return _error(f"execution {execution_id} is still {last.state}; read it with chorus_get_execution", meta)
    return _error(f"execution {execution_id} ended {last.state}", meta)


def _error(text: str, meta: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], isError=True, _meta=meta)


class _Authenticated:
    """ASGI app: authenticate (401 as JSON, like the REST API), then hand the request to a session manager."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            # Cached on scope["state"], where the handlers' Request finds it; off the loop (a password hash check).
            principal = await run_in_threadpool(authenticate, request)
        except ChorusError as e:
            response = JSONResponse({"message": str(e)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        # The SDK binds a session to the credential that opened it: another caller holding its id gets a 404
        # rather than the session's notifications (progress of someone else's calls).
        who = principal.token_id or principal.actor
        scope["user"] = AuthenticatedUser(AccessToken(token="", client_id=who, scopes=[], subject=principal.actor))
        if scope["method"] == "POST":
            body = await request.body()
            if json_text.nests_deeper_than(body):
                # The SDK's parser raises RecursionError on `[[[[...` thousands deep and answers a 500: a client
                # error is a JSON-RPC parse error, as the A2A endpoint answers it. A scan, so that the SDK's
                # parse is the only one.
                error = {"code": -32700, "message": "Parse error: JSON nested too deeply to read"}
                answer = JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=400)
                await answer(scope, receive, send)
                return
            receive = _replaying(body, receive)  # the body was read here: the SDK reads it again from this
        await self.manager.handle_request(scope, receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands `body` over once, then the connection's own messages (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _security(app: FastAPI) -> TransportSecuritySettings | None:
    """Without credentials (a loopback `chorus local`) a browser page must not reach the server by DNS rebinding."""
    if app.state.engine.settings.auth_required:
        return None  # every request needs a credential a foreign page cannot send
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"]
    origins = ["http://127.0.0.1:*", "http://localhost:*"]
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


def mount(app: FastAPI) -> None:
    """Route `/mcp` and `/mcp/stateless` to the SDK; `running(app)` must wrap the app's lifespan."""
    app.state.mcp_apps = {}
    for path in ("/mcp/stateless", "/mcp"):  # the longer path first: `/mcp` would take it as a sub-path
        # An ASGI app as a route endpoint: Starlette calls it as-is (typed as a request handler only).
        app.add_route(path, _Deferred(app, path), methods=["GET", "POST", "DELETE"], include_in_schema=False)  # type: ignore[arg-type]


class _Deferred:
    """The manager is made in the lifespan (it needs the settings' security and runs once); routes exist before."""

    def __init__(self, app: FastAPI, path: str) -> None:
        self.app, self.path = app, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app.state.mcp_apps[self.path](scope, receive, send)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """Run both session managers for the app's lifetime."""
    security = _security(app)
    managers = {
        "/mcp": StreamableHTTPSessionManager(server, security_settings=security),
        "/mcp/stateless": StreamableHTTPSessionManager(server, stateless=True, security_settings=security),
    }
    async with AsyncExitStack() as stack:
        for path, manager in managers.items():
            await stack.enter_async_context(manager.run())
            app.state.mcp_apps[path] = _Authenticated(manager)
        yield
