"""One execution with a retry, a pause and a person's approval leaves the expected, verifiable audit chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

APPROVAL = """
id: approval
namespace: {ns}
tasks:
  - id: flaky
    type: io.kestra.plugin.core.log.Log
    message: "{{ taskrun.attemptsCount == 1 ? 'worked the second time' : undefined_the_first_time }}"
    retry:
      type: constant
      interval: PT0.2S
      maxAttempt: 3
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: decision
        type: STRING
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.approve.onResume.decision }}"
"""


def test_a_retry_a_pause_and_an_approval_are_chained_in_order(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(APPROVAL)
    execution_id = stack.run(unique_namespace, "approval")["id"]
    stack.wait_for_state(execution_id, {"PAUSED"})

    resumed = stack.api.post(f"/executions/{execution_id}/actions/resume", files={"decision": (None, "approved")})
    assert resumed.status_code == 200, resumed.text
    done = stack.wait_for_state(execution_id)

    assert done["state"]["current"] == "SUCCESS"
    audit = stack.api.get(f"/executions/{execution_id}/audit").json()
    assert audit["verified"] is True
    steps = [
        (e["action"], e["payload"].get("task_id"))
        for e in audit["events"]
        if e["action"].startswith(("execution.", "task_run.")) and e["action"] not in ("task_run.decided",)
    ]
    assert steps == [
        ("execution.created", None),
        ("execution.running", None),
        ("task_run.created", "flaky"),  # a task run's history starts CREATED, as Kestra's does
        ("task_run.running", "flaky"),
        ("task_run.retrying", "flaky"),
        ("task_run.running", "flaky"),
        ("task_run.success", "flaky"),
        ("task_run.created", "approve"),
        ("task_run.running", "approve"),
        ("task_run.paused", "approve"),
        ("execution.paused", None),
        ("task_run.running", "approve"),
        ("execution.running", None),
        ("task_run.success", "approve"),
        ("task_run.created", "after"),
        ("task_run.running", "after"),
        ("task_run.success", "after"),
        ("execution.success", None),
    ]
    resume = next(e for e in audit["events"] if e["action"] == "execution.running" and e["seq"] > 3)
    assert resume["actor"].startswith(("api:", "user:", "anonymous"))  # the person who approved, not the system
    assert [e["seq"] for e in audit["events"]] == list(range(1, len(audit["events"]) + 1))
