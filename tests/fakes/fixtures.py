"""Session-scoped fake servers, shared by every test (each test scripts and reads its own traffic)."""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.cli.embedded import free_port
from tests.fakes import jira as jira_fake
from tests.fakes.jira import JiraServer
from tests.fakes.openai_wire import OpenAIWire
from tests.fakes.webhook import WebhookReceiver
from tests.harness.cluster import start_process, stop
from workers.sandbox import python_for, script_user


@pytest.fixture(scope="session")
def openai_wire() -> Iterator[OpenAIWire]:
    with OpenAIWire() as server:
        yield server


@pytest.fixture(scope="session")
def jira_server() -> Iterator[JiraServer]:
    with JiraServer() as server:
        yield server


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


MCP_SERVER_SCRIPT = Path(__file__).resolve().parent / "mcp_server.py"
MCP_STDIO_SERVER_SCRIPT = Path(__file__).resolve().parent / "mcp_stdio_server.py"


@pytest.fixture(scope="session")
def mcp_stdio_command() -> Iterator[list[str]]:
    """The command line an agent's StdioMcpClient starts: our tiny MCP server over stdio.

    A root worker starts it as the scripts user, who may reach neither this interpreter (a virtualenv under
    /root) nor this checkout (cloned into a private 0700 directory, as CI does): the server needs only the
    standard library, so it runs from a copy anyone can read, on the interpreter scripts get."""
    staged = Path(tempfile.mkdtemp(prefix="chorus-mcp-stdio-"))
    staged.chmod(0o755)
    script = staged / MCP_STDIO_SERVER_SCRIPT.name
    shutil.copyfile(MCP_STDIO_SERVER_SCRIPT, script)
    script.chmod(0o644)
    yield [python_for(script_user(None)), str(script)]
    shutil.rmtree(staged, ignore_errors=True)


@pytest.fixture(scope="session")
def mcp_http_url() -> Iterator[str]:
    """Our tiny MCP server as a streamable HTTP endpoint, in a process of its own."""
    port = free_port()
    process = start_process(
        [sys.executable, str(MCP_SERVER_SCRIPT), "--http", str(port)], os.environ, log=Path(os.devnull)
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(process)


def secret_env(openai: OpenAIWire, jira: JiraServer) -> dict[str, str]:
    """`SECRET_*` variables (base64, Kestra's convention) that point flows' secrets at the fake servers."""
    values = {
        "OPENAI_API_KEY": openai.api_key,
        "OPENAI_BASE_URL": openai.base_url,
        "JIRA_URL": jira.url,
        "JIRA_USERNAME": jira_fake.USERNAME,
        "JIRA_API_TOKEN": jira_fake.API_TOKEN,
    }
    return {f"SECRET_{name}": base64.b64encode(value.encode()).decode() for name, value in values.items()}
