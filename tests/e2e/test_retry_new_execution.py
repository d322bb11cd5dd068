"""Retries into a new execution (Kestra's `behavior: CREATE_NEW_EXECUTION`) and executions scheduled for later."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Stack

TASK_RETRY = """
id: retries-as-executions
namespace: {ns}
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    retry:
      behavior: CREATE_NEW_EXECUTION
      type: constant
      maxDuration: PT1M
      maxAttempt: 3
      interval: PT1S
"""

FLOW_RETRY = """
id: retries-as-executions
namespace: {ns}
retry:
  behavior: CREATE_NEW_EXECUTION
  type: constant
  interval: PT1S
  maxAttempt: 3
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
"""


def _executions(stack: Stack, namespace: str, flow_id: str) -> list[dict[str, Any]]:
    found = stack.api.get("/executions/search", params={"namespace": namespace, "flowId": flow_id, "size": 50})
    return sorted(found.json()["results"], key=lambda e: e["metadata"]["attemptNumber"])


def _wait_for_chain(stack: Stack, namespace: str, flow_id: str, expected: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 40
    chain: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        chain = _executions(stack, namespace, flow_id)
        if len(chain) >= expected and all(e["state"]["current"] in ("RETRIED", "FAILED") for e in chain):
            return chain
        time.sleep(0.2)
    raise AssertionError(f"retry chain did not end: {[e['state']['current'] for e in chain]}")


@pytest.mark.parametrize("source", [TASK_RETRY, FLOW_RETRY], ids=["task-retry", "flow-retry"])
def test_a_failed_task_is_retried_as_new_executions_until_the_policy_ends(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, source: str
) -> None:
    deploy_flow(source)
    first = stack.run(unique_namespace, "retries-as-executions")

    chain = _wait_for_chain(stack, unique_namespace, "retries-as-executions", 3)
    time.sleep(2)  # longer than an interval: no fourth attempt comes
    chain = _executions(stack, unique_namespace, "retries-as-executions")

    assert [e["state"]["current"] for e in chain] == ["RETRIED", "RETRIED", "FAILED"]
    assert chain[0]["id"] == first["id"]
    # Kestra replays the failed execution: every attempt keeps the chain's originalId (ExecutionService.replay)
    assert {e["originalId"] for e in chain} == {first["id"]}
    assert [e["metadata"]["attemptNumber"] for e in chain] == [1, 2, 3]
    assert {e["metadata"]["originalCreatedDate"] for e in chain} == {chain[0]["metadata"]["originalCreatedDate"]}
    correlation = {e["id"]: {lb["key"]: lb["value"] for lb in e["labels"]}["system.correlationId"] for e in chain}
    assert set(correlation.values()) == {first["id"]}  # one causal chain
    audit = stack.api.get(f"/executions/{chain[1]['id']}/audit").json()
    created = next(e for e in audit["events"] if e["action"] == "execution.created")
    assert created["payload"]["retry_of"] == chain[0]["id"]


CHILD = """
id: flaky-child
namespace: {ns}
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    retry:
      behavior: CREATE_NEW_EXECUTION
      type: constant
      interval: PT1S
      maxAttempt: 2
"""

PARENT = """
id: waits-for-retries
namespace: {ns}
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {ns}
    flowId: flaky-child
"""


def test_a_waiting_subflow_task_follows_its_child_into_the_retry(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CHILD)
    deploy_flow(PARENT)

    parent = stack.wait_for_state(stack.run(unique_namespace, "waits-for-retries")["id"], timeout_s=30)
    children = _executions(stack, unique_namespace, "flaky-child")

    assert [c["state"]["current"] for c in children] == ["RETRIED", "FAILED"]
    assert parent["state"]["current"] == "FAILED"
    assert parent["taskRunList"][0]["outputs"]["executionId"] == children[1]["id"]


HELLO = """
id: later
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: "hello"
"""


def test_an_execution_with_a_schedule_date_starts_then_and_not_before(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(HELLO)
    start_at = datetime.now(UTC) + timedelta(seconds=3)

    created = stack.api.post(f"/executions/{unique_namespace}/later", params={"scheduleDate": start_at.isoformat()})

    assert created.status_code == 200, created.text
    body = created.json()
    assert body["state"]["current"] == "CREATED" and body["scheduleDate"].startswith(start_at.strftime("%Y-%m-%dT%H"))
    time.sleep(1)
    assert stack.api.get(f"/executions/{body['id']}").json()["state"]["current"] == "CREATED"
    ended = stack.wait_for_state(body["id"], timeout_s=20)
    assert ended["state"]["current"] == "SUCCESS"
    running_at = next(h["date"] for h in ended["state"]["histories"] if h["state"] == "RUNNING")
    assert datetime.fromisoformat(running_at.replace("Z", "+00:00")) >= start_at


def test_a_schedule_date_without_an_offset_is_refused(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(HELLO)

    response = stack.api.post(f"/executions/{unique_namespace}/later", params={"scheduleDate": "2030-01-01T09:00:00"})

    assert response.status_code == 422
    assert "scheduleDate" in response.text


def test_a_scheduled_execution_can_be_killed_before_it_starts(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(HELLO)
    start_at = datetime.now(UTC) + timedelta(seconds=3)
    body = stack.api.post(f"/executions/{unique_namespace}/later", params={"scheduleDate": start_at.isoformat()}).json()

    assert stack.api.delete(f"/executions/{body['id']}/kill").status_code == 202
    time.sleep(4)

    later = stack.api.get(f"/executions/{body['id']}").json()
    assert later["state"]["current"] == "KILLED" and later["taskRunList"] == []
