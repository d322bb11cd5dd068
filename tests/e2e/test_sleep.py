"""A long Sleep holds no worker: it is parked as a due time in PostgreSQL and the sweeper wakes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

SLEEPER = """
id: sleeper
namespace: {ns}
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: {duration}
    {timeout}
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: awake
"""


def _actions(stack: Stack, execution_id: str) -> list[str]:
    audit = stack.api.get(f"/executions/{execution_id}/audit").json()
    assert audit["verified"] is True
    return [event["action"] for event in audit["events"]]


def _wait_for_action(stack: Stack, execution_id: str, action: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if action in _actions(stack, execution_id):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {action} in the audit of {execution_id}")


def test_a_long_sleep_is_parked_then_woken_by_the_sweeper(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SLEEPER.format(ns="{ns}", duration="PT6S", timeout=""))
    started = time.monotonic()
    execution_id = stack.run(unique_namespace, "sleeper")["id"]

    _wait_for_action(stack, execution_id, "task_run.sleeping")
    parked = stack.api.get(f"/executions/{execution_id}").json()
    ended = stack.wait_for_state(execution_id, timeout_s=30)

    assert [r["state"]["current"] for r in parked["taskRunList"]] == ["RUNNING"]
    assert ended["state"]["current"] == "SUCCESS"
    assert time.monotonic() - started >= 6
    assert [r["outputs"] for r in ended["taskRunList"]][-1] == {"value": "awake"}
    actions = _actions(stack, execution_id)
    assert actions.index("task_run.sleeping") < actions.index("task_run.woken")
    logs = stack.api.get(f"/logs/{execution_id}").json()
    assert [line["message"] for line in logs if line["taskId"] == "nap"] == ["Waiting for PT6S"]


def test_a_sleep_longer_than_its_timeout_fails_at_the_timeout(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SLEEPER.format(ns="{ns}", duration="PT1H", timeout="timeout: PT6S"))
    started = time.monotonic()
    execution_id = stack.run(unique_namespace, "sleeper")["id"]

    ended = stack.wait_for_state(execution_id, timeout_s=30)

    assert ended["state"]["current"] == "FAILED"
    assert 6 <= time.monotonic() - started < 25
    assert [r["taskId"] for r in ended["taskRunList"]] == ["nap"]
    logs = stack.api.get(f"/logs/{execution_id}").json()
    assert any(line["message"] == "Timeout after 6s" for line in logs)


def test_killing_a_parked_sleep_ends_it_for_good(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SLEEPER.format(ns="{ns}", duration="PT6S", timeout=""))
    execution_id = stack.run(unique_namespace, "sleeper")["id"]
    _wait_for_action(stack, execution_id, "task_run.sleeping")

    assert stack.api.delete(f"/executions/{execution_id}/kill").status_code == 202
    killed = stack.wait_for_state(execution_id)
    time.sleep(7)  # past the sleep's end: the sweeper must not wake it
    later = stack.api.get(f"/executions/{execution_id}").json()

    assert killed["state"]["current"] == "KILLED"
    assert later["state"]["current"] == "KILLED"
    assert [r["state"]["current"] for r in later["taskRunList"]] == ["KILLED"]
    assert "task_run.woken" not in _actions(stack, execution_id)
