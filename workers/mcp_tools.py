"""MCP servers as agent tools, through the `mcp` SDK: a subprocess over stdio, or a streamable HTTP endpoint.

An agent attempt holds one session per server for its whole run (`McpSessions`, on an event loop of its
own thread, since the agent's loop is synchronous): listing the tools and every call share it, so a
stdio server is started once and a stateful server keeps its state. The sessions close when the attempt
ends or pauses (an approval may take hours). A call made outside an agent's run (a tool task run
re-sent to another worker) opens its own session.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import TaskFailed
from orchestrator.engine.agent_journal import AgentJournal
from orchestrator.settings import Settings
from workers.context import Handler, TaskContext
from workers.sandbox import ScriptLimits, launcher, script_user

_T = TypeVar("_T")
_DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class McpServer:
    """Where an MCP tool entry's server is, from its rendered properties."""

    kind: str  #: "mcp-stdio" or "mcp-http"
    command: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict, repr=False)
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = _DEFAULT_TIMEOUT_S
    #: The argv prefix a stdio server starts under (`workers.sandbox.launcher`): the scripts user and limits.
    launch: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def of(cls, kind: str, entry: Mapping[str, Any], settings: Settings | None = None) -> McpServer:
        timeout = entry.get("timeout")
        timeout_s = parse_duration(str(timeout)).total_seconds() if timeout else _DEFAULT_TIMEOUT_S
        if kind == "mcp-stdio":
            command = entry.get("command")
            if not isinstance(command, list) or not command:
                raise TaskFailed("an StdioMcpClient tool needs `command`, a list of texts", retryable=False)
            env = {str(k): str(v) for k, v in (entry.get("env") or {}).items()}
            # The command is the flow author's code, like a script's: it runs as a script would (never as a root
            # worker, which could read every namespace's files, the audit key and the database credentials).
            launch = tuple(launcher(script_user(settings.scripts_user), _limits(settings))) if settings else ()
            return cls(kind, tuple(str(c) for c in command), env, timeout_s=timeout_s, launch=launch)
        headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
        return cls(kind, url=str(entry.get("url") or ""), headers=headers, timeout_s=timeout_s)

    @property
    def label(self) -> str:
        """What the audit trail names the server by (never its headers or environment)."""
        return f"stdio:{' '.join(self.command)}" if self.kind == "mcp-stdio" else self.url


def _limits(settings: Settings) -> ScriptLimits:
    return ScriptLimits(
        settings.script_max_memory_bytes, settings.script_max_file_bytes, settings.script_max_processes,
        settings.script_max_cpu_s,
    )  # fmt: skip


@dataclass(frozen=True)
class McpTool:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class McpResult:
    text: str
    is_error: bool


