"""`POST /executions/{ns}/{flow}?wait=true` answers once the execution pauses: it then waits for a person."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.harness.stack import Stack

PAUSED_FLOW = """
id: approval
namespace: {ns}
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: approved
"""


def test_wait_returns_when_the_execution_pauses(stack: Stack, deploy_flow: Callable[[str], dict[str, Any]]) -> None:
    flow = deploy_flow(PAUSED_FLOW)
    started = time.monotonic()

    response = stack.api.post(f"/executions/{flow['namespace']}/approval", params={"wait": "true"}, timeout=60)

    assert response.status_code == 200, response.text
    assert response.json()["state"]["current"] == "PAUSED"
    assert time.monotonic() - started < stack.settings.wait_timeout_s / 2
