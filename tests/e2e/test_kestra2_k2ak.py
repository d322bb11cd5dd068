"""Kestra 2.x test flows (slice k2ak, issue 19) on the real stack: retry `maxAttempts`, optional flow
outputs, a concurrent ForEach with errors and finally, and the Flow triggers of MultipleConditionTriggerCaseTest."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness.executions import task_runs
from tests.harness.stack import Stack

# Kestra 0.24 renamed the retry's `maxAttempt` to `maxAttempts` and kept the old name as an alias
# (kestra.io/docs/migration-guide/v0.24.0/retries-maxattempts); allow-failure-with-retry.yaml uses the new one.
RETRIED = """
id: retried
namespace: {ns}
tasks:
  - id: new_name
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
    retry: {type: constant, interval: PT0.1S, maxAttempts: 3}
  - id: old_name
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
    retry: {type: constant, interval: PT0.1S, maxAttempt: 2}
"""

NO_ATTEMPT = """
id: no-attempt
namespace: {ns}
tasks:
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: never
    retry: {type: constant, interval: PT1S, maxAttempts: 0}
"""

# flow-with-optional-outputs.yml, plus a required output in the second flow.
OPTIONAL_OUTPUT = """
id: optional-output
namespace: {ns}
tasks:
  - {id: return, type: io.kestra.plugin.core.debug.Return, format: "{{ flow.id }}"}
outputs:
  - {id: optional, value: "{{ outputs.invalid-task }}", type: STRING, required: false}
  - {id: kept, value: "{{ outputs.return.value }}", type: STRING}
"""

REQUIRED_OUTPUT = """
id: required-output
namespace: {ns}
tasks:
  - {id: return, type: io.kestra.plugin.core.debug.Return, format: "{{ flow.id }}"}
outputs:
  - {id: required, value: "{{ outputs.invalid-task }}", type: STRING}
"""

# finally-foreach.yaml without `childFailurePolicy`, a property of the unmerged kestra-io/kestra#15366.
EACH = """
id: each-finally
namespace: {ns}
inputs:
  - {id: failed, type: BOOL, defaults: false}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: '["1", "2", "3"]'
    concurrencyLimit: 0
    tasks:
      - id: if
        type: io.kestra.plugin.core.flow.If
        condition: "{{ inputs.failed == false }}"
        then:
          - {id: ok, type: io.kestra.plugin.core.debug.Return, format: "{{ task.id }}"}
        else:
          - {id: ko, type: io.kestra.plugin.core.execution.Fail}
    errors:
      - {id: e1, type: io.kestra.plugin.core.debug.Return, format: "{{ task.id }}"}
      - {id: e2, type: io.kestra.plugin.core.debug.Return, format: "{{ task.id }}"}
    finally:
      - {id: a1, type: io.kestra.plugin.core.debug.Return, format: "{{ task.id }}"}
      - {id: a2, type: io.kestra.plugin.core.debug.Return, format: "{{ task.id }}"}
