"""A worker killed with SIGKILL mid-task: its task run is re-dispatched from the database and completes once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from orchestrator.cli.processes import run_worker_process, stop_process
from tests.e2e.conftest import Stack

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
    doomed = run_worker_process("doomed", stack.settings, stack.env)
    replacement = None
    try:
        execution_id = stack.run(unique_namespace, "slow-step")["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            runs = stack.api.get(f"/executions/{execution_id}").json()["taskRunList"]
            if runs and runs[0]["state"]["current"] == "RUNNING":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the slow task never started")

        os.killpg(doomed.pid, signal.SIGKILL)  # no warm shutdown, no ack: the message stays unacked in Redis
        doomed.wait(10)
        replacement = run_worker_process("doomed", stack.settings, stack.env)

        done = stack.wait_for_state(execution_id, timeout_s=60)
    finally:
        if doomed.poll() is None:
            os.killpg(doomed.pid, signal.SIGKILL)
        if replacement is not None:
            stop_process(replacement)

    assert done["state"]["current"] == "SUCCESS"
    runs = {t["taskId"]: t for t in done["taskRunList"]}
    assert len(done["taskRunList"]) == 2
    assert len(runs["slow"]["attempts"]) == 1  # the same attempt, taken over; not a retry
    audit = stack.api.get(f"/executions/{execution_id}/audit").json()
    assert audit["verified"] is True
    assert [e["action"] for e in audit["events"]].count("task_run.taken_over") == 1
