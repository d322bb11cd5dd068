"""Kestra 2.x test flows (slice k2fa: the flow/execution test classes A..L) on the real stack: what their Java
tests assert and Chorus got wrong.

Each flow below is the Kestra test flow reduced to the behaviour at stake, in this test's own namespace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

# Kestra's loopuntil-failed-flowable.yaml (LoopUntilCaseTest#loopUntilFailedFlowable): the condition compares
# a number with text, which Pebble refuses; Kestra renders it in LoopUntil.resolveState and fails the loop.
LOOP_UNTIL = """
id: loop-until-condition
namespace: {ns}
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: '{{{{ outputs.loop.iterationCount {condition} }}}}'
    checkFrequency:
      interval: PT0.2S
    tasks:
      - id: log
        type: io.kestra.plugin.core.log.Log
        message: "Iteration: {{{{ outputs.loop.iterationCount }}}}"
"""


def _loop_until(deploy_flow: Callable[[str], dict[str, Any]], condition: str) -> None:
    deploy_flow(LOOP_UNTIL.format(ns="{ns}", condition=condition))


def test_a_loop_until_whose_condition_cannot_be_rendered_fails_after_its_first_iteration(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    _loop_until(deploy_flow, '< "5"')

    execution = stack.run_to_end(unique_namespace, "loop-until-condition")

    assert execution["state"]["current"] == "FAILED"
    loop = execution["taskRunList"][0]
    assert (loop["taskId"], loop["state"]["current"], loop["outputs"]["iterationCount"]) == ("loop", "FAILED", 1)
    logs = stack.api.get(f"/logs/{execution['id']}", params={"minLevel": "ERROR"}).json()
    assert any("Unable to render the condition of loop" in line["message"] for line in logs)


def test_a_loop_until_whose_condition_holds_ends_in_success(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    _loop_until(deploy_flow, ">= 2")

    execution = stack.run_to_end(unique_namespace, "loop-until-condition")

    assert execution["state"]["current"] == "SUCCESS"
    assert execution["taskRunList"][0]["outputs"]["iterationCount"] == 2


# Kestra's restart-child.yaml: fails on its first attempt only (1 / attemptsCount), behind a Subflow and a
# ForEachItem of Kestra's restart-for-each-item.yaml (ForEachItemCaseTest#restartForEachItem).
CHILD = """
id: restart-child
namespace: {ns}
tasks:
  - id: failFirstTime
    type: io.kestra.plugin.core.log.Log
    message: "{{ 1 / taskrun.attemptsCount }}"
"""

PARENT = """
id: restart-parent
namespace: {ns}
inputs:
  - id: file
    type: FILE
tasks:
  - id: sub
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {ns}
    flowId: restart-child
    restartBehavior: {behavior}
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch:
      rows: 2
    namespace: {ns}
    flowId: restart-child
    restartBehavior: {behavior}
"""


def _children(stack: Stack, ns: str) -> list[tuple[str, int]]:
    """The restart-child executions: their state and the attempts of their one task run."""
    found = stack.api.get("/executions/search", params={"namespace": ns, "flowId": "restart-child", "size": 50})
    return sorted((c["state"]["current"], len(c["taskRunList"][0]["attempts"])) for c in found.json()["results"])


def _restart(stack: Stack, execution_id: str) -> dict[str, Any]:
    assert stack.api.post(f"/executions/{execution_id}/restart").status_code == 200
    time.sleep(0.5)
    return stack.wait_for_state(execution_id, timeout_s=60)


def _first_run(stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], ns: str, behavior: str) -> str:
    deploy_flow(CHILD)
    deploy_flow(PARENT.replace("{behavior}", behavior))
    started = stack.api.post(f"/executions/{ns}/restart-parent", files={"file": ("f.txt", b"a\nb\nc\n")})
    assert started.status_code == 200, started.text
    first = stack.wait_for_state(started.json()["id"], timeout_s=60)
    assert first["state"]["current"] == "FAILED"  # the Subflow's child failed; `each` did not run
    assert _children(stack, ns) == [("FAILED", 1)]
    return str(first["id"])


def test_a_restart_restarts_the_failed_children_of_a_subflow_and_a_for_each_item(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    execution_id = _first_run(stack, deploy_flow, unique_namespace, "RETRY_FAILED")

    # The Subflow's child is restarted (its second attempt succeeds); then both ForEachItem batches fail.
    assert _restart(stack, execution_id)["state"]["current"] == "FAILED"
    assert _children(stack, unique_namespace) == [("FAILED", 1), ("FAILED", 1), ("SUCCESS", 2)]

    execution = _restart(stack, execution_id)

    assert execution["state"]["current"] == "SUCCESS"
    assert [t["taskId"] for t in execution["taskRunList"]] == ["sub", "each", "each_split", "each_items", "each_merge"]
    assert _children(stack, unique_namespace) == [("SUCCESS", 2)] * 3  # the same three, each restarted once


def test_with_new_execution_a_restart_starts_new_children_instead(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    execution_id = _first_run(stack, deploy_flow, unique_namespace, "NEW_EXECUTION")

    execution = _restart(stack, execution_id)

    assert execution["state"]["current"] == "FAILED"  # a new child fails on its first attempt again
    assert _children(stack, unique_namespace) == [("FAILED", 1), ("FAILED", 1)]


# Kestra 2's task-flow.yaml and switch.yaml (FlowCaseTest#waitSuccess / #noLabels), reduced to their labels.
LABELLED_CHILD = """
id: labelled-child
namespace: {ns}
labels:
  childLabel: childFoo
  overriding: child
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""

LABELLED_PARENT = """
id: labelled-parent
namespace: {ns}
labels:
  parentLabel: parentFoo
  overriding: parent
tasks:
  - id: launch
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {ns}
    flowId: labelled-child
    inheritLabels: {inherit}
    labels:
      launchTaskLabel: launchFoo
"""


def _child_labels(stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], ns: str, inherit: str) -> dict[str, str]:
    deploy_flow(LABELLED_CHILD)
    deploy_flow(LABELLED_PARENT.replace("{inherit}", inherit))
    parent = stack.run_to_end(ns, "labelled-parent")
    assert parent["state"]["current"] == "SUCCESS"
    child = stack.api.get(f"/executions/{parent['taskRunList'][0]['outputs']['executionId']}").json()
    labels = {label["key"]: label["value"] for label in child["labels"]}
    assert len(labels) == len(child["labels"])  # one value per key
    assert labels.pop("system.correlationId") == parent["id"]
    return labels


def test_an_inherited_label_the_child_flow_sets_itself_keeps_the_child_flows_value(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    labels = _child_labels(stack, deploy_flow, unique_namespace, "true")

    assert labels == {
        "parentLabel": "parentFoo",
        "overriding": "child",  # Kestra's ExecutableUtils.filterLabels: not the parent's `overriding: parent`
        "childLabel": "childFoo",
        "launchTaskLabel": "launchFoo",
    }


def test_without_inherit_labels_the_child_gets_none_of_the_parents_labels(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    labels = _child_labels(stack, deploy_flow, unique_namespace, "false")

    assert labels == {"overriding": "child", "childLabel": "childFoo", "launchTaskLabel": "launchFoo"}