"""


def test_retry_reads_max_attempts_and_its_old_name_max_attempt(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(RETRIED)

    execution = stack.run_to_end(unique_namespace, "retried")

    assert execution["state"]["current"] == "WARNING"
    [new_name] = task_runs(execution, "new_name")
    [old_name] = task_runs(execution, "old_name")
    assert len(new_name["attempts"]) == 3
    assert len(old_name["attempts"]) == 2


def test_max_attempts_below_one_is_refused_naming_the_field(stack: Stack, unique_namespace: str) -> None:
    response = stack.api.post(
        "/flows",
        content=NO_ATTEMPT.replace("{ns}", unique_namespace),
        headers={"Content-Type": "application/x-yaml"},
    )

    assert response.status_code == 422, response.text
    [error] = response.json()["_embedded"]["errors"]
    assert error["path"] == "tasks[0].retry.maxAttempts"
    assert error["line"] == 8


def test_an_optional_output_that_cannot_be_rendered_is_null_and_the_execution_succeeds(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(OPTIONAL_OUTPUT)

    execution = stack.run_to_end(unique_namespace, "optional-output")

    assert execution["state"]["current"] == "SUCCESS"
    assert execution["outputs"] == {"optional": None, "kept": "optional-output"}
    logs = stack.api.get(f"/logs/{execution['id']}").json()
    [warning] = [line for line in logs if line["level"] == "WARN"]
    assert warning["message"].startswith("Failed to render optional flow output 'optional'. Output is ignored")


def test_a_required_output_that_cannot_be_rendered_fails_the_execution(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(REQUIRED_OUTPUT)

    execution = stack.run_to_end(unique_namespace, "required-output")

    assert execution["state"]["current"] == "FAILED"
    assert not execution.get("outputs")


def test_a_concurrent_foreach_runs_its_errors_then_its_finally(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(EACH)

    ok = stack.run_to_end(unique_namespace, "each-finally")
    failed = stack.run_to_end(unique_namespace, "each-finally", failed="true")

    # FinallyTest.forEachWithoutErrors / forEachWithErrors
    assert (ok["state"]["current"], len(ok["taskRunList"])) == ("SUCCESS", 9)
    assert (failed["state"]["current"], len(failed["taskRunList"])) == ("FAILED", 11)
    states = {r["taskId"]: r["state"]["current"] for r in failed["taskRunList"]}
    assert [states[t] for t in ("ko", "e1", "e2", "a1", "a2")] == ["FAILED"] + ["SUCCESS"] * 4
    assert not task_runs(ok, "e1")


# ---- Flow triggers of Kestra 2.x (MultipleConditionTriggerCaseTest), from the fixture files -------------------

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kestra_more" / "flows"
_PREFIX = "io.kestra.tests.trigger."


def _deploy_group(stack: Stack, unique_namespace: str, group: str, flow_ids: list[str]) -> str:
    """Deploy fixture flows of `io.kestra.tests.trigger.<group>` into a namespace of this test's own."""
    namespace = f"{unique_namespace}.{group}"
    for flow_id in flow_ids:
        source = (FIXTURES / f"{_PREFIX}{group}" / f"{flow_id}.yaml").read_text()
        stack.deploy(source.replace(_PREFIX, f"{unique_namespace}."))
    return namespace


def _listener_runs(stack: Stack, namespace: str, flow_id: str, count: int, *, within_s: float) -> list[dict[str, Any]]:
    """The ended executions of `flow_id` once there are `count` of them, or after `within_s` whatever there are."""
    deadline = time.monotonic() + within_s
    while True:
        found = stack.api.get("/executions/search", params={"namespace": namespace, "flowId": flow_id}).json()
        ended = [r for r in found["results"] if r["state"]["current"] not in ("CREATED", "QUEUED", "RUNNING")]
        if (count and len(ended) >= count) or time.monotonic() > deadline:
            return ended
        time.sleep(0.2)


def test_flow_trigger_mode_at_least_fires_once_min_satisfied_upstreams_succeeded(
    stack: Stack, unique_namespace: str
) -> None:
    flows = [f"flow-trigger-at-least-mode-flow-{x}" for x in "abc"] + ["flow-trigger-at-least-mode-flow-listen"]
    namespace = _deploy_group(stack, unique_namespace, "at.least.mode", flows)

    stack.run_to_end(namespace, "flow-trigger-at-least-mode-flow-a")
    assert not _listener_runs(stack, namespace, flows[-1], 0, within_s=1)  # 1 of minSatisfied: 2
    stack.run_to_end(namespace, "flow-trigger-at-least-mode-flow-b")

    [listener] = _listener_runs(stack, namespace, flows[-1], 1, within_s=15)
    assert (listener["state"]["current"], len(listener["taskRunList"])) == ("SUCCESS", 1)


def test_flow_trigger_mode_any_fires_on_one_upstream(stack: Stack, unique_namespace: str) -> None:
    flows = ["flow-trigger-any-mode-flow-a", "flow-trigger-any-mode-flow-b", "flow-trigger-any-mode-flow-listen"]
    namespace = _deploy_group(stack, unique_namespace, "any.mode", flows)

    stack.run_to_end(namespace, "flow-trigger-any-mode-flow-a")

    [listener] = _listener_runs(stack, namespace, flows[-1], 1, within_s=15)
    assert listener["state"]["current"] == "SUCCESS"


