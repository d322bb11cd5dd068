"""Kestra 2's parentOutput() and outputFromIteration() over a render context, as the engine builds it
(core/src/main/java/io/kestra/core/runners/pebble/functions/ParentOutputFunction.java and
OutputFromIterationFunction.java; ParentOutputFunctionTest, OutputFromIterationTest)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import render
from orchestrator.core.pebble_parents import PARENT_TASK_IDS
from orchestrator.core.purity import template_is_pure


def _loop_child(value: str, *, done: dict[str, Any]) -> dict[str, Any]:
    """The context of task `sum` at iteration `value` of ForEach `each` nested in iteration 100 of `outer`."""
    return {
        "task": {"id": "sum"},
        "taskrun": {"value": value},
        "outputs": {"sum": {"100": done}, "if": {"evaluationResult": True}},
        "parents": [{"taskrun": {"value": "100"}}, {"outputs": {"evaluationResult": True}}],
        "parent": {"taskrun": {"value": "100"}},
        PARENT_TASK_IDS: ["each", "if"],
    }


def test_parent_output_reads_the_direct_parent_at_its_own_value() -> None:
    # ParentOutputFunctionTest#parentOutput: forEach > if > parentOutput sees the If of its iteration
    context = {
        "outputs": {"if": {"3": {"evaluationResult": True}}},
        "parent": {"taskrun": {"value": "3"}, "outputs": {"evaluationResult": True}},
        "parents": [{"taskrun": {"value": "3"}, "outputs": {"evaluationResult": True}}],
        PARENT_TASK_IDS: ["if"],
    }

    assert render("{{ parentOutput() }}", context) == '{"evaluationResult":true}'


def test_parent_output_with_an_index_counts_from_the_outermost_parent() -> None:
    # ParentOutputFunctionTest#parentsOutput: if > forEach > parentOutput(0) sees the If
    context = _loop_child("3", done={})

    assert render("{{ parentOutput(0) }}", context) == '{"evaluationResult":true}'


def test_parent_output_refuses_an_index_past_the_parents() -> None:
    with pytest.raises(ExpressionError, match="Invalid index: 2 for parents size: 2"):
        render("{{ parentOutput(2) }}", _loop_child("3", done={}))
    with pytest.raises(ExpressionError, match="expects an argument 'index' of type integer"):
        render("{{ parentOutput('x') }}", _loop_child("3", done={}))


def test_output_from_iteration_reads_an_earlier_iteration_of_a_nested_loop() -> None:
    # OutputFromIterationTest#outputFromIterationPrefixSum: by position among the iterations already done
    done = {"1": {"value": " 101 "}, "3": {"value": "101"}, "5": {"value": "207"}}

    assert render("{{ outputFromIteration(2) | trim }}", _loop_child("10", done=done)) == "207"
    assert render("{{ outputFromIteration(0) | trim }}", _loop_child("10", done=done)) == "101"


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ("3", r"The provided index \(3\) refers to the current iteration"),
        ("4", r"The provided index \(4\) is out of range.*Maximum valid index is 2\."),
        ("-1", r"Cannot fetch iteration -1: no previous iteration exists\."),
        ("'x'", r"The 'index' argument for 'outputFromIteration' must be an integer, but got: x"),
    ],
)
def test_output_from_iteration_refuses_the_current_a_future_or_a_bad_iteration(index: str, message: str) -> None:
    done = {"1": {"value": "101"}, "3": {"value": "101"}, "5": {"value": "207"}}

    with pytest.raises(ExpressionError, match=message):
        render(f"{{{{ outputFromIteration({index}) }}}}", _loop_child("10", done=done))


def test_parent_output_without_parents_is_null() -> None:
    assert render("[{{ parentOutput() }}]", {"outputs": {}, "parents": [], PARENT_TASK_IDS: []}) == "[]"


def test_both_read_only_the_render_context_so_a_controller_may_run_them() -> None:
    assert template_is_pure("{{ parentOutput(0) }} {{ outputFromIteration(1) }}")
