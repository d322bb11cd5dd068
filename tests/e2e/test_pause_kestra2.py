"""Pause as Kestra 2 has it: `onPause` before it parks, `behavior` once `pauseDuration` passed, `resumed` output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.harness.executions import task_runs

ON_PAUSE = """
id: pause-on-pause
namespace: {ns}
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    onPause:
      id: notify
      type: io.kestra.plugin.core.debug.Return
      format: "paused"
    tasks:
      - id: inside
        type: io.kestra.plugin.core.log.Log
        message: resumed
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.pause.resumed.to }}"
"""

TIMED = """
id: pause-timed
namespace: {ns}
inputs:
  - id: behavior
    type: STRING
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT1S
    behavior: "{{ inputs.behavior }}"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
errors:
  - id: handler
    type: io.kestra.plugin.core.log.Log
    message: failed
"""


def test_on_pause_runs_before_the_pause_and_the_resumed_output_says_who_resumed(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(ON_PAUSE)
    started = stack.run(unique_namespace, "pause-on-pause")
    paused = stack.wait_for_state(started["id"], {"PAUSED", "SUCCESS", "FAILED"}, timeout_s=60)

    assert paused["state"]["current"] == "PAUSED"
    assert task_runs(paused, "notify")[0]["state"]["current"] == "SUCCESS"
    assert not task_runs(paused, "inside")
    assert stack.api.post(f"/executions/{paused['id']}/resume").status_code == 204
    done = stack.wait_for_state(paused["id"], timeout_s=60)

    assert done["state"]["current"] == "SUCCESS"
    assert task_runs(done, "inside")[0]["state"]["current"] == "SUCCESS"
    resumed = task_runs(done, "pause")[0]["outputs"]["resumed"]
    assert resumed["to"] == "SUCCESS" and resumed["on"]
    assert task_runs(done, "after")[0]["outputs"]["value"] == "SUCCESS"


@pytest.mark.parametrize(
    ("behavior", "execution_state", "pause_state", "after_runs"),
    [("RESUME", "SUCCESS", "SUCCESS", 1), ("WARN", "WARNING", "WARNING", 1), ("FAIL", "FAILED", "FAILED", 0),
     ("CANCEL", "CANCELLED", "CANCELLED", 0)],
)  # fmt: skip
def test_a_pause_duration_that_passes_applies_the_behavior(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    behavior: str,
    execution_state: str,
    pause_state: str,
    after_runs: int,
) -> None:
    deploy_flow(TIMED)

    done = stack.wait_for_state(stack.run(unique_namespace, "pause-timed", behavior=behavior)["id"], timeout_s=60)

    assert done["state"]["current"] == execution_state
    assert task_runs(done, "pause")[0]["state"]["current"] == pause_state
    assert len(task_runs(done, "after")) == after_runs
    assert len(task_runs(done, "handler")) == (1 if behavior == "FAIL" else 0)


def test_an_unknown_behavior_fails_the_pause(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(TIMED)

    done = stack.wait_for_state(stack.run(unique_namespace, "pause-timed", behavior="SNOOZE")["id"], timeout_s=60)

    assert done["state"]["current"] == "FAILED"
    assert task_runs(done, "pause")[0]["state"]["current"] == "FAILED"