def test_flow_trigger_window_fire_once_clears_what_was_satisfied(stack: Stack, unique_namespace: str) -> None:
    flows = [f"flow-trigger-fire-once-true-flow-{x}" for x in "ab"] + ["flow-trigger-fire-once-true-flow-listen"]
    namespace = _deploy_group(stack, unique_namespace, "fire.once.true", flows)

    stack.run_to_end(namespace, "flow-trigger-fire-once-true-flow-a")
    stack.run_to_end(namespace, "flow-trigger-fire-once-true-flow-b")
    [first] = _listener_runs(stack, namespace, flows[-1], 1, within_s=15)
    stack.run_to_end(namespace, "flow-trigger-fire-once-true-flow-a")  # flow-b must succeed again first

    assert [r["id"] for r in _listener_runs(stack, namespace, flows[-1], 2, within_s=3)] == [first["id"]]


def test_flow_trigger_when_reads_the_upstream_labels(stack: Stack, unique_namespace: str) -> None:
    flows = ["flow-trigger-when-condition-flow-a", "flow-trigger-when-condition-flow-listen"]
    namespace = _deploy_group(stack, unique_namespace, "when.condition", flows)

    stack.run_to_end(namespace, "flow-trigger-when-condition-flow-a")

    # its own execution ends too, and its labels (none) do not satisfy `when`: one execution only
    [listener] = _listener_runs(stack, namespace, flows[-1], 2, within_s=4)
    assert listener["state"]["current"] == "SUCCESS"


def test_flow_trigger_inputs_that_cannot_be_rendered_give_a_failed_execution_without_task_runs(
    stack: Stack, unique_namespace: str
) -> None:
    flows = ["flow-trigger-invalid-inputs-flow-a", "flow-trigger-invalid-inputs-flow-listen"]
    namespace = _deploy_group(stack, unique_namespace, "invalid.inputs", flows)

    stack.run_to_end(namespace, "flow-trigger-invalid-inputs-flow-a")

    [listener] = _listener_runs(stack, namespace, flows[-1], 1, within_s=15)
    assert listener["state"]["current"] == "FAILED"
    assert not listener.get("taskRunList")


def test_a_flow_trigger_on_another_namespace_deploys_with_a_warning(stack: Stack, unique_namespace: str) -> None:
    source = (FIXTURES / f"{_PREFIX}mixed.conditions" / "flow-trigger-mixed-conditions-flow-listen.yaml").read_text()

    response = stack.api.post(
        "/flows",
        content=source.replace(_PREFIX, f"{unique_namespace}."),
        headers={"Content-Type": "application/x-yaml"},
    )

    # It deploys (as in Kestra); validate warns that the trigger's namespace may not read the other one, and the
    # trigger never sees that namespace's executions (tests/security/test_namespace_isolation.py).
    assert response.status_code == 200, response.text
    [verdict] = stack.api.post(
        "/flows/validate",
        content=source.replace(_PREFIX, f"{unique_namespace}."),
        headers={"Content-Type": "application/x-yaml"},
    ).json()
    assert any("CHORUS_NAMESPACE_ACCESS" in w for w in verdict["warnings"]), verdict


# ---- A restart counts against the flow's concurrency limit (kestra-io/kestra#10674) ---------------------------

QUEUE_FAIL = """
id: queue-fail
namespace: {ns}
concurrency: {behavior: QUEUE, limit: 1}
tasks:
  - {id: sleep, type: io.kestra.plugin.core.flow.Sleep, duration: PT2S}
  - {id: fail, type: io.kestra.plugin.core.execution.Fail}
"""

CANCEL_FAIL = """
id: cancel-fail
namespace: {ns}
concurrency: {behavior: CANCEL, limit: 1}
inputs:
  - {id: wait, type: STRING, defaults: PT0S}
tasks:
  - {id: sleep, type: io.kestra.plugin.core.flow.Sleep, duration: "{{ inputs.wait }}"}
  - {id: fail, type: io.kestra.plugin.core.execution.Fail}
"""


