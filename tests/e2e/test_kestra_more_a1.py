"""Kestra test flows of slice a1 beyond the public conformance sample, on the real stack.

Each test names the Kestra Java test it follows; its flow is Kestra's test flow
(core/src/test/resources/flows/valids at 58c1ca2) moved into the test's namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

Deploy = Callable[[str], dict[str, Any]]

ALLOW_FAILURE = """
id: allow-failure
namespace: {ns}

inputs:
  - id: crash
    type: STRING

tasks:
  - id: first
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: 1-1-allow-failure
        type: io.kestra.plugin.core.flow.AllowFailure
        tasks:
          - id: 1-1-1_seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: 1-1-1-1
                type: io.kestra.plugin.core.debug.Return
                format: "{{task.id}} > {{taskrun.startDate}}"
              - id: ko
                type: io.kestra.plugin.core.execution.Fail
              - id: 1-1-1-3
                type: io.kestra.plugin.core.debug.Return
                format: "{{task.id}} > {{taskrun.startDate}}"
        errors:
          - id: local-error
            type: io.kestra.plugin.core.debug.Return
            format: "Error Trigger ! {{task.id}}"
      - id: 1-2-todo
        type: io.kestra.plugin.core.debug.Return
        format: "{{task.id}} > {{taskrun.startDate}}"
  - id: switch
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.crash is defined }}"
    cases:
      "true":
        - id: crash
          type: io.kestra.plugin.core.execution.Fail
    defaults:
      - id: last
        type: io.kestra.plugin.core.debug.Return
        format: "{{task.id}} > {{taskrun.startDate}}"

errors:
  - id: global-error
    type: io.kestra.plugin.core.debug.Return
    format: "Error Trigger ! {{task.id}}"
"""

ALLOW_FAILURE_CONTROL = {
    "first": "WARNING",
    "1-1-allow-failure": "WARNING",
    "1-1-1_seq": "FAILED",
    "1-1-1-1": "SUCCESS",
    "ko": "FAILED",
    "local-error": "SUCCESS",
    "1-2-todo": "SUCCESS",
}


def states(execution: dict[str, Any]) -> dict[str, str]:
    return {run["taskId"]: run["state"]["current"] for run in execution["taskRunList"]}


def test_an_input_started_without_a_value_is_not_defined(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """AllowFailureTest.success: started with no inputs at all, `inputs.crash is defined` is false (Pebble's
    `defined` is `!= null`), so the Switch takes its defaults; the allowed failure leaves WARNING."""
    deploy_flow(ALLOW_FAILURE)

    execution = stack.run_to_end(unique_namespace, "allow-failure")

    assert execution["state"]["current"] == "WARNING"
    assert len(execution["taskRunList"]) == 9
    assert states(execution) == {**ALLOW_FAILURE_CONTROL, "switch": "SUCCESS", "last": "SUCCESS"}


def test_a_failure_after_an_allowed_one_fails_the_execution(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """AllowFailureTest.failed: with `crash` given, the Switch fails and the flow-level errors branch runs."""
    deploy_flow(ALLOW_FAILURE)

    execution = stack.run_to_end(unique_namespace, "allow-failure", crash="1")

    assert execution["state"]["current"] == "FAILED"
    assert len(execution["taskRunList"]) == 10
    assert states(execution) == {
        **ALLOW_FAILURE_CONTROL,
        "switch": "FAILED",
        "crash": "FAILED",
        "global-error": "SUCCESS",
    }
