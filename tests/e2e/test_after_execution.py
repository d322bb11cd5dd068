"""`afterExecution` runs once the execution's state is decided, sees that state, and never changes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Stack

FLOW = """
id: after
namespace: {ns}
inputs:
  - id: fail
    type: BOOLEAN
tasks:
  - id: main
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ inputs.fail }}"
finally:
  - id: cleanup
    type: io.kestra.plugin.core.log.Log
    message: "finally sees {{ execution.state }}"
afterExecution:
  - id: on-failure
    runIf: "{{ execution.state == 'FAILED' }}"
    type: io.kestra.plugin.core.log.Log
    message: "after sees {{ execution.state }}"
  - id: on-success
    runIf: "{{ execution.state == 'SUCCESS' }}"
    type: io.kestra.plugin.core.log.Log
    message: "after sees {{ execution.state }}"
  - id: broken-notifier
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: the notification service is down
"""


@pytest.mark.parametrize(
    ("fail", "final", "ran"), [("false", "SUCCESS", "on-success"), ("true", "FAILED", "on-failure")]
)
def test_after_execution_sees_the_final_state_and_its_failure_changes_nothing(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, fail: str, final: str, ran: str
) -> None:
    deploy_flow(FLOW)

    execution = stack.wait_for_state(stack.run(unique_namespace, "after", fail=fail)["id"])

    assert execution["state"]["current"] == final
    states = {r["taskId"]: r["state"]["current"] for r in execution["taskRunList"]}
    assert [r["taskId"] for r in execution["taskRunList"]][-3:] == ["on-failure", "on-success", "broken-notifier"]
    assert states[ran] == "SUCCESS" and states["broken-notifier"] == "FAILED"
    assert {states["on-failure"], states["on-success"]} == {"SUCCESS", "SKIPPED"}
    messages = [line["message"] for line in stack.api.get(f"/logs/{execution['id']}").json()]
    assert "finally sees RUNNING" in messages and f"after sees {final}" in messages
