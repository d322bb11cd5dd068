"""A worker killed with SIGKILL mid-task: its task run is re-dispatched from the database and completes once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack
from tests.harness.executions import task_state
from tests.harness.waiting import wait_until

SLOW_ON_ITS_OWN_POOL = """
id: slow-step
namespace: {ns}
tasks:
  - id: slow
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT4S
    workerGroup:
      key: doomed
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "after the slow step"
"""


def test_a_killed_workers_task_run_is_taken_over_and_the_execution_completes(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SLOW_ON_ITS_OWN_POOL)
    stack.cluster.start_worker("doomed")
    try:
        execution_id = stack.run(unique_namespace, "slow-step")["id"]
        wait_until(lambda: _slow_running(stack, execution_id), timeout_s=30, message="the slow task running")

        stack.cluster.kill_worker("doomed")  # no warm shutdown, no ack: the message stays unacked in Redis
        stack.cluster.start_worker("doomed")

        done = stack.wait_for_state(execution_id, timeout_s=60)
    finally:
        if "doomed" in stack.cluster.workers:
            stack.cluster.stop_worker("doomed")

    assert done["state"]["current"] == "SUCCESS"
    runs = {t["taskId"]: t for t in done["taskRunList"]}
    assert len(done["taskRunList"]) == 2
    assert len(runs["slow"]["attempts"]) == 1  # the same attempt, taken over; not a retry
    audit = stack.api.get(f"/executions/{execution_id}/audit").json()
    assert audit["verified"] is True
    assert [e["action"] for e in audit["events"]].count("task_run.taken_over") == 1


def _slow_running(stack: Stack, execution_id: str) -> bool:
    execution = stack.api.get(f"/executions/{execution_id}").json()
    return bool(execution["taskRunList"]) and task_state(execution, "slow") == "RUNNING"
