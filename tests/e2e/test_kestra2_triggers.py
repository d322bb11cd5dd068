"""Kestra 2.x triggers and checks on the real stack: Webhook `when`, Flow `dependsOn`, `checks`, failed inputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

WEBHOOK = """
id: hook
namespace: {ns}
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body.env }}"
triggers:
  - id: in
    type: io.kestra.plugin.core.trigger.Webhook
    key: k2
    when: "{{ trigger.body.env == 'prod' }}"
"""

UPSTREAM = """
id: upstream
namespace: {ns}
inputs:
  - {id: fail, type: BOOLEAN, defaults: false}
tasks:
  - id: out
    type: io.kestra.plugin.core.output.OutputValues
    values:
      rows: 3
  - id: maybe
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ inputs.fail }}"
outputs:
  - {id: rows, type: INT, value: "{{ outputs.out.values.rows }}"}
"""

DOWNSTREAM = """
id: downstream
namespace: {ns}
inputs:
  - {id: rows, type: INT}
tasks:
  - id: got
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.rows }}"
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      rows: "{{ trigger.outputs.upstream.rows + trigger.outputs.rows }}"
    dependsOn:
      - namespace: {ns}
        flowId: upstream
        states: [SUCCESS]
        when: "{{ outputs.rows > 2 }}"
"""

BROKEN_INPUTS = """
id: broken-inputs
namespace: {ns}
inputs:
  - {id: rows, type: INT}
tasks:
  - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      rows: "{{ trigger.outputs.missing.deeper }}"
    dependsOn:
      - {namespace: {ns}, flowId: upstream, states: [SUCCESS]}
"""

CHECKED = """
id: checked
namespace: {ns}
inputs:
  - {id: env, type: STRING}
tasks:
  - {id: run, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.env }}"}
checks:
  - when: "{{ inputs.env != 'forbidden' }}"
    message: "never in forbidden"
  - when: "{{ inputs.env != 'broken' }}"
    message: "broken is recorded as failed"
    behavior: FAIL_EXECUTION
"""


def _executions(stack: Stack, namespace: str, flow_id: str, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = stack.api.get("/executions/search", params={"namespace": namespace, "flowId": flow_id}).json()
        if len(found["results"]) >= count:
            return [stack.wait_for_state(r["id"], timeout_s=timeout_s) for r in found["results"]]
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} executions of {flow_id}")


def test_a_webhook_whose_when_is_false_starts_nothing_and_answers_204(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(WEBHOOK)

    refused = stack.api.post(f"/executions/webhook/{unique_namespace}/hook/k2", json={"env": "dev"})
    accepted = stack.api.post(f"/executions/webhook/{unique_namespace}/hook/k2", json={"env": "prod"})

    assert refused.status_code == 204  # Kestra's Webhook.evaluate: conditions not met
    assert accepted.status_code == 200, accepted.text
    assert stack.wait_for_state(accepted.json()["id"])["state"]["current"] == "SUCCESS"


def test_a_flow_trigger_depends_on_an_upstream_flow_and_filters_with_when(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(UPSTREAM)
    deploy_flow(DOWNSTREAM)

    failed = stack.run(unique_namespace, "upstream", fail="true")
    stack.wait_for_state(failed["id"])
    ok = stack.run(unique_namespace, "upstream")
    stack.wait_for_state(ok["id"])

    [downstream] = _executions(stack, unique_namespace, "downstream", 1)
    assert downstream["state"]["current"] == "SUCCESS"
    assert downstream["trigger"]["variables"]["executionId"] == ok["id"]
    assert downstream["inputs"] == {"rows": 6}  # scoped by flow id, and the unscoped shorthand


def test_flow_trigger_inputs_that_cannot_be_rendered_make_a_failed_execution(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(UPSTREAM)
    deploy_flow(BROKEN_INPUTS)

    stack.wait_for_state(stack.run(unique_namespace, "upstream")["id"])

    [execution] = _executions(stack, unique_namespace, "broken-inputs", 1)
    assert execution["state"]["current"] == "FAILED"
    assert execution["taskRunList"] == []


def test_checks_block_fail_or_let_an_execution_be_created(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CHECKED)

    blocked = stack.api.post(f"/executions/{unique_namespace}/checked", files={"env": (None, "forbidden")})
    failed = stack.run(unique_namespace, "checked", env="broken")
    fine = stack.run(unique_namespace, "checked", env="dev")

    assert blocked.status_code == 409
    assert "never in forbidden" in blocked.text
    assert stack.wait_for_state(failed["id"])["state"]["current"] == "FAILED"
    assert stack.wait_for_state(fine["id"])["state"]["current"] == "SUCCESS"


LABELLED_UPSTREAM = """
id: labelled-upstream
namespace: {ns}
tasks:
  - id: ok
    type: io.kestra.plugin.core.debug.Return
    format: ok
"""

LABELLED_DOWNSTREAM = """
id: labelled-downstream
namespace: {ns}
labels:
  flow-label-1: flow-label-1
tasks:
  - id: seen
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.executionLabels | json }}"
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    labels:
      trigger-label-1: trigger-label-1
      trigger-label-2: "{{ 'trigger-label-2' }}"
      trigger-label-3: "{{ null }}"
      trigger-label-4: "{{ foobar }}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: {ns}
        flowId: labelled-upstream
"""


def test_a_flow_trigger_labels_its_execution_and_keeps_the_upstream_correlation(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    """Kestra 2's trigger.FlowTest#success_withLabels: the flow's and the trigger's labels (one that renders to
    nothing or cannot render is left out), the upstream correlation id; the upstream's own labels are
    `trigger.executionLabels`."""
    deploy_flow(LABELLED_UPSTREAM)
    deploy_flow(LABELLED_DOWNSTREAM)

    upstream = stack.api.post(
        f"/executions/{unique_namespace}/labelled-upstream", params={"labels": "execution-label:execution"}
    ).json()
    stack.wait_for_state(upstream["id"])

    [downstream] = _executions(stack, unique_namespace, "labelled-downstream", 1)
    assert downstream["state"]["current"] == "SUCCESS"
    assert {(label["key"], label["value"]) for label in downstream["labels"]} == {
        ("flow-label-1", "flow-label-1"),
        ("trigger-label-1", "trigger-label-1"),
        ("trigger-label-2", "trigger-label-2"),
        ("system.correlationId", upstream["id"]),
    }
    assert downstream["trigger"]["variables"]["executionLabels"] == {"execution-label": "execution"}
    assert downstream["taskRunList"][0]["outputs"] == {"value": '{"execution-label":"execution"}'}
