"""Kestra fidelity on the real stack: task-run histories, a Loop paused with its iteration, Loop `breakWhen`,
`isPublicHoliday()` in a flow, each as Kestra's source and Java tests define it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

# Kestra's loop-with-pause.yaml (LoopCaseTest.loopWithPause): each iteration pauses for a moment.
LOOP_WITH_PAUSE = """
id: loop-with-pause
namespace: {ns}
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    concurrencyLimit: 1
    values: [1, 2]
    tasks:
      - id: pause
        type: io.kestra.plugin.core.flow.Pause
        pauseDuration: PT0.25S
"""

# A Pause inside a Sequential inside a Loop, resumed by hand: the Loop runs again when its iteration does.
LOOP_WITH_MANUAL_PAUSE = """
id: loop-manual-pause
namespace: {ns}
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [a]
    tasks:
      - id: group
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ item.value }}"
"""

HOLIDAY = """
id: holiday
namespace: {ns}
inputs:
  - id: country
    type: STRING
    defaults: FR
tasks:
  - id: check
    type: io.kestra.plugin.core.debug.Return
    format: "{{ isPublicHoliday('2023-07-14', inputs.country) }}-{{ isPublicHoliday('2023-07-15', inputs.country) }}"
"""

HOLIDAY_WITHOUT_COUNTRY = """
id: holiday-without-country
namespace: {ns}
tasks:
  - id: check
    type: io.kestra.plugin.core.debug.Return
    format: "{{ isPublicHoliday('2023-07-14') }}"
"""


def _states(history: list[dict[str, Any]]) -> list[str]:
    return [h["state"] for h in history]


def test_a_task_runs_history_starts_created_as_kestras_does(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(HOLIDAY)

    execution = stack.run_to_end(unique_namespace, "holiday")

    assert execution["state"]["current"] == "SUCCESS"
    run = execution["taskRunList"][0]
    assert _states(run["state"]["histories"]) == ["CREATED", "RUNNING", "SUCCESS"]
    audit = stack.api.get(f"/executions/{execution['id']}/audit").json()
    on_run = [e["action"] for e in audit["events"] if e.get("subject") == run["id"]]
    assert on_run == ["task_run.created", "task_run.running", "task_run.success"]


def test_a_loop_task_run_is_paused_while_its_iteration_is(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(LOOP_WITH_PAUSE)

    execution = stack.run_to_end(unique_namespace, "loop-with-pause")

    assert execution["state"]["current"] == "SUCCESS"
    assert "PAUSED" in _states(execution["state"]["histories"])
    loop = next(t for t in execution["taskRunList"] if t["taskId"] == "loop")
    assert loop["state"]["current"] == "SUCCESS"
    # Twice paused (one per iteration), each time running again with it.
    assert _states(loop["state"]["histories"]) == [
        "CREATED", "RUNNING", "PAUSED", "RUNNING", "PAUSED", "RUNNING", "SUCCESS",
    ]  # fmt: skip
    assert loop["outputs"]["terminatedIterations"] == {"SUCCESS": 2}


def test_a_paused_loop_is_not_listed_as_waiting_and_resumes_with_its_iteration(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(LOOP_WITH_MANUAL_PAUSE)
    execution_id = stack.run(unique_namespace, "loop-manual-pause")["id"]
    paused = stack.wait_for_state(execution_id, {"PAUSED"})
    loop = next(t for t in paused["taskRunList"] if t["taskId"] == "loop")
    assert loop["state"]["current"] == "PAUSED"
    pending = stack.api.get(f"/executions/{execution_id}/approvals").json()
    assert [p["taskId"] for p in pending["taskRuns"]] == ["pause"]  # the Loop waits for its iteration, not for a person

    resumed = stack.api.post(f"/executions/{execution_id}/resume")
    assert resumed.status_code in (200, 204), resumed.text
    done = stack.wait_for_state(execution_id)

    assert done["state"]["current"] == "SUCCESS"
    loop = next(t for t in done["taskRunList"] if t["taskId"] == "loop")
    assert _states(loop["state"]["histories"]) == ["CREATED", "RUNNING", "PAUSED", "RUNNING", "SUCCESS"]
    assert loop["outputs"]["terminatedIterations"] == {"SUCCESS": 1}
    assert "resumed" not in loop["outputs"]  # the Pause was resumed, not the Loop


def test_is_public_holiday_reads_the_countrys_calendar_in_a_flow(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(HOLIDAY)

    execution = stack.run_to_end(unique_namespace, "holiday", country="FR")

    assert execution["taskRunList"][0]["outputs"] == {"value": "true-false"}


def test_is_public_holiday_without_a_country_fails_the_task_naming_the_argument(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(HOLIDAY_WITHOUT_COUNTRY)

    execution = stack.run_to_end(unique_namespace, "holiday-without-country")

    assert execution["state"]["current"] == "FAILED"
    logs = stack.api.get(f"/logs/{execution['id']}").json()
    assert any("expects a 'countryCode' argument" in entry["message"] for entry in logs), logs


# breakWhen as Loop.java documents it: rendered after each iteration with `item` and `iteration`; once truthy,
# no new iteration starts (one at a time here, so the iterations after the one that broke never run).
LOOP_BREAK = """
id: loop-break
namespace: {ns}
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    concurrencyLimit: 1
    values: ["a", "b", "c", "d"]
    breakWhen: "{when}"
    outputs:
      - id: seen
        type: STRING
        value: "{{ outputs.echo.value }}"
    tasks:
      - id: echo
        type: io.kestra.plugin.core.debug.Return
        format: "{{ item.value }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.loop.outputs | length }}"
