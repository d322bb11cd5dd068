"""A Flow trigger with several preconditions starts its flow once, when all were met within its window."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack
from tests.harness.waiting import wait_until

UPSTREAM = """
id: {name}
namespace: {ns}
inputs:
  - id: fail
    type: BOOLEAN
    defaults: false
tasks:
  - id: work
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ inputs.fail }}"
"""

LISTENER = """
id: listener
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "after {{ trigger.flowId }}"
triggers:
  - id: both-done
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: both
      timeWindow:
        type: {window}
        window: PT1H
      flows:
        - namespace: {ns}
          flowId: extract
          states: [SUCCESS]
        - namespace: {ns}
          flowId: load
          states: [SUCCESS]
"""


def _listeners(stack: Stack, namespace: str) -> list[dict[str, Any]]:
    found = stack.api.get("/executions/search", params={"namespace": namespace, "flowId": "listener", "size": 50})
    return found.json()["results"]  # type: ignore[no-any-return]


def _run(stack: Stack, namespace: str, flow_id: str, *, fail: bool = False, listeners: int) -> None:
    """Run an upstream to its end, then wait until the listener has started `listeners` times in all."""
    execution = stack.run(namespace, flow_id, fail=str(fail).lower())
    stack.wait_for_state(execution["id"])
    _expect_listeners(stack, namespace, listeners)


def _expect_listeners(stack: Stack, namespace: str, count: int) -> None:
    # The trigger is evaluated right after the upstream's end commits: a start shows within moments, so one is
    # awaited; a start that must not happen gets the same moments to show before the count is taken.
    before = len(_listeners(stack, namespace))
    if before < count:
        wait_until(lambda: len(_listeners(stack, namespace)) >= count, timeout_s=15, message=f"{count} listener(s)")
    else:
        time.sleep(0.5)
    assert len(_listeners(stack, namespace)) == count


def _deploy(deploy_flow: Callable[[str], dict[str, Any]], window: str) -> None:
    deploy_flow(UPSTREAM.replace("{name}", "extract"))
    deploy_flow(UPSTREAM.replace("{name}", "load"))
    deploy_flow(LISTENER.replace("{window}", window))


def test_the_listener_starts_once_both_upstreams_succeeded_then_waits_for_both_again(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    _deploy(deploy_flow, "DURATION_WINDOW")

    _run(stack, unique_namespace, "extract", listeners=0)
    _run(stack, unique_namespace, "extract", listeners=0)
    _run(stack, unique_namespace, "load", fail=True, listeners=0)  # a FAILED load meets no precondition

    _run(stack, unique_namespace, "load", listeners=1)
    started = _listeners(stack, unique_namespace)
    assert stack.wait_for_state(started[0]["id"])["trigger"]["variables"]["flowId"] == "load"

    _run(stack, unique_namespace, "load", listeners=1)  # the window was reset: extract must succeed again first
    _run(stack, unique_namespace, "extract", listeners=2)


def test_two_upstreams_ending_together_complete_a_sliding_window_exactly_once(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    _deploy(deploy_flow, "SLIDING_WINDOW")

    for round_number in range(1, 4):
        # Both submitted at once: their ends race on two worker processes and meet at the window's row lock.
        pair = [stack.run(unique_namespace, flow_id, fail="false")["id"] for flow_id in ("extract", "load")]
        for execution_id in pair:
            stack.wait_for_state(execution_id)
        _expect_listeners(stack, unique_namespace, round_number)
    time.sleep(1)  # a second start of the last round, were there one, would show by now
    assert len(_listeners(stack, unique_namespace)) == 3


LEGACY_LISTENER = """
id: listener
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: "childs"
triggers:
  - id: multiple-listen-flow
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in:
          - SUCCESS
      - id: multiple
        type: io.kestra.plugin.core.condition.MultipleCondition
        window: P1D
        windowAdvance: P0D
        conditions:
          flow-a:
            type: io.kestra.plugin.core.condition.ExecutionFlow
            namespace: {ns}
            flowId: extract
          flow-b:
            type: io.kestra.plugin.core.condition.ExecutionFlow
            namespace: {ns}
            flowId: load
"""


def test_kestras_legacy_multiple_condition_waits_for_both_successes(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(UPSTREAM.replace("{name}", "extract"))
    deploy_flow(UPSTREAM.replace("{name}", "load"))
    deploy_flow(LEGACY_LISTENER)

    _run(stack, unique_namespace, "extract", listeners=0)
    _run(stack, unique_namespace, "load", fail=True, listeners=0)  # Kestra's trigger-multiplecondition-failed case

    _run(stack, unique_namespace, "load", listeners=1)