@asynccontextmanager
async def _session(server: McpServer) -> AsyncIterator[ClientSession]:
    if server.kind == "mcp-stdio":
        argv = [*server.launch, *server.command]
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=server.env or None)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session
    else:
        async with (
            httpx.AsyncClient(headers=server.headers, timeout=server.timeout_s) as http,
            streamable_http_client(server.url, http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


_Request = tuple[Callable[[ClientSession], Awaitable[Any]], "asyncio.Future[Any]"]


class McpSessions:
    """One session per MCP server for the length of an agent attempt, on a private event loop thread.

    Each session is entered and left by one task of its own (the SDK's task groups must be exited by
    the task that entered them); steps reach it through a queue.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-sessions", daemon=True)
        self._thread.start()
        self._owners: dict[str, tuple[asyncio.Queue[_Request | None], asyncio.Future[None], asyncio.Task[None]]] = {}
        self.started = 0  #: sessions opened so far (one per server, unless one broke)

    @staticmethod
    def _key(server: McpServer) -> str:
        return json.dumps([server.kind, server.command, server.env, server.url, server.headers], sort_keys=True)

    @staticmethod
    async def _own(server: McpServer, queue: asyncio.Queue[_Request | None], ready: asyncio.Future[None]) -> None:
        try:
            async with _session(server) as session:
                ready.set_result(None)
                while (request := await queue.get()) is not None:
                    step, done = request
                    try:
                        done.set_result(await step(session))
                    except Exception as error:
                        done.set_exception(error)
        except Exception as error:
            if not ready.done():
                ready.set_exception(error)

    async def _owner(self, server: McpServer) -> asyncio.Queue[_Request | None]:
        key = self._key(server)
        owner = self._owners.get(key)
        if owner is None or owner[2].done():  # none yet, or its session broke: a new one
            queue: asyncio.Queue[_Request | None] = asyncio.Queue()
            ready: asyncio.Future[None] = self._loop.create_future()
            owner = (queue, ready, asyncio.create_task(self._own(server, queue, ready)))
            self._owners[key] = owner
            self.started += 1
        await owner[1]
        return owner[0]

    def run(self, server: McpServer, step: Callable[[ClientSession], Awaitable[_T]]) -> _T:
        async def main() -> _T:
            queue = await asyncio.wait_for(self._owner(server), server.timeout_s)
            done: asyncio.Future[_T] = self._loop.create_future()
            await queue.put((step, done))
            return await asyncio.wait_for(done, server.timeout_s)

        return asyncio.run_coroutine_threadsafe(main(), self._loop).result(timeout=server.timeout_s * 2 + 1)

    def close(self) -> None:
        """Close every session (a stdio server's process ends), then the loop."""

        async def close_all() -> None:
            for queue, _, task in self._owners.values():
                await queue.put(None)
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, _DEFAULT_TIMEOUT_S)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(timeout=_DEFAULT_TIMEOUT_S * 2)
        except Exception:  # a session that would not close: its stdio process goes with this worker's cleanup
            pass
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=_DEFAULT_TIMEOUT_S)
            if not self._loop.is_running():
                self._loop.close()


#: The sessions of the agent attempt running in this thread, if any (set by the agent around its run).
ACTIVE_SESSIONS: contextvars.ContextVar[McpSessions | None] = contextvars.ContextVar("mcp_sessions", default=None)


def _run(server: McpServer, what: str, step: Callable[[ClientSession], Awaitable[_T]]) -> _T:
    async def main() -> _T:
        async with _session(server) as session:
            return await asyncio.wait_for(step(session), server.timeout_s)

    sessions = ACTIVE_SESSIONS.get()
    try:
        return sessions.run(server, step) if sessions is not None else asyncio.run(main())
    except TaskFailed:
        raise
    except BaseException as error:  # the SDK wraps transport failures in exception groups
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        raise TaskFailed(f"MCP server {server.label}: {what} failed: {_reason(error)}", retryable=True) from error


def _reason(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def list_tools(server: McpServer) -> list[McpTool]:
    """The tools the server offers, as it describes them."""

    async def step(session: ClientSession) -> list[McpTool]:
        listed = await session.list_tools()
        return [McpTool(t.name, t.description or "", dict(t.inputSchema or {"type": "object"})) for t in listed.tools]

    return _run(server, "listing tools", step)


def call_tool(server: McpServer, name: str, arguments: dict[str, Any]) -> McpResult:
    """Call one tool; its text (or structured) content, and whether the server reported an error."""

    async def step(session: ClientSession) -> McpResult:
        result = await session.call_tool(name, arguments, read_timeout_seconds=timedelta(seconds=server.timeout_s))
        texts = [getattr(block, "text", None) for block in result.content]
        text = "\n".join(t for t in texts if t)
        if not text and result.structuredContent is not None:
            text = json.dumps(result.structuredContent)
        return McpResult(text, bool(result.isError))

    return _run(server, f"calling {name}", step)


def run_mcp_tool_call(ctx: TaskContext) -> dict[str, Any]:
    """McpToolCall: one call an AIAgent's model asked of an MCP server's tool, as the agent's child task run."""
    call = ctx.claimed.variables.get("toolCall")
    if not isinstance(call, dict) or not call.get("name"):
        raise TaskFailed("McpToolCall runs only as the tool call of an AIAgent", retryable=False)
    props = ctx.render(ctx.properties)
    server = McpServer.of("mcp-stdio" if props.get("transport") == "stdio" else "mcp-http", props, ctx.engine.settings)
    name, arguments = str(call["name"]), dict(ctx.claimed.variables.get("arguments") or {})
    result = call_tool(server, name, arguments)
    at = ctx.claimed.coordinates
    AgentJournal(ctx.engine.sessions).audit(
        at.execution_id,
        actor=f"worker:{ctx.claimed.owner}",
        action="agent.mcp_call",
        subject=at.task_run_id,
        payload={"server": server.label, "tool": name, "arguments": arguments, "error": result.is_error},
    )
    ctx.log("ERROR" if result.is_error else "INFO", f"MCP tool {name} on {server.label}: {result.text[:200]}")
    return {"server": server.label, "tool": name, "text": result.text, "isError": result.is_error}


HANDLERS: dict[str, Handler] = {"McpToolCall": run_mcp_tool_call}
