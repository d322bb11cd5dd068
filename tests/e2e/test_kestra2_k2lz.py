"""Kestra 2.x test flows (slice l..z) on the real stack: what their Java tests assert and Chorus got wrong.

Each flow below is the Kestra test flow reduced to the behaviour at stake, in this test's own namespace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tests.e2e.conftest import Stack
from tests.harness.waiting import wait_until

# Kestra's loop-failed.yaml: no concurrencyLimit (0, all iterations at once), every iteration fails.
LOOP_FAILED = """
id: loop-failed
namespace: {ns}
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: ["value 1", "value 2", "value 3"]
    transmitFailed: {transmit}
    tasks:
      - id: fail
        type: io.kestra.plugin.core.execution.Fail
"""

# Kestra's task-when.yml: a Subflow whose `when` is false is skipped, its (missing) flow never looked up.
WHEN_SUBFLOW = """
id: when-subflow
namespace: {ns}
tasks:
  - id: notexecutedflowable
    type: io.kestra.plugin.core.flow.Subflow
    when: "false"
    wait: true
    flowId: no_such_flow
    namespace: {ns}
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ tasks.notexecutedflowable.state }}"
"""

# Kestra's task-runif-taskswithstate.yml: tasksWithState() in the finally block's runIf.
TASKS_WITH_STATE = """
id: tasks-with-state
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: Hello World!
  - id: will_fail
    type: io.kestra.plugin.core.execution.Fail
finally:
  - id: write_execution_context
    type: io.kestra.plugin.core.execution.SetVariables
    runIf: "{{ tasksWithState(state='FAILED') is not empty }}"
    variables:
      hadFailure: ["yes"]
  - id: skipped_when_failures_exist
    type: io.kestra.plugin.core.log.Log
    runIf: "{{ tasksWithState(state='FAILED') is empty }}"
    message: should be skipped because a failure exists
  - id: failed_ids
    type: io.kestra.plugin.core.debug.Return
    format: "{{ tasksWithState() | jq('.[].taskId') | join(',') }}"
  - id: bad_state
    type: io.kestra.plugin.core.debug.Return
    allowFailure: true
    format: "{{ tasksWithState(state=3) }}"
"""


def _states(execution: dict[str, Any]) -> dict[str, str]:
    return {r["taskId"]: r["state"]["current"] for r in execution["taskRunList"]}


def _output(execution: dict[str, Any], task_id: str) -> Any:
    run = next(r for r in execution["taskRunList"] if r["taskId"] == task_id)
    return (run.get("outputs") or {}).get("value")


def test_concurrent_failing_iterations_end_the_loop_at_the_first_failure(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    # Kestra's LoopCaseTest.loopFailed: the first iteration to fail ends the Loop, {FAILED: 1}
    deploy_flow(LOOP_FAILED.replace("{transmit}", "true"))

    execution = stack.run_to_end(unique_namespace, "loop-failed")

    assert execution["state"]["current"] == "FAILED"
    assert len(execution["taskRunList"]) == 1
    loop = execution["taskRunList"][0]
    assert loop["state"]["current"] == "FAILED"
    assert loop["outputs"]["iterationCount"] == 3
    assert loop["outputs"]["terminatedIterations"] == {"FAILED": 1}


def test_without_transmit_failed_every_failed_iteration_is_counted(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    # LoopCaseTest.loopTransmitFailedFalse: the failures are not the Loop's, each one counts
    deploy_flow(LOOP_FAILED.replace("{transmit}", "false"))

    execution = stack.run_to_end(unique_namespace, "loop-failed")

    assert execution["state"]["current"] == "SUCCESS"
    assert execution["taskRunList"][0]["outputs"]["terminatedIterations"] == {"FAILED": 3}


def test_a_subflow_whose_when_is_false_is_skipped_without_looking_its_flow_up(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(WHEN_SUBFLOW)

    execution = stack.run_to_end(unique_namespace, "when-subflow")

    assert execution["state"]["current"] == "SUCCESS", _states(execution)
    assert _states(execution) == {"notexecutedflowable": "SKIPPED", "after": "SUCCESS"}
    skipped = execution["taskRunList"][0]
    assert [a["state"]["current"] for a in skipped["attempts"]] == ["SKIPPED"]
    assert _output(execution, "after") == "SKIPPED"  # the `tasks` variable


def test_a_subflow_whose_when_is_true_still_fails_on_a_missing_flow(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(WHEN_SUBFLOW.replace('when: "false"', 'when: "true"'))

    execution = stack.run_to_end(unique_namespace, "when-subflow")

    assert execution["state"]["current"] == "FAILED"
    assert _states(execution)["notexecutedflowable"] == "FAILED"


def test_tasks_with_state_lists_the_task_runs_in_a_state(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(TASKS_WITH_STATE)

    execution = stack.run_to_end(unique_namespace, "tasks-with-state")

    assert execution["state"]["current"] == "FAILED"
    states = _states(execution)
    assert states["write_execution_context"] == "SUCCESS"
    assert states["skipped_when_failures_exist"] == "SKIPPED"
    assert _output(execution, "failed_ids") == "will_fail"  # state defaults to FAILED
    # a state that is not a name fails the task (allowFailure: a WARNING), with the function named
    assert states["bad_state"] == "WARNING"
    logs = stack.api.get(f"/logs/{execution['id']}").json()
    assert any("tasksWithState" in line["message"] for line in logs if line["taskId"] == "bad_state")


# Kestra's labels-update-task-deduplicate / -nested-value-map / -task-empty (RuntimeLabelsTest).
LABELS = """
id: labels
namespace: {ns}
tasks:
  - id: from-string
    type: io.kestra.plugin.core.execution.Labels
    labels: "{ \\"fromStringKey\\": \\"value1\\", \\"fromStringKey\\": \\"value2\\" }"
  - id: nested
    type: io.kestra.plugin.core.execution.Labels
    labels:
      - key: stage
        value:
          name: done
      - key: stage
        value:
          name: "{{ 'do' ~ 'ne' }}"
      - key: flag
        value: true
