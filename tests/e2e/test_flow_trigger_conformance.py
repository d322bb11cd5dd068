"""Kestra's flow-trigger conformance flows (io.kestra.tests.trigger, FlowTriggerCaseTest) on the real stack.

The flows are those of ../shared/conformance/kestra/flows/io.kestra.tests.trigger, moved into this
test's own namespace so other tests' executions cannot set their listeners off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

NS = "io.kestra.tests.trigger"

TRIGGER_FLOW = """
id: trigger-flow
namespace: io.kestra.tests.trigger

tasks:
  - id: only
    type: io.kestra.plugin.core.debug.Return
    format: "from parents: {{execution.id}}"
"""

LISTENER = """
id: trigger-flow-listener
namespace: io.kestra.tests.trigger

inputs:
  - id: from-parent
    type: STRING

tasks:
  - id: only-listener
    type: io.kestra.plugin.core.debug.Return
    format: "childs: {{inputs['from-parent']}}"

triggers:
  - id: listen-flow
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      from-parent: '{{ outputs.only.value }}'
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in:
          - SUCCESS
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: io.kestra.tests.trigger
        flowId: trigger-flow
"""

LISTENER_NO_INPUTS = """
id: trigger-flow-listener-no-inputs
namespace: io.kestra.tests.trigger
revision: 1

tasks:
  - id: only-no-input
    type: io.kestra.plugin.core.debug.Return
    format: "v1: {{trigger.executionId}}"

triggers:
  - id: listen-flow
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in:
          - SUCCESS
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: io.kestra.tests.trigger
        flowId: trigger-flow
  - id: listen-flow-failed
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in:
          - FAILED
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: io.kestra.tests.trigger
        flowId: other-flow
"""

LISTENER_NAMESPACE = """
id: trigger-flow-listener-namespace-condition
namespace: io.kestra.tests.trigger

inputs:
  - id: from-parent
    type: STRING

tasks:
  - id: only-listener
    type: io.kestra.plugin.core.debug.Return
    format: "simple return"

triggers:
  - id: listen-flow
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionNamespace
        namespace: io.kestra.tests.trigger
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in:
          - SUCCESS
"""


def finished(stack: Stack, namespace: str, flow_id: str, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    """The first `count` executions of a flow, once they have all succeeded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        results = stack.api.get(
            "/executions/search", params={"namespace": namespace, "flowId": flow_id, "size": 50}
        ).json()["results"]
        if len(results) >= count:
            return [stack.wait_for_state(r["id"], {"SUCCESS"}) for r in results]
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} executions of {namespace}.{flow_id} within {timeout_s}s")


def test_kestras_flow_trigger_cases(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    for source in (TRIGGER_FLOW, LISTENER, LISTENER_NO_INPUTS, LISTENER_NAMESPACE):
        deploy_flow(source.replace(NS, "{ns}"))
    parent = stack.run(unique_namespace, "trigger-flow")
    stack.wait_for_state(parent["id"], {"SUCCESS"})

    [listener] = finished(stack, unique_namespace, "trigger-flow-listener", 1)
    [run] = listener["taskRunList"]
    assert run["outputs"]["value"] == f"childs: from parents: {parent['id']}"

    [no_inputs] = finished(stack, unique_namespace, "trigger-flow-listener-no-inputs", 1)
    variables = no_inputs["trigger"]["variables"]
    assert (variables["executionId"], variables["namespace"], variables["flowId"]) == (
        parent["id"], unique_namespace, "trigger-flow",
    )  # fmt: skip

    # Every SUCCESS in the namespace but its own: trigger-flow and the two other listeners.
    by_namespace = finished(stack, unique_namespace, "trigger-flow-listener-namespace-condition", 3)
    sources = sorted(e["trigger"]["variables"]["flowId"] for e in by_namespace)
    assert sources == ["trigger-flow", "trigger-flow-listener", "trigger-flow-listener-no-inputs"]
    assert all(e["trigger"]["variables"]["namespace"] == unique_namespace for e in by_namespace)