def _history(execution: dict[str, Any]) -> list[str]:
    return [h["state"] for h in execution["state"]["histories"]]


def test_a_restart_over_the_concurrency_limit_is_queued_until_a_slot_frees(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyQueueRestarted with flow-concurrency-queue-fail.yml."""
    deploy_flow(QUEUE_FAIL)
    first = stack.run(unique_namespace, "queue-fail")["id"]
    stack.wait_for_state(first, {"RUNNING"})
    second = stack.run(unique_namespace, "queue-fail")["id"]
    stack.wait_for_state(first, {"FAILED"})
    stack.wait_for_state(second, {"RUNNING"})

    restarted = stack.api.post(f"/executions/{first}/restart")
    assert restarted.status_code == 200, restarted.text
    assert stack.api.get(f"/executions/{first}").json()["state"]["current"] == "QUEUED"  # second holds the slot

    again = stack.wait_for_state(first, {"FAILED"}, timeout_s=30)
    other = stack.wait_for_state(second)
    assert _history(again)[-4:] == ["RESTARTED", "QUEUED", "RUNNING", "FAILED"]
    assert other["state"]["current"] == "FAILED"
    assert _history(other)[:3] == ["CREATED", "QUEUED", "RUNNING"]
    [sleep] = task_runs(again, "sleep")
    assert sleep["state"]["current"] == "SUCCESS" and len(sleep["attempts"]) == 1  # only the failed task reran


def test_a_restart_refused_by_a_cancel_limit_leaves_the_execution_as_it_ended(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CANCEL_FAIL)
    failed = stack.run_to_end(unique_namespace, "cancel-fail")
    running = stack.run(unique_namespace, "cancel-fail", wait="PT5S")["id"]
    stack.wait_for_state(running, {"RUNNING"})

    refused = stack.api.post(f"/executions/{failed['id']}/restart")
    after = stack.api.get(f"/executions/{failed['id']}").json()

    assert refused.status_code == 409, refused.text
    assert "concurrency limit" in refused.json()["message"]
    assert after["state"]["current"] == "FAILED" and _history(after) == _history(failed)
    assert stack.wait_for_state(running)["state"]["current"] == "FAILED"
    assert stack.api.post(f"/executions/{failed['id']}/restart").status_code == 200  # a free slot: it restarts


def test_replay_with_inputs_on_kestras_path_starts_a_child_with_the_new_inputs(
    stack: Stack, unique_namespace: str
) -> None:
    """ExecutionControllerTest.restartExecutionWithNewInputs and ...FromTaskIdWithInputs (condition_with_input.yaml)."""
    source = (FIXTURES / "io.kestra.tests" / "condition_with_input.yaml").read_text()
    stack.deploy(source.replace("namespace: io.kestra.tests", f"namespace: {unique_namespace}"))
    failed = stack.run_to_end(unique_namespace, "condition_with_input", condition="fail")
    assert failed["state"]["current"] == "FAILED"
    [fail] = task_runs(failed, "fail")

    for params in ({}, {"taskRunId": fail["id"]}):
        response = stack.api.post(
            f"/executions/{failed['id']}/replay-with-inputs", params=params, files={"condition": (None, "success")}
        )
        assert response.status_code == 200, response.text
        child = stack.wait_for_state(response.json()["id"])
        assert child["parentId"] == failed["id"] and child["inputs"] == {"condition": "success"}
        assert len(child["taskRunList"]) == 2
        assert {r["state"]["current"] for r in child["taskRunList"]} <= {"SUCCESS", "SKIPPED"}

    missing = stack.api.post("/executions/no-such-execution/replay-with-inputs", files={"condition": (None, "x")})
    assert missing.status_code == 404, missing.text  # neither an execution nor a flow of that name


def test_a_failed_task_set_to_success_restarts_without_the_errors_branch(stack: Stack, unique_namespace: str) -> None:
    """ExecutionServiceTest.changeStateWithErrorBranch (change-state-errors.yaml)."""
    source = (FIXTURES / "io.kestra.tests" / "change-state-errors.yaml").read_text()
    stack.deploy(source.replace("namespace: io.kestra.tests", f"namespace: {unique_namespace}"))
    failed = stack.run_to_end(unique_namespace, "change-state-errors")
    assert (failed["state"]["current"], len(failed["taskRunList"])) == ("FAILED", 3)
    [make_error] = task_runs(failed, "make_error")

    response = stack.api.post(
        f"/executions/{failed['id']}/state", json={"taskRunId": make_error["id"], "state": "SUCCESS"}
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["state"]["current"] == "RESTARTED"
    assert _history(answer)[:4] == ["CREATED", "RUNNING", "FAILED", "RESTARTED"]
    assert [r["taskId"] for r in answer["taskRunList"]][:2] == ["before_task", "make_error"]
    assert not task_runs(answer, "print_error_log")
    ended = stack.wait_for_state(failed["id"], {"SUCCESS", "FAILED", "WARNING"})
    assert ended["state"]["current"] == "SUCCESS"
    assert [r["taskId"] for r in ended["taskRunList"]] == ["before_task", "make_error", "after-task"]

    running = {"taskRunId": make_error["id"], "state": "RUNNING"}
    again = stack.api.post(f"/executions/{failed['id']}/state", json=running)
    assert again.status_code == 409, again.text  # only an ended state may be set
    assert again.json()["message"] == "a task run can only be set to FAILED, KILLED, SUCCESS, WARNING, not RUNNING"


ON_SUCCESS_ONLY = """
id: on-success-only
namespace: {ns}.paused
triggers:
  - id: flow
    type: io.kestra.plugin.core.trigger.Flow
    states: [SUCCESS]
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: "{ns}.paused"
        flowId: flow-trigger-paused-flow
tasks:
  - {id: only, type: io.kestra.plugin.core.debug.Return, format: "{{ trigger.state }}"}
"""


def test_a_flow_trigger_is_evaluated_when_an_upstream_execution_pauses(stack: Stack, unique_namespace: str) -> None:
    """MultipleConditionTriggerCaseTest.flowTriggerOnPaused (kestra-io/kestra#8620: PAUSED is evaluated too)."""
    flows = ["flow-trigger-paused-flow", "flow-trigger-paused-listen"]
    namespace = _deploy_group(stack, unique_namespace, "paused", flows)
    stack.deploy(ON_SUCCESS_ONLY.replace("{ns}", unique_namespace))

    upstream = stack.run_to_end(namespace, "flow-trigger-paused-flow")
    assert (upstream["state"]["current"], len(upstream["taskRunList"])) == ("SUCCESS", 2)

    [on_paused] = _listener_runs(stack, namespace, "flow-trigger-paused-listen", 2, within_s=4)
    assert (on_paused["state"]["current"], len(on_paused["taskRunList"])) == ("SUCCESS", 1)
    assert on_paused["trigger"]["variables"]["state"] == "PAUSED"
    # states: [SUCCESS] keeps a trigger to the end: it fires once, not when the upstream paused
    [on_success] = _listener_runs(stack, namespace, "on-success-only", 2, within_s=2)
    assert on_success["taskRunList"][0]["outputs"]["value"] == "SUCCESS"


def test_killing_a_parent_kills_its_queued_subflow_before_a_slot_frees_for_it(
    stack: Stack, unique_namespace: str
) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyParallelSubflowKill (flow-concurrency-parallel-subflow-kill*.yaml)."""
    names = ["grandchild", "child", ""]
    for suffix in names:
        flow_id = "flow-concurrency-parallel-subflow-kill" + (f"-{suffix}" if suffix else "")
        source = (FIXTURES / "io.kestra.tests" / f"{flow_id}.yaml").read_text()
        stack.deploy(source.replace("namespace: io.kestra.tests", f"namespace: {unique_namespace}"))
    parent = stack.run(unique_namespace, "flow-concurrency-parallel-subflow-kill")["id"]
    child_flow = "flow-concurrency-parallel-subflow-kill-child"
    queued: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while not queued and time.monotonic() < deadline:
        found = stack.api.get("/executions/search", params={"namespace": unique_namespace, "flowId": child_flow})
        queued = [r for r in found.json()["results"] if r["state"]["current"] == "QUEUED"]
        time.sleep(0.1)
    assert queued, "no child execution was queued by its flow's concurrency limit"

    assert stack.api.delete(f"/executions/{parent}/kill").status_code in (200, 202, 204)

    ended = stack.wait_for_state(queued[0]["id"])
    assert ended["state"]["current"] == "KILLED"
    assert "RUNNING" not in _history(ended)
    assert not ended.get("taskRunList")
    assert stack.wait_for_state(parent)["state"]["current"] == "KILLED"


def test_reordering_depends_on_keeps_what_the_window_already_counted(stack: Stack, unique_namespace: str) -> None:
    """FlowTriggerCaseTest.triggerDependsOnWithStableConditionId (flow-trigger-stable-condition-id-*.yaml)."""
    listen = "flow-trigger-stable-condition-id-flow-listen"
    flows = ["flow-trigger-stable-condition-id-flow-a", "flow-trigger-stable-condition-id-flow-b", listen]
    namespace = _deploy_group(stack, unique_namespace, "stable.condition.id", flows)
    stack.run_to_end(namespace, "flow-trigger-stable-condition-id-flow-a")
    assert not _listener_runs(stack, namespace, listen, 0, within_s=1)

    source = (FIXTURES / f"{_PREFIX}stable.condition.id" / f"{listen}.yaml").read_text()
    head, first, second = source.split("      - namespace:")
    second, tasks = second.split("\n\ntasks:")
    inverted = f"{head}      - namespace:{second}\n      - namespace:{first.rstrip()}\n\ntasks:{tasks}"
    updated = stack.api.put(
        f"/flows/{namespace}/{listen}",
        content=inverted.replace(_PREFIX, f"{unique_namespace}."),
        headers={"Content-Type": "application/x-yaml"},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["triggers"][0]["dependsOn"][0]["flowId"].endswith("flow-b")
    stack.run_to_end(namespace, "flow-trigger-stable-condition-id-flow-b")

    [listener] = _listener_runs(stack, namespace, listen, 1, within_s=15)
    assert (listener["state"]["current"], len(listener["taskRunList"])) == ("SUCCESS", 1)


# flow-concurrency-cancel.yml of Kestra's valids (the snapshot's), the child of flow-concurrency-subflow.yml
CONCURRENCY_CANCEL = """
id: flow-concurrency-cancel
namespace: {ns}
concurrency: {behavior: CANCEL, limit: 1}
tasks:
  - {id: sleep, type: io.kestra.plugin.core.flow.Sleep, duration: PT2S}
"""


def test_a_subflow_cancelled_by_its_concurrency_limit_completes_its_waiting_parent(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencySubflow (flow-concurrency-subflow.yml)."""
    deploy_flow(CONCURRENCY_CANCEL)
    source = (FIXTURES / "io.kestra.tests" / "flow-concurrency-subflow.yaml").read_text()
    stack.deploy(source.replace("io.kestra.tests", unique_namespace))
    first = stack.run(unique_namespace, "flow-concurrency-subflow")["id"]
    stack.wait_for_state(first, {"RUNNING"})

    second = stack.run_to_end(unique_namespace, "flow-concurrency-subflow", timeout_s=20)

    assert second["state"]["current"] == "SUCCESS"  # Kestra's guessState: a CANCELLED child is no failure
    assert stack.wait_for_state(first)["state"]["current"] == "SUCCESS"
    found = stack.api.get(
        "/executions/search", params={"namespace": unique_namespace, "flowId": "flow-concurrency-cancel"}
    )
    assert sorted(r["state"]["current"] for r in found.json()["results"]) == ["CANCELLED", "SUCCESS"]
    third = stack.run_to_end(unique_namespace, "flow-concurrency-subflow")
    assert third["state"]["current"] == "SUCCESS"