"""


def _run_break(stack: Stack, deploy: Callable[[str], dict[str, Any]], namespace: str, when: str) -> dict[str, Any]:
    deploy(LOOP_BREAK.replace("{when}", when))
    execution = stack.run_to_end(namespace, "loop-break")
    return {t["taskId"]: t for t in execution["taskRunList"]} | {"": execution}


def test_a_loop_starts_no_iteration_after_its_break_when_holds(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    runs = _run_break(stack, deploy_flow, unique_namespace, "{{ item.value == 'b' }}")

    assert runs[""]["state"]["current"] == "SUCCESS"
    loop = runs["loop"]
    assert loop["state"]["current"] == "SUCCESS"
    assert loop["outputs"]["iterationCount"] == 4  # the values it had, as Kestra counts them
    assert loop["outputs"]["terminatedIterations"] == {"SUCCESS": 2}
    assert [o["outputs"]["seen"] for o in loop["outputs"]["outputs"]] == ["a", "b"]
    assert runs["after"]["outputs"] == {"value": "2"}  # the flow goes on after the Loop


def test_break_when_reads_the_iterations_state_and_declared_outputs(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    when = "{{ iteration.state == 'SUCCESS' and iteration.outputs.seen == 'c' and iteration.executionId is defined }}"
    runs = _run_break(stack, deploy_flow, unique_namespace, when)

    assert runs["loop"]["outputs"]["terminatedIterations"] == {"SUCCESS": 3}


def test_a_break_when_that_never_holds_runs_every_iteration(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    runs = _run_break(stack, deploy_flow, unique_namespace, "{{ item.value == 'z' }}")

    assert runs["loop"]["outputs"]["terminatedIterations"] == {"SUCCESS": 4}


def test_a_break_when_that_cannot_be_rendered_stops_the_loop_rather_than_running_on(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    runs = _run_break(stack, deploy_flow, unique_namespace, "{{ iteration.nothing.here }}")

    assert runs["loop"]["outputs"]["terminatedIterations"] == {"SUCCESS": 1}
    assert runs[""]["state"]["current"] == "SUCCESS"


# Kestra's Dag: tasks whose dependencies ended run side by side; a task waits for all of its dependencies.
DAG = """
id: dag-waves
namespace: {ns}
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task:
          id: a
          type: io.kestra.plugin.core.flow.Sleep
          duration: PT1S
      - task:
          id: b
          type: io.kestra.plugin.core.flow.Sleep
          duration: PT1S
      - task:
          id: c
          type: io.kestra.plugin.core.debug.Return
          format: c
        dependsOn: [a, b]
"""

# Kestra's dag-fail-fast-cancelled.yaml (DagTest.dagFailFastCancelled).
DAG_FAIL_FAST = """
id: dag-fail-fast
namespace: {ns}
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    onChildFailure: CANCELLED
    tasks:
      - task:
          id: fails_fast
          type: io.kestra.plugin.core.execution.Fail
      - task:
          id: sleep
          type: io.kestra.plugin.core.flow.Sleep
          duration: PT10S
"""


def _dates(run: dict[str, Any]) -> tuple[str, str]:
    histories = run["state"]["histories"]
    return histories[0]["date"], histories[-1]["date"]


def test_a_dag_runs_independent_tasks_side_by_side_and_a_dependent_one_after_all_of_them(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(DAG)

    execution = stack.run_to_end(unique_namespace, "dag-waves")

    assert execution["state"]["current"] == "SUCCESS"
    runs = {t["taskId"]: t for t in execution["taskRunList"]}
    (a_start, a_end), (b_start, b_end), (c_start, _) = _dates(runs["a"]), _dates(runs["b"]), _dates(runs["c"])
    assert b_start < a_end and a_start < b_end  # a and b overlapped
    assert c_start > max(a_end, b_end)


def test_a_dag_sibling_claimed_after_the_failure_is_cancelled_too(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(DAG_FAIL_FAST)

    execution = stack.run_to_end(unique_namespace, "dag-fail-fast", timeout_s=30)

    assert execution["state"]["current"] == "FAILED"
    runs = {t["taskId"]: t for t in execution["taskRunList"]}
    assert runs["fails_fast"]["state"]["current"] == "FAILED"
    assert runs["sleep"]["state"]["current"] == "CANCELLED"  # not its full 10 s


EXIT_CANCELLED = """
id: exit-cancelled
namespace: {ns}
tasks:
  - id: if
    type: io.kestra.plugin.core.flow.If
    condition: "false"
    then:
      - id: continue
        type: io.kestra.plugin.core.log.Log
        message: continuing
    else:
      - id: exit
        type: io.kestra.plugin.core.execution.Exit
        state: CANCELLED
  - id: end
    type: io.kestra.plugin.core.log.Log
    message: never
"""


def test_exit_cancelled_ends_the_execution_and_its_parents_cancelled(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(EXIT_CANCELLED)

    execution = stack.run_to_end(unique_namespace, "exit-cancelled")

    assert execution["state"]["current"] == "CANCELLED"
    assert {t["taskId"]: t["state"]["current"] for t in execution["taskRunList"]} == {
        "if": "CANCELLED",
        "exit": "CANCELLED",
    }
