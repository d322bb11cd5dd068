"""Kestra 2.x test flows (slice k2fa: the flow/execution test classes A..L) on the real stack: what their Java
tests assert and Chorus got wrong.

Each flow below is the Kestra test flow reduced to the behaviour at stake, in this test's own namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

# Kestra's loopuntil-failed-flowable.yaml (LoopUntilCaseTest#loopUntilFailedFlowable): the condition compares
# a number with text, which Pebble refuses; Kestra renders it in LoopUntil.resolveState and fails the loop.
LOOP_UNTIL = """
id: loop-until-condition
namespace: {ns}
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: '{{{{ outputs.loop.iterationCount {condition} }}}}'
    checkFrequency:
      interval: PT0.2S
    tasks:
      - id: log
        type: io.kestra.plugin.core.log.Log
        message: "Iteration: {{{{ outputs.loop.iterationCount }}}}"
"""


def _loop_until(deploy_flow: Callable[[str], dict[str, Any]], condition: str) -> None:
    deploy_flow(LOOP_UNTIL.format(ns="{ns}", condition=condition))


def test_a_loop_until_whose_condition_cannot_be_rendered_fails_after_its_first_iteration(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    _loop_until(deploy_flow, '< "5"')

    execution = stack.run_to_end(unique_namespace, "loop-until-condition")

    assert execution["state"]["current"] == "FAILED"
    loop = execution["taskRunList"][0]
    assert (loop["taskId"], loop["state"]["current"], loop["outputs"]["iterationCount"]) == ("loop", "FAILED", 1)
    logs = stack.api.get(f"/logs/{execution['id']}", params={"minLevel": "ERROR"}).json()
    assert any("Unable to render the condition of loop" in line["message"] for line in logs)


def test_a_loop_until_whose_condition_holds_ends_in_success(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    _loop_until(deploy_flow, ">= 2")

    execution = stack.run_to_end(unique_namespace, "loop-until-condition")

    assert execution["state"]["current"] == "SUCCESS"
    assert execution["taskRunList"][0]["outputs"]["iterationCount"] == 2
