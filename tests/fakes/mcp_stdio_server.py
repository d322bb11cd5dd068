"""A tiny MCP server over stdio for the agent tests, on the standard library only.

An agent's StdioMcpClient starts it; a root worker starts it as the scripts user, who can reach neither the
test's virtualenv nor a checkout in a private (0700) directory, so it must run on the system interpreter from a
copy anyone can read (`tests/fakes/fixtures.mcp_stdio_command`). It speaks MCP's stdio transport itself:
newline-delimited JSON-RPC 2.0 (`initialize`, `notifications/initialized`, `ping`, `tools/list`, `tools/call`),
with the tools of `mcp_server.py` (the SDK's server, which the streamable HTTP tests use).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SUPPORTED_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")

_ORDERS = {"A-17": {"status": "shipped", "carrier": "Colissimo"}, "B-42": {"status": "delayed", "carrier": "DHL"}}

TOOLS = [
    {
        "name": "order_status",
        "description": "Tell the delivery status of an order by its id.",
        "inputSchema": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "title": "Order Id"}},
            "required": ["order_id"],
        },
    },
    {
        "name": "add",
        "description": "Add two integers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "integer", "title": "A"}, "b": {"type": "integer", "title": "B"}},
            "required": ["a", "b"],
        },
    },
]


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    if name == "order_status":
        order_id = str(arguments.get("order_id"))
        order = _ORDERS.get(order_id)
        if order is None:
            return _text(f"Error executing tool order_status: no order {order_id}", error=True)
        return _text(f"order {order_id} is {order['status']} ({order['carrier']})")
    if name == "add":
        return _text(str(int(arguments["a"]) + int(arguments["b"])))
    return _text(f"Unknown tool: {name}", error=True)


def _text(text: str, *, error: bool = False) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": error}


def _answer(request: dict[str, Any]) -> dict[str, Any] | None:
    method, params = request.get("method"), request.get("params") or {}
    if "id" not in request:
        return None  # a notification (notifications/initialized, cancelled, ...): no answer
    if method == "initialize":
        asked = params.get("protocolVersion")
        result: dict[str, Any] = {
            "protocolVersion": asked if asked in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[0],
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "chorus-test-tools", "version": "1.0"},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        result = _call(str(params.get("name")), params.get("arguments") or {})
    else:
        error = {"code": -32601, "message": f"Method not found: {method}"}
        return {"jsonrpc": "2.0", "id": request["id"], "error": error}
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


def main() -> None:
    # Each start is one session over stdio: tests count them in this file (one line per process).
    sessions_log = os.environ.get("CHORUS_TEST_MCP_SESSIONS_LOG")
    if sessions_log:
        with open(sessions_log, "a") as log:
            log.write(f"{os.getpid()}\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError:
            answer: dict[str, Any] | None = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32700, "message": "Parse error"},
            }
        else:
            answer = _answer(request)
        if answer is not None:
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
