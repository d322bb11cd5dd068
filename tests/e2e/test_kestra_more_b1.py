"""Kestra's trigger, concurrency and webhook test flows (tests/fixtures/kestra_more, slice b1) on the real stack.

The flows are Kestra's own (core/src/test/resources/flows/valids at 58c1ca2), moved from `io.kestra.tests` into
this test's own namespace so other tests' executions cannot set their listeners off. Each test names the Java
test whose assertions it repeats.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Stack
from tests.fakes import jira as jira_fake

FLOWS = Path(__file__).resolve().parents[1] / "fixtures" / "kestra_more" / "flows"


def kestra_flow(relative: str) -> str:
    """A fixture flow with Kestra's test namespace replaced by the `{ns}` placeholder."""
    return (FLOWS / relative).read_text().replace("io.kestra.tests", "{ns}")


def executions_of(stack: Stack, namespace: str, flow_id: str) -> list[dict[str, Any]]:
    results = stack.api.get(
        "/executions/search", params={"namespace": namespace, "flowId": flow_id, "size": 50}
    ).json()["results"]
    return sorted(results, key=lambda e: e["state"]["histories"][0]["date"])


def ended(stack: Stack, namespace: str, flow_id: str, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    """The executions of a flow, oldest first, once `count` of them exist and have all ended."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = executions_of(stack, namespace, flow_id)
        if len(found) >= count:
            return [stack.wait_for_state(e["id"]) for e in found]
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} executions of {namespace}.{flow_id} within {timeout_s}s")


# FlowTriggerCaseTest.triggerWithPause (core/src/test/java/io/kestra/core/runners/FlowTriggerCaseTest.java:85-109)
DEFAULT_STATES_LISTENER = """
id: listener-default-states
namespace: {ns}.trigger.pause
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.state }}"
triggers:
  - id: listen-flow
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: {ns}.trigger.pause
        flowId: trigger-flow-with-pause
