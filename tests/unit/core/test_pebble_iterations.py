"""Kestra 2's `iterationOutputs(iteration, taskId)` and its older spelling `iterationOutput(taskId, iteration)`
(core/src/main/java/io/kestra/core/runners/pebble/functions/IterationOutput(s)Function.java)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import render

#: Inside `each` (a ForEach over 1, 3, 5) inside `outer` (a ForEach at value "100"): `sum` ran for 1 and 3.
NESTED: dict[str, Any] = {
    "outputs": {"sum": {"100": {"1": {"value": "101"}, "3": {"value": "104"}}}, "other": {"200": {}}},
    "parents": [{"taskrun": {"value": "100"}}],
    "taskrun": {"value": "5", "iteration": 2},
    "task": {"id": "sum"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ iterationOutputs() }}", "104"),  # this task, the previous iteration
        ("{{ iterationOutputs(0) }}", "101"),
        ("{{ iterationOutputs(taskrun.iteration - 2, 'sum') }}", "101"),
        ("{{ iterationOutputs('1', null) }}", "104"),  # Kestra parses the argument's text
        ("{{ iterationOutputs(iteration=0, taskId='sum') }}", "101"),
        ("{{ iterationOutput() }}", "104"),
        ("{{ iterationOutput('sum', 0) }}", "101"),
        ("{{ iterationOutput(null, 1) }}", "104"),
    ],
)
def test_an_earlier_iteration_of_a_task_is_read_under_the_enclosing_iterations(template: str, expected: str) -> None:
    assert render(template, NESTED) == expected


def test_the_older_spelling_gives_null_where_the_newer_one_fails() -> None:
    """IterationOutputFunction returns null for a task without outputs, IterationOutputsFunction throws."""
    assert render("{{ iterationOutput('missing') is null }}", NESTED) == "true"
    assert render("{{ iterationOutput('other', 0) is null }}", NESTED) == "true"
    with pytest.raises(ExpressionError, match="taskId = missing has no execution outputs"):
        render("{{ iterationOutputs(0, 'missing') }}", NESTED)
    with pytest.raises(ExpressionError, match="taskId = other has no execution outputs for the current iterative"):
        render("{{ iterationOutputs(0, 'other') }}", NESTED)


@pytest.mark.parametrize(
    ("template", "variables", "message"),
    [
        ("{{ iterationOutputs(5) }}", NESTED, r"The provided index \(5\) is out of range.*Maximum valid index is 1"),
        ("{{ iterationOutputs(-1) }}", NESTED, "Cannot fetch iteration -1: no previous iteration exists"),
        ("{{ iterationOutputs('two') }}", NESTED, "'iteration' argument for 'iterationOutputs' must be an integer"),
        ("{{ iterationOutputs() }}", {**NESTED, "taskrun": {"value": None}}, "inside iterative tasks only"),
        ("{{ iterationOutput() }}", {**NESTED, "taskrun": {"value": "1", "iteration": 0}}, "no previous iteration"),
    ],
)
def test_a_wrong_iteration_fails_the_rendering_with_kestras_message(
    template: str, variables: dict[str, Any], message: str
) -> None:
    with pytest.raises(ExpressionError, match=message):
        render(template, variables)


def test_an_enclosing_run_without_a_value_nests_nothing() -> None:
    """`parents` also lists enclosing runs that only have outputs (an If's evaluationResult): Kestra nests a loop's
    outputs by iteration values alone, so such a run is passed over, by iterationOutputs and outputFromIteration."""
    inside_an_if = {**NESTED, "parents": [{"outputs": {"evaluationResult": True}}, {"taskrun": {"value": "100"}}]}
    assert render("{{ iterationOutputs(0) }}", inside_an_if) == "101"
    assert render("{{ outputFromIteration(1) }}", inside_an_if) == "104"
