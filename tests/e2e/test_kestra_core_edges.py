"""Edge behaviours of Kestra's core types, on the real stack, as Kestra's own Java tests assert them.

Each test names the Kestra test it follows; its flow is Kestra's test flow (core/src/test/resources/flows/valids)
moved into the test's namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

Deploy = Callable[[str], dict[str, Any]]

WAITFOR_MULTIPLE_TASKS = """
id: waitfor-multiple-tasks
namespace: {ns}
tasks:
  - id: waitfor
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "{{ outputs.output_values.values.count == '4'}}"
    checkFrequency:
      interval: PT0.1S
    tasks:
      - id: echo
        type: io.kestra.core.tasks.log.Log
        message: "looping ..."
      - id: output_values
        type: io.kestra.plugin.core.output.OutputValues
        values:
          count: "{{ outputs.waitfor.iterationCount + 1 }}"
"""

WAITFOR_MAX_ITERATIONS = """
id: waitfor-max-iterations
namespace: {ns}
tasks:
  - id: waitfor
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "{{ outputs.output_values.values.count == '10'}}"
    checkFrequency:
      maxIterations: 3
      interval: PT0.1S
    failOnMaxReached: true
    tasks:
      - id: output_values
        type: io.kestra.plugin.core.output.OutputValues
        values:
          count: "{{ outputs.waitfor.iterationCount + 1 }}"
"""

EACH_NULL = """
id: each-null
namespace: {ns}
tasks:
  - id: 1_each
    type: io.kestra.plugin.core.flow.ForEach
    values: '[1, null, {"key": "my-key", "value": "my-value"}]'
    tasks:
      - id: 1-1
        type: io.kestra.plugin.core.debug.Return
        format: "{{task.id}} > {{taskrun.value}}"
  - id: 2_end
    type: io.kestra.plugin.core.debug.Return
    format: "{{task.id}}"
"""

SLA_EXECUTION_CONDITION = """
id: sla-execution-condition
namespace: {ns}
inputs:
  - id: string
    type: SELECT
    values: [PASS, CANCEL, LABEL]
    defaults: PASS
sla:
  - id: condition
    type: EXECUTION_ASSERTION
    behavior: CANCEL
    assert: "{{inputs.string != 'CANCEL'}}"
  - id: condition
    type: EXECUTION_ASSERTION
    behavior: NONE
    assert: "{{inputs.string != 'LABEL'}}"
    labels:
      sla: violated
tasks:
  - id: return
    type: io.kestra.plugin.core.debug.Return
    format: "true"
"""

WORKING_DIRECTORY_TASKRUN = """
id: working-directory-taskrun
namespace: {ns}
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.ForEach
    concurrencyLimit: 0
    values: ["1"]
    tasks:
      - id: workingDir
        type: io.kestra.plugin.core.flow.WorkingDirectory
        tasks:
          - id: log-taskrun
            type: io.kestra.plugin.core.debug.Return
            format: "{{ taskrun.value }}"
"""

STATE = """
id: state
namespace: {ns}
inputs:
  - id: name
    type: STRING
tasks:
  - id: get
    type: io.kestra.plugin.core.state.Get
    name: "{{ inputs.name }}"
  - id: set
    type: io.kestra.plugin.core.state.Set
    name: "{{ inputs.name }}"
    data:
      writer: "{{ execution.id }}"
  - id: reget
    type: io.kestra.plugin.core.state.Get
    name: "{{ inputs.name }}"
