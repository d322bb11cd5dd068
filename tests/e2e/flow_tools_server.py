"""A credentialed Chorus server on the e2e stack's database and broker (its worker runs the executions), with
tokens for an operator (may run), a viewer (may only read) and an operator of another namespace."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import uvicorn

from api.app import create_app
from orchestrator.cli.embedded import free_port
from orchestrator.engine.accounts import Binding
from orchestrator.settings import load_settings
from tests.harness.stack import Stack

GREET = """
id: greet
namespace: {ns}
description: Greets someone, a number of times.
inputs:
  - id: who
    type: STRING
    description: Whom to greet.
  - id: times
    type: INT
    defaults: 1
tasks:
  - id: hello
    type: io.kestra.plugin.core.output.OutputValues
    values:
      greeting: "Hello {{{{ inputs.who }}}} x{{{{ inputs.times }}}}"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "greeted {{{{ inputs.who }}}}"
outputs:
  - id: greeting
    type: STRING
    value: "{{{{ outputs.hello.values.greeting }}}}"
triggers:
  - id: mcp
    type: io.kestra.plugin.core.trigger.McpToolTrigger
    toolName: greet_{tag}
    title: Greeter
    toolDescription: Returns a greeting for the given name.
"""

SLOW = """
id: slow
namespace: {ns}
labels:
  chorus.io/mcp-tool: "true"
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: started
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""

APPROVAL = """
id: approval
namespace: {ns}
labels:
  chorus.io/mcp-tool: "true"
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: approved
outputs:
  - id: verdict
    type: STRING
    value: approved
"""

# Claims the greeter's tool name: it is listed under its own flow key instead of shadowing it.
TWIN = """
id: twin
namespace: {ns}
tasks:
  - id: only
    type: io.kestra.plugin.core.log.Log
    message: twin
triggers:
  - id: mcp
    type: McpToolTrigger
    toolName: greet_{tag}
"""

PLAIN = """
id: plain
namespace: {ns}
tasks:
  - id: only
    type: io.kestra.plugin.core.log.Log
    message: not a tool
"""


@dataclass
class ToolsServer:
    base: str
    namespace: str
    tag: str
    operator: str  #: Bearer token: operator on the namespace
    viewer: str  #: Bearer token: viewer on the namespace (reads, cannot run)
    stranger: str  #: Bearer token: operator elsewhere (cannot even see the namespace)

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tools_server(stack: Stack) -> Iterator[ToolsServer]:
    namespace, tag = f"tests.e2e.tools{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:6]
    for source in (GREET, SLOW, APPROVAL, TWIN, PLAIN):
        stack.deploy(source.format(ns=namespace, tag=tag))
    settings = load_settings(
        database_url=stack.settings.database_url,
        broker_url=stack.settings.broker_url,
        data_dir=stack.settings.data_dir,
        auth_enabled=True,
    )
    # No sweeper: the stack's server already runs one on this database.
    app = create_app(settings, sweeper=False)
    server = uvicorn.Server(uvicorn.Config(app, port=free_port(), log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "the tools server did not start"
        accounts = app.state.accounts
        tokens = {}
        for who, role, prefix in (("operator", "operator", namespace), ("viewer", "viewer", namespace),
                                  ("stranger", "operator", "elsewhere")):  # fmt: skip
            user = f"{who}-{tag}@x"
            accounts.create_user(user, None, [Binding(role, prefix)], actor="test")
            tokens[who] = accounts.create_token(user, "agent", expires_in=timedelta(hours=1), actor="test").secret
        yield ToolsServer(f"http://127.0.0.1:{server.config.port}", namespace, tag, **tokens)
    finally:
        server.should_exit = True
        thread.join(10)
