"""The MCP server, driven by the official `mcp` SDK client over Streamable HTTP against a running server."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from tests.e2e.flow_tools_server import ToolsServer, tools_server
from tests.harness.stack import Stack

__all__ = ["tools_server"]  # the fixture, used by name

Body = Callable[[ClientSession], Awaitable[Any]]


def _session(server: ToolsServer, token: str, body: Body, *, path: str = "/mcp") -> Any:
    async def main() -> Any:
        headers = server.headers(token)
        async with (
            httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=120)) as http,
            streamable_http_client(f"{server.base}{path}", http_client=http) as (read, write, _),
            ClientSession(read, write, client_info=types.Implementation(name="pytest-agent", version="1")) as session,
        ):
            await session.initialize()
            return await body(session)

    return anyio.run(main)


def _names(result: types.ListToolsResult) -> set[str]:
    return {tool.name for tool in result.tools}


def test_tools_are_the_flows_the_token_may_run_with_schemas_from_their_inputs(tools_server: ToolsServer) -> None:
    listed: types.ListToolsResult = _session(tools_server, tools_server.operator, lambda s: s.list_tools())

    greet = next(t for t in listed.tools if t.name == f"greet_{tools_server.tag}")
    assert greet.description == "Returns a greeting for the given name."
    assert greet.title == "Greeter"
    assert greet.inputSchema["required"] == ["who"]
    assert greet.inputSchema["properties"]["times"] == {"type": "integer", "default": 1}
    assert greet.outputSchema == {"type": "object", "properties": {"greeting": {"type": ["string", "null"]}}}
    assert f"{tools_server.namespace}.slow" in _names(listed)  # marked by its label
    assert f"{tools_server.namespace}.twin" in _names(listed)  # its toolName was taken by `greet`
    assert f"{tools_server.namespace}.plain" not in _names(listed)  # not marked: not a tool
    assert {"chorus_get_execution", "chorus_list_executions", "chorus_get_logs"} <= _names(listed)


def test_a_token_that_may_not_run_the_flows_is_shown_no_flow_tools(tools_server: ToolsServer) -> None:
    for token in (tools_server.viewer, tools_server.stranger):
        listed = _session(tools_server, token, lambda s: s.list_tools())
        assert not any(name.startswith(("greet_", tools_server.namespace)) for name in _names(listed))


def test_a_call_runs_the_flow_with_its_inputs_and_returns_its_outputs_with_progress(
    tools_server: ToolsServer, stack: Stack
) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def call(session: ClientSession) -> types.CallToolResult:
        arguments = {"who": "Ada", "times": 3}
        return await session.call_tool(f"greet_{tools_server.tag}", arguments, progress_callback=on_progress)

    result: types.CallToolResult = _session(tools_server, tools_server.operator, call)

    assert not result.isError, result.content
    assert result.structuredContent == {"greeting": "Hello Ada x3"}
    assert result.meta is not None and result.meta["chorus.io/state"] == "SUCCESS"
    execution = stack.api.get(f"/executions/{result.meta['chorus.io/executionId']}").json()
    assert {"key": "system.from", "value": "mcp"} in execution["labels"]
    assert seen and seen[-1][0] == 2 and any("after SUCCESS" in (m or "") for _, _, m in seen), seen
    audit = stack.api.get(f"/executions/{execution['id']}/audit").json()
    actors = {event["actor"] for event in audit["events"]}
    assert f"mcp:operator-{tools_server.tag}@x/agent/pytest-agent" in actors, actors


def test_bad_inputs_are_an_error_result_naming_the_input(tools_server: ToolsServer) -> None:
    async def call(session: ClientSession) -> types.CallToolResult:
        return await session.call_tool(f"greet_{tools_server.tag}", {"who": "Ada", "times": "many"})

    result: types.CallToolResult = _session(tools_server, tools_server.operator, call)

    assert result.isError
    assert isinstance(result.content[0], types.TextContent) and "`times`" in result.content[0].text


def test_a_token_without_the_run_permission_is_denied_and_nothing_runs(tools_server: ToolsServer, stack: Stack) -> None:
    before = stack.api.get("/executions/search", params={"namespace": tools_server.namespace}).json()["total"]

    async def call(session: ClientSession) -> types.CallToolResult:
        return await session.call_tool(f"greet_{tools_server.tag}", {"who": "Eve"})

    denied: types.CallToolResult = _session(tools_server, tools_server.viewer, call)
    hidden: types.CallToolResult = _session(tools_server, tools_server.stranger, call)

    assert denied.isError and "execution.run" in denied.content[0].text  # type: ignore[union-attr]
    audit = stack.api.get("/audit", params={"action": "mcp.tools/call", "namespace": tools_server.namespace}).json()
    denials = {(e["actor"], e["payload"].get("outcome")) for e in audit["results"]}
    assert (f"mcp:viewer-{tools_server.tag}@x/agent/pytest-agent", "denied") in denials, denials
    assert hidden.isError and "not found" in hidden.content[0].text  # type: ignore[union-attr]
    assert stack.api.get("/executions/search", params={"namespace": tools_server.namespace}).json()["total"] == before


def test_a_request_without_a_valid_token_is_refused_before_mcp(tools_server: ToolsServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = httpx.post(f"{tools_server.base}/mcp", json=body, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_cancelling_a_call_kills_its_execution(tools_server: ToolsServer, stack: Stack) -> None:
    flow = f"{tools_server.namespace}.slow"
    answers: list[str] = []

    async def call(session: ClientSession) -> None:
        try:
            await session.call_tool(flow, {})
        except McpError as e:  # the server answers the cancelled request with an error
            answers.append(e.error.message)

    async def call_then_cancel(session: ClientSession) -> str:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(call, session)
                execution_id = await anyio.to_thread.run_sync(_running_execution, stack, tools_server.namespace)
                # The SDK's request ids count from 0 and initialize took the first: this call is 1.
                params = types.CancelledNotificationParams(requestId=1, reason="the user changed their mind")
                await session.send_notification(types.ClientNotification(types.CancelledNotification(params=params)))
        return execution_id

    execution_id = _session(tools_server, tools_server.operator, call_then_cancel)

    assert answers == ["Request cancelled"]
    final = stack.wait_for_state(execution_id, timeout_s=20)
    assert final["state"]["current"] == "KILLED"


def _running_execution(stack: Stack, namespace: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = stack.api.get(
            "/executions/search", params={"namespace": namespace, "flowId": "slow", "state": "RUNNING"}
        ).json()
        if found["results"]:
            return str(found["results"][0]["id"])
        time.sleep(0.1)
    raise AssertionError("the slow flow's execution never started")


def test_read_only_tools_follow_the_read_permissions(tools_server: ToolsServer, stack: Stack) -> None:
    execution_id = stack.run(tools_server.namespace, "plain")["id"]
    stack.wait_for_state(execution_id)

    async def read(session: ClientSession) -> tuple[types.CallToolResult, ...]:
        arguments = {"executionId": execution_id}
        return (
            await session.call_tool("chorus_get_execution", arguments),
            await session.call_tool("chorus_get_logs", arguments),
            await session.call_tool("chorus_list_executions", {"namespace": tools_server.namespace, "flowId": "plain"}),
        )

    got, logs, listed = _session(tools_server, tools_server.viewer, read, path="/mcp/stateless")
    hidden = _session(
        tools_server,
        tools_server.stranger,
        lambda s: s.call_tool("chorus_get_execution", {"executionId": execution_id}),
    )

    assert got.structuredContent["state"]["current"] == "SUCCESS"
    assert any(line["message"] == "not a tool" for line in logs.structuredContent["results"])
    assert execution_id in {e["id"] for e in listed.structuredContent["results"]}
    assert hidden.isError and "not found" in hidden.content[0].text


def test_an_unknown_tool_is_an_error_result(tools_server: ToolsServer) -> None:
    result = _session(tools_server, tools_server.operator, lambda s: s.call_tool("no_such_tool", {}))
    assert result.isError


def test_mcp_errors_from_the_sdk_are_not_raised_for_tool_failures(tools_server: ToolsServer) -> None:
    # A tool failure is a result (isError), not a protocol error: an agent reads it and can retry.
    try:
        _session(tools_server, tools_server.operator, lambda s: s.call_tool("chorus_get_execution", {}))
    except McpError as e:  # pragma: no cover - the failure this test guards against
        raise AssertionError(f"protocol error instead of an error result: {e}") from e


def test_json_nested_thousands_deep_is_a_parse_error_not_a_500(tools_server: ToolsServer) -> None:
    headers = {
        **tools_server.headers(tools_server.operator),
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    deep = "[" * 100_000 + "]" * 100_000
    for path in ("/mcp", "/mcp/stateless"):
        response = httpx.post(f"{tools_server.base}{path}", content=deep, headers=headers, timeout=30)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == -32700
    # A sound request on the same endpoint still reaches the SDK, which parses the body (the check only scans it).
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    with httpx.stream("POST", f"{tools_server.base}/mcp", json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        data = next(line for line in response.iter_lines() if line.startswith("data: "))
    assert json.loads(data.removeprefix("data: "))["result"]["protocolVersion"] == "2025-11-25"


def test_a_client_of_an_earlier_revision_gets_a_session_in_its_own_revision(tools_server: ToolsServer) -> None:
    headers = {**tools_server.headers(tools_server.operator), "Accept": "application/json, text/event-stream"}
    params = {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "old", "version": "0"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    with httpx.stream("POST", f"{tools_server.base}/mcp", json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        session_id = response.headers["mcp-session-id"]
        data = next(line for line in response.iter_lines() if line.startswith("data: "))
    assert session_id
    assert json.loads(data.removeprefix("data: "))["result"]["protocolVersion"] == "2025-03-26"


def test_without_credentials_on_loopback_a_rebound_host_is_refused(stack: Stack) -> None:
    # The stack's server has no credentials (the `chorus local` default): every request is an anonymous admin,
    # so a page that rebinds its own name to 127.0.0.1 must not reach the tools.
    base = str(stack.api.base_url).removesuffix("/api/v1/main/").removesuffix("/api/v1/main")
    headers = {"Accept": "application/json, text/event-stream"}
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "page", "version": "0"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}

    local = httpx.post(f"{base}/mcp/stateless", json=body, headers=headers, timeout=30)
    rebound = httpx.post(f"{base}/mcp/stateless", json=body, headers={**headers, "Host": "evil.example"}, timeout=30)

    assert local.status_code == 200
    assert rebound.status_code == 421


def test_a_dropped_connection_is_not_a_cancellation_and_the_execution_goes_on(
    tools_server: ToolsServer, stack: Stack
) -> None:
    seen: list[str | None] = []
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)
        started.set()

    async def call_then_drop(session: ClientSession) -> str:
        async with anyio.create_task_group() as group:
            group.start_soon(
                lambda: session.call_tool(f"{tools_server.namespace}.slow", {}, progress_callback=on_progress)
            )
            with anyio.fail_after(10):
                await started.wait()
            group.cancel_scope.cancel()  # closes the request's stream without notifications/cancelled
        # The first progress names the execution, so a client that loses the call can still find it.
        return (seen[0] or "").split()[1]

    execution_id = _session(tools_server, tools_server.operator, call_then_drop, path="/mcp/stateless")

    time.sleep(1)
    assert stack.api.get(f"/executions/{execution_id}").json()["state"]["current"] == "RUNNING"
    assert stack.api.delete(f"/executions/{execution_id}/kill").status_code in (200, 202, 204)


def test_a_call_whose_execution_pauses_returns_at_the_pause_without_outputs(
    tools_server: ToolsServer, stack: Stack
) -> None:
    tool = f"{tools_server.namespace}.approval"
    result: types.CallToolResult = _session(tools_server, tools_server.operator, lambda s: s.call_tool(tool, {}))

    assert not result.isError and result.structuredContent == {}
    assert result.meta is not None and result.meta["chorus.io/state"] == "PAUSED"
    assert "PAUSED" in result.content[0].text  # type: ignore[union-attr]
    assert stack.api.delete(f"/executions/{result.meta['chorus.io/executionId']}/kill").status_code < 300


def test_a_session_answers_only_the_credential_that_opened_it(tools_server: ToolsServer) -> None:
    accept = {"Accept": "application/json, text/event-stream"}
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "a", "version": "0"}}
    opening = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    owner = {**tools_server.headers(tools_server.operator), **accept}
    response = httpx.post(f"{tools_server.base}/mcp", json=opening, headers=owner, timeout=30)
    session = {"mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

    other = {**tools_server.headers(tools_server.viewer), **accept, **session}
    stolen = httpx.post(f"{tools_server.base}/mcp", json=listing, headers=other, timeout=30)

    assert stolen.status_code == 404
