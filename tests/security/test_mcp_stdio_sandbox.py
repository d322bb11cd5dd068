"""An AIAgent's StdioMcpClient `command` is the flow author's code, started by the ai worker: it runs as a script
would (the scripts user when the worker is root, with the scripts' limits), not as the worker. Before, a root
worker ran it as root: it could read every namespace's files, the audit key and the database credentials."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.core.errors import TaskFailed
from orchestrator.settings import load_settings
from workers.mcp_tools import McpServer, list_tools
from workers.sandbox import script_user

pytestmark = pytest.mark.security


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the scripts user can write its answer to (pytest's tmp_path is under a 0700 root folder)."""
    path = Path(tempfile.mkdtemp(prefix="chorus-mcp-probe-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _probe(directory: Path, command: str) -> str:
    out = directory / "out.txt"
    settings = load_settings(script_max_file_bytes=1 << 20)
    server = McpServer.of(
        "mcp-stdio", {"command": ["/bin/sh", "-c", f"{{ {command}; }} > {out}"], "timeout": "PT5S"}, settings
    )
    with pytest.raises(TaskFailed):  # not an MCP server: the session fails, after the command ran
        list_tools(server)
    return out.read_text().strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="the switch of user needs a root worker; limits are checked below")
def test_a_stdio_server_runs_as_the_scripts_user_under_a_root_worker(shared_dir: Path) -> None:
    user = script_user(None)
    assert user is not None

    assert _probe(shared_dir, "id -u; id -G") == f"{user.uid}\n{user.gid}"


def test_a_stdio_server_gets_the_scripts_limits(shared_dir: Path) -> None:
    assert _probe(shared_dir, "ulimit -f") == str((1 << 20) // 512)  # POSIX sh counts blocks of 512 bytes


def test_a_stdio_server_still_works_through_the_launcher(mcp_stdio_command: list[str]) -> None:
    server = McpServer.of("mcp-stdio", {"command": mcp_stdio_command}, load_settings())

    assert sorted(tool.name for tool in list_tools(server)) == ["add", "order_status"]