"""

EMPTY_LABEL = """
id: labels-empty
namespace: {ns}
tasks:
  - id: from-string
    type: io.kestra.plugin.core.execution.Labels
    labels: "{ \\"fromStringKey\\": \\"\\", \\"\\": \\"value2\\" }"
  - id: never
    type: io.kestra.plugin.core.execution.Labels
    labels:
      key: value
"""


def _labels(execution: dict[str, Any]) -> dict[str, Any]:
    return {label["key"]: label["value"] for label in execution["labels"] if not label["key"].startswith("system.")}


def test_labels_from_json_text_and_nested_values(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(LABELS)

    execution = stack.run_to_end(unique_namespace, "labels")

    assert execution["state"]["current"] == "SUCCESS"
    # a repeated key keeps its last value; a map value is its JSON; a boolean is Kestra's text
    assert _labels(execution) == {"fromStringKey": "value2", "stage": '{"name":"done"}', "flag": "true"}


def test_an_empty_label_key_or_value_fails_the_task_and_sets_no_label(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(EMPTY_LABEL)

    execution = stack.run_to_end(unique_namespace, "labels-empty")

    assert execution["state"]["current"] == "FAILED"
    assert _states(execution) == {"from-string": "FAILED"}
    assert _labels(execution) == {}
    logs = stack.api.get(f"/logs/{execution['id']}").json()
    assert any("a label needs a key and a value" in line["message"] for line in logs)


def test_labels_as_text_that_is_not_json_are_refused_at_deploy(stack: Stack, unique_namespace: str) -> None:
    source = (
        f"id: labels-text\nnamespace: {unique_namespace}\ntasks:\n"
        "  - id: bad\n    type: io.kestra.plugin.core.execution.Labels\n    labels: 'key=value'\n"
    )

    response = stack.api.post("/flows", content=source, headers={"Content-Type": "application/x-yaml"})

    assert response.status_code == 422, response.text
    assert "tasks[0].labels" in response.text
    assert "the JSON text of one" in response.text


# Kestra's pause-errors-finally-after-execution.yaml and pause-timeout-allow-failure.yaml (PauseTest).
PAUSE_TIMEOUT = """
id: pause-timeout
namespace: {ns}
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    timeout: PT0.25S
    allowFailure: {allow}
    errors:
      - id: logError
        type: io.kestra.plugin.core.log.Log
        message: I'm in error
    finally:
      - id: logFinally
        type: io.kestra.plugin.core.log.Log
        message: I'm in finally
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: I'm after the pause
afterExecution:
  - id: logAfter
    type: io.kestra.plugin.core.log.Log
    message: I'm after the execution
"""


def test_a_pause_whose_timeout_passes_fails_and_runs_its_errors_and_finally(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(PAUSE_TIMEOUT.replace("{allow}", "false"))

    execution = stack.run_to_end(unique_namespace, "pause-timeout")

    assert execution["state"]["current"] == "FAILED"
    assert _states(execution) == {
        "pause": "FAILED",
        "logError": "SUCCESS",
        "logFinally": "SUCCESS",
        "logAfter": "SUCCESS",
    }
    assert "PAUSED" in [h["state"] for h in execution["taskRunList"][0]["state"]["histories"]]


def test_an_allowed_failure_pause_timeout_is_a_warning_and_the_flow_goes_on(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(PAUSE_TIMEOUT.replace("{allow}", "true"))

    execution = stack.run_to_end(unique_namespace, "pause-timeout")

    assert execution["state"]["current"] == "WARNING"
    states = _states(execution)
    assert states["pause"] == "WARNING"
    assert states["log"] == "SUCCESS"
    assert states["logError"] == "SUCCESS" and states["logFinally"] == "SUCCESS"


# Kestra's sla-parent-flow.yaml and sla-subflow.yaml (SLATestCase.slaViolationOnSubflowMayEndTheParentFlow).
SLA_CHILD = """
id: sla-child
namespace: {ns}
sla:
  - id: maxDuration
    type: MAX_DURATION
    duration: PT1S
    behavior: FAIL
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT{sleep}S
"""

SLA_PARENT = """
id: sla-parent
namespace: {ns}
tasks:
  - id: subflow
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {ns}
    flowId: sla-child
