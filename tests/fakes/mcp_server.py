"""A tiny MCP server for the agent tests, on the `mcp` SDK's server side (FastMCP).

Run as a script: over stdio by default (an agent's StdioMcpClient starts it), or with
`--http PORT` as a streamable HTTP endpoint at http://127.0.0.1:PORT/mcp.
"""

from __future__ import annotations

import argparse
import os

from mcp.server.fastmcp import FastMCP

server = FastMCP("chorus-test-tools")

_ORDERS = {"A-17": {"status": "shipped", "carrier": "Colissimo"}, "B-42": {"status": "delayed", "carrier": "DHL"}}


@server.tool()
def order_status(order_id: str) -> str:
    """Tell the delivery status of an order by its id."""
    order = _ORDERS.get(order_id)
    if order is None:
        raise ValueError(f"no order {order_id}")
    return f"order {order_id} is {order['status']} ({order['carrier']})"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def main() -> None:
    # Each start is one session over stdio: tests count them in this file (one line per process).
    sessions_log = os.environ.get("CHORUS_TEST_MCP_SESSIONS_LOG")
    if sessions_log:
        with open(sessions_log, "a") as log:
            log.write(f"{os.getpid()}\n")
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None, help="serve streamable HTTP on this port")
    args = parser.parse_args()
    if args.http is None:
        server.run()
    else:
        server.settings.host, server.settings.port = "127.0.0.1", args.http
        server.settings.log_level = "WARNING"
        server.run(transport="streamable-http")


if __name__ == "__main__":
    main()
