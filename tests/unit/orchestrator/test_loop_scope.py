"""A Loop iteration's render context: `item` at any depth, outputs scoped to the iteration, the Loop's outputs."""

from __future__ import annotations

from typing import Any

from orchestrator.core.parse import parse_flow
from orchestrator.engine import loop_scope
from orchestrator.store.tables import TaskRunRow

FLOW = parse_flow("""
id: f
namespace: t
tasks:
  - id: outer
    type: io.kestra.plugin.core.flow.Loop
    values: {a: 1, b: 2}
    outputs:
      - {id: seen, type: STRING, value: "{{ outputs.first.value }}"}
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: x
      - id: inner
        type: io.kestra.plugin.core.flow.Loop
        values: [x, y]
        tasks:
          - id: deep
            type: io.kestra.plugin.core.debug.Return
            format: "{{ item.value }}"
""")


def _run(
    run_id: str, task_id: str, parent: str | None = None, iteration: int | None = None, **extra: Any
) -> TaskRunRow:
    return TaskRunRow(id=run_id, task_id=task_id, parent_id=parent, iteration=iteration, state="SUCCESS", **extra)


RUNS = [
    _run("o", "outer", decision={"values": ["1", "2"], "keys": ["a", "b"]}),
    _run("f0", "first", "o", 0, value="1", outputs={"value": "first of a"}),
    _run("f1", "first", "o", 1, value="2", outputs={"value": "first of b"}),
    _run("i1", "inner", "o", 1, value="2", decision={"values": ["x", "y"]}),
    _run("d1", "deep", "i1", 1, value="y"),
]


def test_item_reads_the_nearest_iteration_and_its_parents() -> None:
    variables: dict[str, Any] = {"outputs": {}}
    loop_scope.apply(variables, FLOW, RUNS[4], RUNS)

    item = variables["item"]
    assert (item["value"], item["index"]) == ("y", 1)
    assert item["parent"] == {"index": 1, "value": "2", "key": "b"}
    assert item["parents"] == [item["parent"]]  # one enclosing Loop: it is both


def test_outputs_are_those_of_the_same_iteration() -> None:
    variables: dict[str, Any] = {"outputs": {"first": {"1": {"value": "first of a"}, "2": {"value": "first of b"}}}}
    loop_scope.apply(variables, FLOW, RUNS[3], RUNS)

    assert variables["outputs"]["first"] == {"value": "first of b"}


def test_a_task_outside_any_loop_gets_no_item() -> None:
    variables: dict[str, Any] = {"outputs": {}}
    loop_scope.apply(variables, FLOW, RUNS[0], RUNS)

    assert "item" not in variables


def test_the_loops_outputs_count_iterations_and_render_declared_outputs_per_iteration() -> None:
    def variables_of(run: TaskRunRow) -> dict[str, Any]:
        variables: dict[str, Any] = {"outputs": {}}
        loop_scope.apply(variables, FLOW, run, RUNS)
        return variables

    outputs = loop_scope.final_outputs(FLOW.tasks[0], RUNS[0], RUNS, variables_of)

    assert outputs["iterationCount"] == 2
    assert outputs["terminatedIterations"] == {"SUCCESS": 2}
    assert outputs["outputs"] == [
        {"item": {"value": "1", "iteration": 0, "key": "a"}, "outputs": {"seen": "first of a"}},
        {"item": {"value": "2", "iteration": 1, "key": "b"}, "outputs": {"seen": "first of b"}},
    ]


def test_parents_list_the_enclosing_loops_outermost_first_and_parent_is_the_nearest() -> None:
    flow = parse_flow(
        "id: f\nnamespace: t\ntasks:\n"
        "  - id: l1\n    type: Loop\n    values: [a]\n    tasks:\n"
        "      - id: l2\n        type: Loop\n        values: [b]\n        tasks:\n"
        "          - id: l3\n            type: Loop\n            values: [c]\n            tasks:\n"
        "              - {id: leaf, type: Return, format: x}\n"
    )
    runs = [
        _run("1", "l1", decision={"values": ["a"]}),
        _run("2", "l2", "1", 0, value="a", decision={"values": ["b"]}),
        _run("3", "l3", "2", 0, value="b", decision={"values": ["c"]}),
        _run("4", "leaf", "3", 0, value="c"),
    ]
    variables: dict[str, Any] = {"outputs": {}}
    loop_scope.apply(variables, flow, runs[3], runs)

    item = variables["item"]
    assert item["value"] == "c"
    assert item["parent"]["value"] == "b"
    assert [p["value"] for p in item["parents"]] == ["a", "b"]
