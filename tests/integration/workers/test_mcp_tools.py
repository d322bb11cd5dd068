"""The MCP client of AIAgent tools against our tiny MCP server, over stdio and streamable HTTP."""

from __future__ import annotations

import re
import sys

import pytest

from orchestrator.core.errors import TaskFailed
from tests.fakes.fixtures import MCP_SERVER_SCRIPT
from workers.mcp_tools import McpServer, call_tool, list_tools

STDIO = McpServer("mcp-stdio", (sys.executable, str(MCP_SERVER_SCRIPT)))


def test_the_tools_of_a_stdio_server_are_listed_with_their_schemas() -> None:
    tools = {tool.name: tool for tool in list_tools(STDIO)}

    assert sorted(tools) == ["add", "order_status"]
    assert tools["add"].input_schema["required"] == ["a", "b"]
    assert tools["order_status"].description == "Tell the delivery status of an order by its id."


def test_a_tool_error_is_a_result_the_model_can_read_not_a_failure() -> None:
    result = call_tool(STDIO, "order_status", {"order_id": "nope"})

    assert result.is_error and "no order nope" in result.text


def test_a_streamable_http_server_answers_a_call(mcp_http_url: str) -> None:
    result = call_tool(McpServer("mcp-http", url=mcp_http_url), "add", {"a": 2, "b": 40})

    assert (result.text, result.is_error) == ("42", False)


def test_an_unreachable_server_fails_the_step_naming_the_server() -> None:
    server = McpServer("mcp-http", url="http://127.0.0.1:9/mcp", timeout_s=5)

    with pytest.raises(
        TaskFailed, match=re.escape("MCP server http://127.0.0.1:9/mcp: listing tools failed")
    ) as failed:
        list_tools(server)

    assert failed.value.retryable
