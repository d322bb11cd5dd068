"""Triggers on the real stack: a `chorus scheduler` process fires a per-second Schedule, a Flow trigger chains flows."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.cli.embedded import free_port
from tests.e2e.conftest import Stack
from tests.harness.cluster import start_chorus, stop

EVERY_SECOND = """
id: ticking
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.date }}"
outputs:
  - id: date
    type: STRING
    value: "{{ trigger.date }}"
triggers:
  - id: every-second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
"""

UPSTREAM = """
id: upstream
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: "42"
outputs:
  - id: answer
    type: STRING
    value: "{{ outputs.hello.value }}"
"""

DOWNSTREAM = """
id: downstream
namespace: {ns}
inputs:
  - id: answer
    type: STRING
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.answer }}"
outputs:
  - id: got
    type: STRING
    value: "{{ inputs.answer }} from {{ trigger.flowId }}"
triggers:
  - id: after-upstream
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      answer: "{{ trigger.outputs.answer }}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: {ns}
        flowId: upstream
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""


@pytest.fixture(scope="module")
def scheduler(stack: Stack) -> Iterator[subprocess.Popen[bytes]]:
    env = {**stack.env, "CHORUS_SCHEDULER_INTERVAL_S": "0.2", "CHORUS_METRICS_PORT": str(free_port())}
    process = start_chorus("scheduler", env)
    yield process
    stop(process)


def executions_of(stack: Stack, namespace: str, flow_id: str, *, timeout_s: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = stack.api.get("/executions/search", params={"namespace": namespace, "flowId": flow_id})
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        if results:
            return results
        time.sleep(0.1)
    raise AssertionError(f"no execution of {namespace}.{flow_id} within {timeout_s}s")


def test_a_per_second_schedule_fires_real_executions(
    stack: Stack,
    scheduler: subprocess.Popen[bytes],
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
) -> None:
    deploy_flow(EVERY_SECOND)
    try:
        first = executions_of(stack, unique_namespace, "ticking")[0]
        execution = stack.wait_for_state(first["id"], {"SUCCESS"})
    finally:
        stack.api.delete(f"/flows/{unique_namespace}/ticking")  # stops the schedule
    assert execution["trigger"]["id"] == "every-second"
    assert execution["outputs"]["date"] == execution["trigger"]["variables"]["date"]
    assert scheduler.poll() is None


def test_a_flow_trigger_chains_two_flows(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(UPSTREAM)
    deploy_flow(DOWNSTREAM)
    upstream = stack.run(unique_namespace, "upstream")
    stack.wait_for_state(upstream["id"], {"SUCCESS"})
    [downstream] = executions_of(stack, unique_namespace, "downstream")
    done = stack.wait_for_state(downstream["id"], {"SUCCESS"})
    assert done["outputs"] == {"got": "42 from upstream"}
    assert done["trigger"]["variables"]["executionId"] == upstream["id"]


TOGGLE = """
id: trigger-toggle
namespace: {ns}

tasks:
    - id: disable
      type: io.kestra.core.tasks.trigger.Toggle
      trigger: schedule
      enabled: true

triggers:
  - id: schedule
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * *"
"""


def test_the_toggle_task_re_enables_a_disabled_schedule(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    """Kestra's trigger-toggle case (ToggleTest): store the trigger disabled, run the flow, it is enabled again."""
    deploy_flow(TOGGLE)
    ref = {"namespace": unique_namespace, "flowId": "trigger-toggle", "triggerId": "schedule"}
    try:
        response = stack.api.put("/triggers", json={**ref, "disabled": True})
        assert response.status_code == 200, response.text
        execution = stack.run(unique_namespace, "trigger-toggle")
        done = stack.wait_for_state(execution["id"])
        assert done["state"]["current"] == "SUCCESS" and len(done["taskRunList"]) == 1
        [trigger] = stack.api.get(f"/triggers/{unique_namespace}/trigger-toggle").json()["results"]
        assert trigger["triggerContext"]["disabled"] is False
    finally:
        stack.api.delete(f"/flows/{unique_namespace}/trigger-toggle")
