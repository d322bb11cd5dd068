"""Kestra 2's Loop on the real stack: the same execution as its 1.x ForEach twin, maps, declared outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

FOR_EACH = """
id: twin-1x
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", 3]
    concurrencyLimit: 1
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: "v={{ taskrun.value }} i={{ taskrun.iteration }}"
      - id: check
        type: io.kestra.plugin.core.flow.If
        condition: "{{ taskrun.value == 'b' }}"
        then:
          - id: nested
            type: io.kestra.plugin.core.debug.Return
            format: "nested {{ parent.taskrun.value }} after {{ outputs.first[parent.taskrun.value].value }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.first['b'].value }}"
"""

LOOP = """
id: twin-2x
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.Loop
    values: ["a", "b", 3]
    concurrencyLimit: 1
    outputs:
      - id: first
        type: STRING
        value: "{{ outputs.first.value }}"
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: "v={{ item.value }} i={{ item.index }}"
      - id: check
        type: io.kestra.plugin.core.flow.If
        condition: "{{ item.value == 'b' }}"
        then:
          - id: nested
            type: io.kestra.plugin.core.debug.Return
            format: "nested {{ item.value }} after {{ outputs.first.value }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.each.outputs[1].outputs.first }}"
"""

MAP_LOOP = """
id: loop-map
namespace: {ns}
tasks:
  - id: envs
    type: io.kestra.plugin.core.flow.Loop
    values:
      dev: http://dev
      prod: http://prod
    outputs:
      - id: line
        type: STRING
        value: "{{ outputs.show.value }}"
    tasks:
      - id: show
        type: io.kestra.plugin.core.debug.Return
        format: "{{ item.key }}={{ item.value }}"
  - id: all
    type: io.kestra.plugin.core.debug.Return
    format: "{{ loopOutputs(outputs.envs.outputs, 'line') | join(',') }}"
"""


def _shape(execution: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every task run (a Loop's iterations, listed apart in `loopTaskRunList` as Kestra 2 does, included),
    as (task id, value, state, output value), in a stable order."""
    runs = [*execution["taskRunList"], *execution.get("loopTaskRunList", [])]
    shape = [(r["taskId"], r.get("value"), r["state"]["current"], (r.get("outputs") or {}).get("value")) for r in runs]
    return sorted(shape, key=lambda row: tuple("" if x is None else str(x) for x in row))


def _top(execution: dict[str, Any]) -> list[str]:
    return [r["taskId"] for r in execution["taskRunList"]]


