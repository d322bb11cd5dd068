"""A flowable task run's attempt ends with the task run (it spans its children), as a task's attempt does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.harness.stack import Stack

NESTED = """
id: nested
namespace: {ns}
tasks:
  - id: outer
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: branch
        type: io.kestra.plugin.core.flow.If
        condition: "{{ true }}"
        then:
          - id: said
            type: io.kestra.plugin.core.log.Log
            message: hi
"""


def test_flowable_attempts_end_in_the_task_runs_final_state(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]]
) -> None:
    flow = deploy_flow(NESTED)
    execution = stack.wait_for_state(stack.run(flow["namespace"], "nested")["id"])

    assert execution["state"]["current"] == "SUCCESS"
    runs = {run["taskId"]: run for run in execution["taskRunList"]}
    for task_id in ("outer", "branch"):
        last = runs[task_id]["attempts"][-1]["state"]
        assert last["current"] == "SUCCESS", (task_id, last)
        assert [h["state"] for h in last["histories"]][-1] == "SUCCESS"