"""


def test_a_flow_trigger_listening_to_live_states_fires_on_each_state_change(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    namespace = f"{unique_namespace}.trigger.pause"
    deploy_flow(kestra_flow("io.kestra.tests.trigger.pause/trigger-flow-listener-with-pause.yaml"))
    deploy_flow(DEFAULT_STATES_LISTENER)
    deploy_flow(kestra_flow("io.kestra.tests.trigger.pause/trigger-flow-with-pause.yaml"))

    source = stack.run_to_end(namespace, "trigger-flow-with-pause")
    assert (source["state"]["current"], len(source["taskRunList"])) == ("SUCCESS", 3)

    listeners = ended(stack, namespace, "trigger-flow-listener-with-pause", 4)
    assert [e["state"]["current"] for e in listeners] == ["SUCCESS"] * 4
    assert [e["outputs"]["status"] for e in listeners] == ["RUNNING", "PAUSED", "RUNNING", "SUCCESS"]
    assert {e["trigger"]["variables"]["executionId"] for e in listeners} == {source["id"]}
    # Without `states`, a Flow trigger listens to the terminal states and PAUSED (Kestra's default since
    # kestra-io/kestra#8620): the same source starts it on its pause and on its end, not on RUNNING.
    by_default = ended(stack, namespace, "listener-default-states", 2)
    assert sorted(e["trigger"]["variables"]["state"] for e in by_default) == ["PAUSED", "SUCCESS"]
    time.sleep(1)
    assert len(executions_of(stack, namespace, "trigger-flow-listener-with-pause")) == 4
    assert len(executions_of(stack, namespace, "listener-default-states")) == 2


# MultipleConditionTriggerCaseTest.flowTriggerPreconditions (MultipleConditionTriggerCaseTest.java:127-160)
def test_flow_trigger_preconditions_filter_on_the_upstream_labels(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    namespace = f"{unique_namespace}.trigger.preconditions"
    folder = "io.kestra.tests.trigger.preconditions"
    flow_a = kestra_flow(f"{folder}/flow-trigger-preconditions-flow-a.yaml")
    deploy_flow(kestra_flow(f"{folder}/flow-trigger-preconditions-flow-listen.yaml"))
    deploy_flow(kestra_flow(f"{folder}/flow-trigger-preconditions-flow-b.yaml"))
    # Without the label `where: flow1` asks of it (`{{labels.some == 'label'}}`), flow-a's executions meet the
    # `flows` precondition only: with flow-b's, the window stays one condition short.
    unlabelled = flow_a.replace("labels:\n  some: label\n", "")
    assert unlabelled != flow_a
    deploy_flow(unlabelled)
    for flow_id in ("flow-trigger-preconditions-flow-a", "flow-trigger-preconditions-flow-b"):
        assert stack.run_to_end(namespace, flow_id)["state"]["current"] == "SUCCESS"
    time.sleep(1)
    assert executions_of(stack, namespace, "flow-trigger-preconditions-flow-listen") == []

    updated = stack.api.put(
        f"/flows/{namespace}/flow-trigger-preconditions-flow-a",
        content=flow_a.replace("{ns}", unique_namespace),
        headers={"Content-Type": "application/x-yaml"},
    )
    assert updated.status_code == 200, updated.text
    for flow_id in ("flow-trigger-preconditions-flow-a", "flow-trigger-preconditions-flow-a"):
        execution = stack.run_to_end(namespace, flow_id)
        assert (execution["state"]["current"], len(execution["taskRunList"])) == ("SUCCESS", 1)
    [listener] = ended(stack, namespace, "flow-trigger-preconditions-flow-listen", 1)
    assert (listener["state"]["current"], len(listener["taskRunList"])) == ("SUCCESS", 1)
    assert listener["trigger"]["variables"]["flowId"] == "flow-trigger-preconditions-flow-a"


# ExecutionControllerTest.webhookDynamicKeyFromASecret and webhookWithCondition
# (webserver/src/test/java/io/kestra/webserver/controllers/api/ExecutionControllerTest.java:851-891)
def test_a_webhook_key_may_be_a_secret_and_its_conditions_may_refuse_a_call(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    # The stack's SECRET_JIRA_USERNAME stands for Kestra's SECRET_WEBHOOK_KEY.
    deploy_flow(kestra_flow("io.kestra.tests/webhook-secret-key.yaml").replace("WEBHOOK_KEY", "JIRA_USERNAME"))
    url = f"/executions/webhook/{unique_namespace}/webhook-secret-key"
    started = stack.api.get(f"{url}/{jira_fake.USERNAME}")
    assert started.status_code == 200, started.text
    assert stack.wait_for_state(started.json()["id"])["state"]["current"] == "SUCCESS"
    assert stack.api.get(f"{url}/WEBHOOK_KEY").status_code == 404
    assert stack.api.get(f"{url}/{{{{ secret('JIRA_USERNAME') }}}}").status_code == 404  # the template is no key

    deploy_flow(kestra_flow("io.kestra.tests/webhook-with-condition.yaml"))
    url = f"/executions/webhook/{unique_namespace}/webhook-with-condition/webhookKey"
    accepted = stack.api.post(url, json={"hello": "world"})
    assert accepted.status_code == 200, accepted.text
    refused = stack.api.post(url, json={"hello": "webhook"})
    assert (refused.status_code, refused.content) == (204, b"")


def running(stack: Stack, execution_id: str) -> dict[str, Any]:
    return stack.wait_for_state(execution_id, {"RUNNING"})


# ExecutionControllerTest.shouldUnqueueAQueuedFlow, shouldUnqueueByIdsQueuedFlows, shouldForceRunAQueuedFlow,
# shouldFailToForceRunNotFoundOrTerminatedExecutions (ExecutionControllerTest.java:1668-1725)
def test_a_queued_execution_is_unqueued_or_forced_to_run_through_the_api(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(kestra_flow("io.kestra.tests/flow-concurrency-queue.yaml"))
    ns, flow_id = unique_namespace, "flow-concurrency-queue"

    first = stack.run(ns, flow_id)["id"]
    running(stack, first)
    queued = stack.run(ns, flow_id)
    assert queued["state"]["current"] == "QUEUED"
    response = stack.api.post(f"/executions/{queued['id']}/unqueue")
    assert response.status_code == 200, response.text
    assert response.json()["state"]["current"] != "QUEUED"
    assert stack.api.post("/executions/notfound/unqueue").status_code == 404
    done = stack.wait_for_state(first)
    refused = stack.api.post(f"/executions/{done['id']}/unqueue")
    assert refused.status_code == 422, refused.text
    assert "only a QUEUED execution" in refused.json()["message"]
    unqueued = stack.wait_for_state(queued["id"])
    assert [h["state"] for h in unqueued["state"]["histories"]] == ["CREATED", "QUEUED", "RUNNING", "SUCCESS"]

    first = stack.run(ns, flow_id)["id"]
    running(stack, first)
    three = [stack.run(ns, flow_id)["id"] for _ in range(3)]
    invalid = stack.api.post("/executions/unqueue/by-ids", json=[*three, first, "notfound"])
    assert invalid.status_code == 400, invalid.text
    assert sorted(e["message"] for e in invalid.json()["invalids"]) == [
        "execution not found", "execution not in state QUEUED",
    ]  # fmt: skip
    assert {stack.api.get(f"/executions/{i}").json()["state"]["current"] for i in three} == {"QUEUED"}  # untouched
    assert stack.api.post("/executions/unqueue/by-ids", json=three).json() == {"count": 3}
    for execution_id in [first, *three]:
        assert stack.wait_for_state(execution_id)["state"]["current"] == "SUCCESS"

    first = stack.run(ns, flow_id)["id"]
    running(stack, first)
    queued = stack.run(ns, flow_id)
    forced = stack.api.post(f"/executions/{queued['id']}/force-run")
    assert forced.status_code == 200, forced.text
    assert stack.api.get(f"/executions/{queued['id']}").json()["state"]["current"] != "QUEUED"
    assert stack.api.post("/executions/notfound/force-run").status_code == 404
    done = stack.wait_for_state(first)
    assert stack.api.post(f"/executions/{done['id']}/force-run").status_code == 422
    assert stack.api.post("/executions/force-run/by-ids", json=[done["id"]]).status_code == 400
    assert stack.wait_for_state(queued["id"])["state"]["current"] == "SUCCESS"