"""


def _outputs(execution: dict[str, Any], task_id: str) -> list[Any]:
    return [r.get("outputs") for r in execution["taskRunList"] if r["taskId"] == task_id]


def test_wait_for_loops_until_its_condition_holds(stack: Stack, deploy_flow: Deploy, unique_namespace: str) -> None:
    """WaitForCaseTest.waitforMultipleTasks (and LoopUntilCaseTest's): count "4", the loop's iterationCount 3."""
    deploy_flow(WAITFOR_MULTIPLE_TASKS)

    execution = stack.run_to_end(unique_namespace, "waitfor-multiple-tasks")

    assert execution["state"]["current"] == "SUCCESS"
    assert execution["taskRunList"][-1]["outputs"]["values"]["count"] == "4"
    assert execution["taskRunList"][0]["outputs"]["iterationCount"] == 3


def test_wait_for_fails_once_past_max_iterations(stack: Stack, deploy_flow: Deploy, unique_namespace: str) -> None:
    """WaitForCaseTest.waitforMaxIterations (and LoopUntilCaseTest's: iterationCount 4)."""
    deploy_flow(WAITFOR_MAX_ITERATIONS)

    execution = stack.run_to_end(unique_namespace, "waitfor-max-iterations")

    assert execution["state"]["current"] == "FAILED"
    assert [o["values"]["count"] for o in _outputs(execution, "output_values")] == ["2", "3", "4"]
    assert execution["taskRunList"][0]["outputs"]["iterationCount"] == 4


def test_a_null_loop_value_fails_the_loop_before_any_iteration(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """EachSequentialTest.eachNull: one task run, FAILED, and Kestra's message in the logs."""
    deploy_flow(EACH_NULL)

    execution = stack.run_to_end(unique_namespace, "each-null")

    assert execution["state"]["current"] == "FAILED"
    assert len(execution["taskRunList"]) == 1
    logs = stack.api.get(f"/logs/{execution['id']}").json()
    expected = "Found '1' null values on Each, with values=[1, null, {key=my-key, value=my-value}]"
    assert any(expected in line["message"] for line in logs)


def test_an_execution_assertion_sla_cancels_or_labels_the_execution(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """SLATestCase.executionConditionSLAShouldPass / ShouldCancel / ShouldLabel."""
    deploy_flow(SLA_EXECUTION_CONDITION)

    passed = stack.run_to_end(unique_namespace, "sla-execution-condition")
    cancelled = stack.run_to_end(unique_namespace, "sla-execution-condition", string="CANCEL")
    labelled = stack.run_to_end(unique_namespace, "sla-execution-condition", string="LABEL")

    assert passed["state"]["current"] == "SUCCESS"
    assert cancelled["state"]["current"] == "CANCELLED"
    assert labelled["state"]["current"] == "SUCCESS"
    assert {"key": "sla", "value": "violated"} in labelled["labels"]


def test_a_working_directory_child_sees_the_loop_value(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """WorkingDirectoryTest.taskrun: `taskrun.value` inside a WorkingDirectory in a ForEach is the loop value."""
    deploy_flow(WORKING_DIRECTORY_TASKRUN)

    execution = stack.run_to_end(unique_namespace, "working-directory-taskrun")

    assert execution["state"]["current"] == "SUCCESS"
    assert len(execution["taskRunList"]) == 3
    assert _outputs(execution, "log-taskrun") == [{"value": "1"}]


def test_the_state_store_keeps_a_flows_state_across_executions(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """StateTest.set: a state written by one execution is read by the next."""
    deploy_flow(STATE)

    first = stack.run_to_end(unique_namespace, "state", name="counter")
    second = stack.run_to_end(unique_namespace, "state", name="counter")

    assert _outputs(first, "get") == [{"count": 0, "data": {}}]
    assert _outputs(second, "get") == [{"count": 1, "data": {"writer": first["id"]}}]
    assert _outputs(second, "reget") == [{"count": 1, "data": {"writer": second["id"]}}]


WARNING_CHILD = """
id: warning-child
namespace: {ns}
tasks:
  - id: warn
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
"""

FAILING_GRANDCHILD = """
id: failing-grandchild
namespace: {ns}
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
"""

SUBFLOW = """
id: {id}
namespace: {ns}
tasks:
  - id: sub
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {ns}
    flowId: {child}
    transmitFailed: {transmit}
"""


def _subflow(flow_id: str, child: str, transmit: bool) -> str:
    return SUBFLOW.replace("{id}", flow_id).replace("{child}", child).replace("{transmit}", str(transmit).lower())


def test_a_warning_subflow_passes_its_state_on_only_with_transmit_failed(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """ExecutableUtils.guessState: WARNING is transmitted like FAILED; without transmitFailed it is a success."""
    deploy_flow(WARNING_CHILD)
    deploy_flow(_subflow("transmits", "warning-child", True))
    deploy_flow(_subflow("swallows", "warning-child", False))

    assert stack.run_to_end(unique_namespace, "transmits")["state"]["current"] == "WARNING"
    assert stack.run_to_end(unique_namespace, "swallows")["state"]["current"] == "SUCCESS"


def test_a_failure_travels_up_nested_subflows(stack: Stack, deploy_flow: Deploy, unique_namespace: str) -> None:
    """FlowCaseTest.waitFailed, one level deeper: each waiting parent fails with its child."""
    deploy_flow(FAILING_GRANDCHILD)
    deploy_flow(_subflow("middle", "failing-grandchild", True))
    deploy_flow(_subflow("top", "middle", True))

    top = stack.run_to_end(unique_namespace, "top")

    assert top["state"]["current"] == "FAILED"
    middle = stack.api.get(f"/executions/{top['taskRunList'][0]['outputs']['executionId']}").json()
    assert middle["state"]["current"] == "FAILED"
    assert middle["taskRunList"][0]["outputs"]["state"] == "FAILED"


EXIT = """
id: exit
namespace: {ns}
inputs:
  - id: state
    type: STRING
    defaults: CONTINUE
tasks:
  - id: if
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.state == 'CONTINUE' }}"
    then:
      - id: hello
        type: io.kestra.plugin.core.log.Log
        message: continuing
    else:
      - id: exit
        type: io.kestra.plugin.core.execution.Exit
        state: "{{ inputs.state }}"
  - id: end
    type: io.kestra.plugin.core.log.Log
    message: ending
"""


def test_exit_ends_the_execution_in_its_state_and_skips_the_rest(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """Kestra's Exit example: the Exit task run, its parents and the execution end in the exit state."""
    deploy_flow(EXIT)

    continued = stack.run_to_end(unique_namespace, "exit")
    killed = stack.run_to_end(unique_namespace, "exit", state="KILLED")
    warned = stack.run_to_end(unique_namespace, "exit", state="WARNING")
    refused = stack.run_to_end(unique_namespace, "exit", state="NOPE")

    assert continued["state"]["current"] == "SUCCESS" and len(continued["taskRunList"]) == 3
    killed_runs = [(r["taskId"], r["state"]["current"]) for r in killed["taskRunList"]]
    assert killed_runs == [("if", "KILLED"), ("exit", "KILLED")]
    assert killed["state"]["current"] == "KILLED"
    assert warned["state"]["current"] == "WARNING" and len(warned["taskRunList"]) == 2
    assert refused["state"]["current"] == "FAILED"


SWITCH_IMPOSSIBLE = """
id: switch-impossible
namespace: {ns}
inputs:
  - id: string
    type: STRING
tasks:
  - id: impossible
    type: io.kestra.plugin.core.flow.Switch
    value: "{{inputs.string}}"
    cases:
      "NO":
      - id: date
        type: io.kestra.plugin.core.debug.Return
        format: "{{taskrun.startDate}}"
    defaults: null
"""


def test_a_switch_with_no_matching_case_and_null_defaults_fails(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """SwitchTest.switchImpossible."""
    deploy_flow(SWITCH_IMPOSSIBLE)

    execution = stack.run_to_end(unique_namespace, "switch-impossible", string="impossible")

    assert execution["state"]["current"] == "FAILED"
    assert [r["taskId"] for r in execution["taskRunList"]] == ["impossible"]


SLOW_CHILD = """
id: slow-child
namespace: {ns}
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT20S
"""

KILL = """
id: kill-{propagate}
namespace: {ns}
tasks:
  - id: child
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {ns}
    flowId: slow-child
    wait: false
  - id: kill
    type: io.kestra.plugin.core.execution.Kill
    propagateKill: {propagate}
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: never
"""


def test_kill_ends_the_execution_killed_and_its_children_only_when_propagated(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """Kestra's Kill (execution.Kill): KILLED at once; `propagateKill` decides for the subflow executions."""
    deploy_flow(SLOW_CHILD)
    for propagate in ("true", "false"):
        deploy_flow(KILL.replace("{propagate}", propagate))

    propagated = stack.run_to_end(unique_namespace, "kill-true")
    kept = stack.run_to_end(unique_namespace, "kill-false")

    for execution in (propagated, kept):
        assert execution["state"]["current"] == "KILLED"
        assert [r["taskId"] for r in execution["taskRunList"]] == ["child", "kill"]
    killed_child = stack.wait_for_state(propagated["taskRunList"][0]["outputs"]["executionId"], timeout_s=10)
    kept_child = stack.api.get(f"/executions/{kept['taskRunList'][0]['outputs']['executionId']}").json()
    assert killed_child["state"]["current"] == "KILLED"
    assert kept_child["state"]["current"] in ("CREATED", "RUNNING")
