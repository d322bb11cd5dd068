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


EACH_SEQUENTIAL_NESTED = """
id: each-sequential-nested
namespace: {ns}

tasks:
  - id: 1_each
    type: io.kestra.plugin.core.flow.EachSequential
    value: ["s1", "s2", "s3"]
    tasks:
      - id: 1-1_return
        type: io.kestra.plugin.core.debug.Return
        format: "{{task.id}} > {{taskrun.value}} > {{taskrun.startDate}}"
      - id: 1-2_each
        type: io.kestra.plugin.core.flow.EachSequential
        value: '["a a", "b b"]'
        tasks:
          - id: 1-2-1_return
            type: io.kestra.plugin.core.debug.Return
            format: "{{task.id}} > {{taskrun.value}} > {{taskrun.startDate}}"
          - id: 1-2-2_return
            type: io.kestra.plugin.core.debug.Return
            format: "{{task.id}} > {{ outputs['1-2-1_return'].s1[taskrun.value].value }}"
      - id: 1-3_return
        type: io.kestra.plugin.core.debug.Return
        format: "{{task.id}} > {{ outputs['1-1_return'][taskrun.value].value }} > {{taskrun.startDate}}"
  - id: 2_return
    type: io.kestra.plugin.core.debug.Return
    format: "{{task.id}} > {{outputs['1-2-1_return'].s1['a a'].value}}"
"""


def test_an_expression_is_evaluated_in_a_task_runs_context(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """ExecutionControllerTest.eval: text, `taskrun.id`, outputs by the task run's loop value, and an error."""
    deploy_flow(EACH_SEQUENTIAL_NESTED)
    execution = stack.run_to_end(unique_namespace, "each-sequential-nested")
    runs = execution["taskRunList"]
    assert execution["state"]["current"] == "SUCCESS" and len(runs) == 23

    def evaluate(expression: str, index: int) -> dict[str, Any]:
        url = f"/executions/{execution['id']}/eval/{runs[index]['id']}"
        response = stack.api.post(url, content=expression, headers={"Content-Type": "text/plain"})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    assert evaluate("my simple string", 0)["result"] == "my simple string"
    assert evaluate("{{ taskrun.id }}", 0)["result"] == runs[0]["id"]
    by_value = evaluate("{{ outputs['1-1_return'][taskrun.value].value }}", 21)
    assert runs[21]["taskId"] == "1-3_return" and by_value["result"].startswith(f"1-1_return > {runs[21]['value']} > ")
    missing = evaluate("{{ missing }}", 21)
    assert missing["result"] is None
    assert "Unable to find `missing` used in the expression `{{ missing }}` at line 1" in missing["error"]
    assert "Unable to find `missing`" in missing["stackTrace"]


def test_evaluating_in_an_unknown_task_run_or_with_a_secret_is_refused(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """An unknown task run is a 404 naming it; functions reaching outside the execution are not given."""
    deploy_flow(EACH_SEQUENTIAL_NESTED)
    execution = stack.run_to_end(unique_namespace, "each-sequential-nested")
    first = execution["taskRunList"][0]["id"]
    text = {"Content-Type": "text/plain"}

    unknown = stack.api.post(f"/executions/{execution['id']}/eval/nope", content="x", headers=text)
    secret = stack.api.post(f"/executions/{execution['id']}/eval/{first}", content="{{ secret('X') }}", headers=text)

    assert unknown.status_code == 404 and "nope" in unknown.text
    assert secret.status_code == 200 and "not available here" in secret.json()["error"]


SECRET_INPUT = """
id: secret-input
namespace: {ns}
inputs:
  - id: password
    type: SECRET
  - id: user
    type: STRING
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.user }}"
"""


def test_evaluating_never_reveals_a_secret_input_to_a_reader(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """Reading an execution shows SECRET inputs masked; evaluating in its context must not be a way around it."""
    deploy_flow(SECRET_INPUT)
    execution = stack.run_to_end(unique_namespace, "secret-input", password="hunter2-s3cret", user="ada")
    assert execution["state"]["current"] == "SUCCESS"
    first = execution["taskRunList"][0]["id"]
    text = {"Content-Type": "text/plain"}

    def evaluate(expression: str) -> Any:
        response = stack.api.post(f"/executions/{execution['id']}/eval/{first}", content=expression, headers=text)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    assert evaluate("{{ inputs.user }}") == "ada"
    for probe in ("{{ inputs.password }}", "{{ inputs }}", "{{ inputs['password'] | upper }}", "{{ inputs | json }}"):
        assert "hunter2" not in str(evaluate(probe)).lower(), probe
    assert evaluate("{{ inputs.password }}") == "******"
