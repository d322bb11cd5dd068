"""Kestra 2's `onChildFailure` / `failFast` on Parallel and Dag: a failed child interrupts its running siblings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.harness.executions import task_runs

PARALLEL = """
id: parallel-child-failure
namespace: {ns}
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    POLICY
    tasks:
      - id: branch
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: slow
            type: io.kestra.plugin.core.flow.Sleep
            duration: SLOW
          - id: next
            type: io.kestra.plugin.core.log.Log
            message: next
      - id: late
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1S
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
    errors:
      - id: handler
        type: io.kestra.plugin.core.log.Log
        message: handled
"""


@pytest.mark.parametrize(
    ("policy", "slow_state"),
    [("onChildFailure: FAIL", "FAILED"), ("onChildFailure: cancel", "CANCELLED"), ("failFast: true", "KILLED")],
)
def test_a_failed_child_interrupts_its_running_siblings_at_any_depth(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], policy: str, slow_state: str, unique_namespace: str
) -> None:
    # Long enough (a parked Sleep) that a loaded machine still fails `late` well before `slow` could end.
    deploy_flow(PARALLEL.replace("POLICY", policy).replace("SLOW", "PT40S"))

    done = stack.wait_for_state(stack.run(unique_namespace, "parallel-child-failure")["id"], timeout_s=60)

    assert done["state"]["current"] == "FAILED"
    assert task_runs(done, "parallel")[0]["state"]["current"] == "FAILED"
    assert task_runs(done, "slow")[0]["state"]["current"] == slow_state
    assert not task_runs(done, "next")
    assert task_runs(done, "handler")[0]["state"]["current"] == "SUCCESS"
    logs = stack.api.get(f"/logs/{done['id']}").json()
    assert any("sibling task 'late' failed" in line["message"] for line in logs)


def test_without_a_policy_siblings_run_to_completion_as_in_kestra_1(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(PARALLEL.replace("POLICY", "onChildFailure: CONTINUE").replace("SLOW", "PT4S"))

    done = stack.wait_for_state(stack.run(unique_namespace, "parallel-child-failure")["id"], timeout_s=60)

    assert done["state"]["current"] == "FAILED"
    assert task_runs(done, "slow")[0]["state"]["current"] == "SUCCESS"
    assert task_runs(done, "next")[0]["state"]["current"] == "SUCCESS"