"""


def _child_of(stack: Stack, parent: dict[str, Any]) -> str:
    def started() -> dict[str, Any]:
        return stack.api.get(f"/executions/{parent['id']}").json()

    for _ in range(100):
        run = started()["taskRunList"]
        if run and (run[0].get("outputs") or {}).get("executionId"):
            return str(run[0]["outputs"]["executionId"])
        time.sleep(0.1)
    raise AssertionError("the subflow's execution never started")


def test_a_child_ended_by_its_sla_fails_the_parent_subflow_task(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SLA_CHILD.replace("{sleep}", "10"))
    deploy_flow(SLA_PARENT)

    execution = stack.run_to_end(unique_namespace, "sla-parent", timeout_s=30)

    assert execution["state"]["current"] == "FAILED"
    assert _states(execution) == {"subflow": "FAILED"}


def test_a_child_killed_on_its_own_fails_the_parent_subflow_task(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SLA_CHILD.replace("{sleep}", "10").replace("duration: PT1S\n", "duration: PT1H\n"))
    deploy_flow(SLA_PARENT)
    parent = stack.run(unique_namespace, "sla-parent")
    child_id = _child_of(stack, parent)

    assert stack.api.delete(f"/executions/{child_id}/kill").status_code == 202
    execution = stack.wait_for_state(parent["id"], timeout_s=30)

    assert stack.wait_for_state(child_id)["state"]["current"] == "KILLED"
    assert execution["state"]["current"] == "FAILED"
    assert _states(execution) == {"subflow": "FAILED"}


# Kestra's restart-with-after-execution.yaml (RestartCaseTest.restartFailedWithAfterExecution).
RESTART_AFTER = """
id: restart-after
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: Hello
  - id: fail_randomly
    type: io.kestra.plugin.core.execution.Fail
    runIf: "{{taskrun.attemptsCount == 0}}"
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: should finish here
afterExecution:
  - id: end
    type: io.kestra.plugin.core.debug.Return
    format: "{{ execution.state }}"
"""


def test_a_restart_runs_after_execution_again_once_the_execution_has_ended(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(RESTART_AFTER)
    first = stack.run_to_end(unique_namespace, "restart-after")
    assert first["state"]["current"] == "FAILED"

    def after_execution_ran() -> bool:  # afterExecution runs once the execution has ended, so after run_to_end
        nonlocal first
        first = stack.api.get(f"/executions/{first['id']}").json()
        return _states(first).get("end") == "SUCCESS"

    wait_until(after_execution_ran, timeout_s=30, message="afterExecution's task ran")
    assert _output(first, "end") == "FAILED"

    response = stack.api.post(f"/executions/{first['id']}/restart")
    assert response.status_code == 200, response.text
    restarted = stack.api.get(f"/executions/{first['id']}").json()
    assert "end" not in _states(restarted)  # discarded: it runs again at the new end
    execution = stack.wait_for_state(first["id"], {"SUCCESS", "FAILED", "WARNING", "KILLED"}, timeout_s=30)

    assert execution["state"]["current"] == "SUCCESS"
    assert _states(execution) == {"hello": "SUCCESS", "fail_randomly": "SKIPPED", "log": "SUCCESS", "end": "SUCCESS"}
    assert _output(execution, "end") == "SUCCESS"


# Kestra's loop-until-restart.yaml (RestartCaseTest.restartOrReplayLoopUntil), with shorter durations.
LOOP_UNTIL_RESTART = """
id: loop-until-restart
namespace: {ns}
tasks:
  - id: loop_test
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{{ false }}"
    failOnMaxReached: true
    checkFrequency:
      interval: PT0.5S
      maxDuration: PT2S
    tasks:
      - id: return_test
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.loop_test.iterationCount }}"
"""


def test_a_restarted_loop_until_gets_its_whole_max_duration_again(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(LOOP_UNTIL_RESTART)
    first = stack.run_to_end(unique_namespace, "loop-until-restart")
    assert first["state"]["current"] == "FAILED"

    assert stack.api.post(f"/executions/{first['id']}/restart").status_code == 200
    time.sleep(0.5)
    execution = stack.wait_for_state(first["id"], timeout_s=30)

    assert execution["state"]["current"] == "FAILED"
    histories = execution["taskRunList"][0]["state"]["histories"]
    restarted = [h["date"] for h in histories if h["state"] == "RESTARTED"][-1]
    ended = histories[-1]

    def at(date: str) -> datetime:
        return datetime.fromisoformat(date.replace("Z", "+00:00"))

    assert ended["state"] == "FAILED"
    assert (at(ended["date"]) - at(restarted)).total_seconds() > 1.5  # not failed at once on the old start