def test_a_loop_flow_and_its_for_each_twin_produce_the_same_task_runs_and_outputs(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(FOR_EACH)
    deploy_flow(LOOP)

    old = stack.run_to_end(unique_namespace, "twin-1x")
    new = stack.run_to_end(unique_namespace, "twin-2x")

    assert old["state"]["current"] == new["state"]["current"] == "SUCCESS"
    assert _shape(old) == _shape(new)
    assert ("nested", None, "SUCCESS", "nested b after v=b i=1") in _shape(new)
    assert ("after", None, "SUCCESS", "v=b i=1") in _shape(new)
    assert _top(new) == ["each", "after"]  # Kestra 2: the iterations' task runs are not the execution's
    assert len(new["loopTaskRunList"]) == len(old["taskRunList"]) - 2
    loop = new["taskRunList"][0]["outputs"]
    assert loop["iterationCount"] == 3
    assert loop["terminatedIterations"] == {"SUCCESS": 3}
    assert [o["item"] for o in loop["outputs"]] == [
        {"value": "a", "iteration": 0, "key": None},
        {"value": "b", "iteration": 1, "key": None},
        {"value": "3", "iteration": 2, "key": None},
    ]


def test_a_loop_over_a_map_reads_item_key_and_collects_declared_outputs(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(MAP_LOOP)

    execution = stack.run_to_end(unique_namespace, "loop-map")

    assert execution["state"]["current"] == "SUCCESS"
    assert ("all", None, "SUCCESS", "dev=http://dev,prod=http://prod") in _shape(execution)


def test_a_loop_whose_values_are_not_a_list_fails_its_task_run(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(
        MAP_LOOP.replace("id: loop-map", "id: loop-bad").replace(
            "values:\n      dev: http://dev\n      prod: http://prod", 'values: "not a list"'
        )
    )

    execution = stack.run_to_end(unique_namespace, "loop-bad")

    assert execution["state"]["current"] == "FAILED"
    assert execution["taskRunList"][0]["state"]["current"] == "FAILED"


FILE_LOOP = """
id: loop-file
namespace: {ns}
inputs:
  - id: file
    type: FILE
tasks:
  - id: lines
    type: io.kestra.plugin.core.flow.Loop
    values: "{{ inputs.file }}"
    concurrencyLimit: 2
    tasks:
      - id: line
        type: io.kestra.plugin.core.debug.Return
        format: "{{ item.index }}:{{ item.value }}"
"""

KEEP_GOING = """
id: loop-keep-going
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.Loop
    values: ["ok", "fail", "ok"]
    transmitFailed: false
    concurrencyLimit: 1
    tasks:
      - id: maybe
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ item.value == 'fail' }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.each.terminatedIterations | toJson }}"
"""


def test_a_loop_over_a_storage_uri_runs_one_iteration_per_line(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(FILE_LOOP)

    response = stack.api.post(
        f"/executions/{unique_namespace}/loop-file",
        files={"file": ("items.txt", b"red\ngreen\n\nblue\n", "text/plain")},
    )
    assert response.status_code == 200, response.text
    execution = stack.wait_for_state(response.json()["id"], timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS"
    assert sorted(v for (_, _, _, v) in _shape(execution) if v) == ["0:red", "1:green", "2:blue"]


def test_a_loop_that_does_not_transmit_failures_succeeds_and_the_flow_goes_on(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(KEEP_GOING)

    execution = stack.run_to_end(unique_namespace, "loop-keep-going")

    loop = execution["taskRunList"][0]
    assert loop["state"]["current"] == "SUCCESS"  # as Kestra's LoopCaseTest.loopTransmitFailedFalse
    assert loop["outputs"]["terminatedIterations"] == {"SUCCESS": 2, "FAILED": 1}
    assert execution["state"]["current"] == "SUCCESS"
    assert [r[1:3] for r in _shape(execution) if r[0] == "maybe"] == [
        ("fail", "FAILED"),
        ("ok", "SUCCESS"),
        ("ok", "SUCCESS"),
    ]
    assert _top(execution) == ["each", "after"]


def test_a_failed_iteration_ends_a_serial_loop_before_the_next_ones(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(KEEP_GOING.replace("    transmitFailed: false\n", "").replace("loop-keep-going", "loop-stops"))

    execution = stack.run_to_end(unique_namespace, "loop-stops")

    assert execution["state"]["current"] == "FAILED"  # as Kestra's LoopCaseTest.loopFailed
    assert [r[1:3] for r in _shape(execution) if r[0] == "maybe"] == [("fail", "FAILED"), ("ok", "SUCCESS")]
    assert execution["taskRunList"][0]["outputs"]["terminatedIterations"] == {"SUCCESS": 1, "FAILED": 1}


STORED = """
id: loop-stored
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.Loop
    values: ["value 1", "value 2"]
    fetchType: STORE
    outputs:
      - {id: value, type: STRING, value: "some output"}
    tasks:
      - {id: noop, type: io.kestra.plugin.core.debug.Return, format: "{{ item.value }}"}
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(outputs.each.outputs[0].outputs.uri) }}"
"""


def test_a_loop_that_stores_its_outputs_keeps_one_file_per_iteration(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(STORED)

    execution = stack.run_to_end(unique_namespace, "loop-stored")

    assert execution["state"]["current"] == "SUCCESS"
    entries = execution["taskRunList"][0]["outputs"]["outputs"]  # as Kestra's LoopCaseTest.loopOutputsStore
    assert [e["item"]["value"] for e in entries] == ["value 1", "value 2"]
    assert all(e["outputs"]["uri"].startswith("kestra://") for e in entries)
    assert ("first", None, "SUCCESS", '{"value": "some output"}') in _shape(execution)


def test_an_empty_loop_succeeds_and_a_null_value_fails_it(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(KEEP_GOING.replace('["ok", "fail", "ok"]', "[]").replace("loop-keep-going", "loop-empty"))
    deploy_flow(
        KEEP_GOING.replace('["ok", "fail", "ok"]', '["ok", null]')
        .replace("    transmitFailed: false\n", "")
        .replace("loop-keep-going", "loop-null")
    )

    empty = stack.run_to_end(unique_namespace, "loop-empty")
    with_null = stack.run_to_end(unique_namespace, "loop-null")

    assert empty["state"]["current"] == "SUCCESS"  # as Kestra's LoopCaseTest.loopEmpty
    assert _top(empty) == ["each", "after"]
    assert with_null["state"]["current"] == "FAILED"  # LoopCaseTest.loopWithNull
    assert _top(with_null) == ["each"]
    logs = stack.api.get(f"/logs/{with_null['id']}").json()
    assert any("Found a null value inside the iteration values" in line["message"] for line in logs)


BATCH_CHILD = """
id: process-batch
namespace: {ns}
inputs:
  - {id: batch, type: STRING}
tasks:
  - id: process
    type: io.kestra.plugin.core.debug.Return
    format: "done {{ inputs.batch }}"
outputs:
  - {id: result, type: STRING, value: "{{ outputs.process.value }}"}
"""

BATCH_PARENT = """
id: per-batch
namespace: {ns}
tasks:
  - id: per_batch
    type: io.kestra.plugin.core.flow.Loop
    values: ["b1", "b2", "b3"]
    concurrencyLimit: 2
    fetchType: FETCH
    outputs:
      - {id: result, type: STRING, value: "{{ outputs.run_child.outputs.result }}"}
    tasks:
      - id: run_child
        type: io.kestra.plugin.core.flow.Subflow
        namespace: {ns}
        flowId: process-batch
        wait: true
        transmitFailed: true
        inputs:
          batch: "{{ item.value }}"
  - id: all
    type: io.kestra.plugin.core.debug.Return
    format: "{{ loopOutputs(outputs.per_batch.outputs, 'result') | join(';') }}"
"""


def test_the_batch_form_loops_over_batches_with_a_subflow_each_and_collects_their_outputs(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(BATCH_CHILD)
    deploy_flow(BATCH_PARENT)

    execution = stack.run_to_end(unique_namespace, "per-batch")

    assert execution["state"]["current"] == "SUCCESS"
    assert ("all", None, "SUCCESS", "done b1;done b2;done b3") in _shape(execution)
    children = stack.api.get(
        "/executions/search", params={"namespace": unique_namespace, "flowId": "process-batch"}
    ).json()
    assert children["total"] == 3
