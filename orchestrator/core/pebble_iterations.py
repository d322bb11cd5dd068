"""Kestra 2's functions that read an earlier iteration of a ForEach: `iterationOutputs` and `iterationOutput`.

Inside a loop, `outputs.<task>` is nested under the value of each enclosing iteration (`outputs.t.v1.v2`). These
functions walk down to the current enclosing iterations (the `parents`, outermost first) and return the `value`
output of the task at a given iteration index, counting iterations in the order they were recorded. Ported from
core/src/main/java/io/kestra/core/runners/pebble/functions/IterationOutputsFunction.java and its older spelling
IterationOutputFunction.java, which takes its arguments the other way round and gives null where the newer one
fails (no output of that task yet, or none under the current enclosing iterations).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from orchestrator.core.errors import ExpressionError
from orchestrator.core.pebble_runtime import register
from orchestrator.core.pebble_values import format_value

FUNCTIONS: dict[str, Callable[..., Any]] = {}


def _iteration_index(context: Context, name: str, iteration: Any) -> int:
    taskrun = context.resolve_or_missing("taskrun")
    if not isinstance(taskrun, Mapping) or "iteration" not in taskrun:
        raise ExpressionError(f"The '{name}()' function should be used inside iterative tasks only")
    if iteration is None:  # the previous iteration of the task being rendered
        index = int(taskrun["iteration"]) - 1
    else:
        try:
            index = int(str(iteration))  # Kestra parses the argument's text: "2" and 2 both work, 2.5 does not
        except ValueError as e:
            raise ExpressionError(
                f"The 'iteration' argument for '{name}' must be an integer, but got: {format_value(iteration)}"
            ) from e
    if index < 0:
        raise ExpressionError(f"Cannot fetch iteration {index}: no previous iteration exists.")
    return index


def _task_id(context: Context, task_id: Any) -> str:
    if task_id is not None:
        return str(task_id)
    task = context.resolve_or_missing("task")
    return str(task.get("id")) if isinstance(task, Mapping) else ""


def under_enclosing_iterations(context: Context, outputs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A task's `outputs`, nested by the value of every enclosing loop iteration as Kestra nests them, walked down
    to the current iterations (the `parents` that have a value, outermost first); None where a level is missing.
    An enclosing run without a value (an If or a WorkingDirectory with outputs) nests nothing and is passed over."""
    parents = context.resolve_or_missing("parents")
    found: Mapping[str, Any] = outputs
    for parent in reversed(parents) if isinstance(parents, list) else []:
        taskrun = parent.get("taskrun") if isinstance(parent, Mapping) else None
        if not isinstance(taskrun, Mapping):
            continue
        nested = found.get(str(taskrun.get("value")))
        if not isinstance(nested, Mapping):
            return None
        found = nested
    return found


def _iterations_of(context: Context, task_id: str, strict: bool) -> Mapping[str, Any] | None:
    """The task's outputs by iteration value under the current enclosing iterations, or None (older spelling)."""
    outputs = context.resolve_or_missing("outputs")
    found = outputs.get(task_id) if isinstance(outputs, Mapping) else None
    if not isinstance(found, Mapping):
        if strict:
            raise ExpressionError(f"The provided task with taskId = {task_id} has no execution outputs")
        return None
    under = under_enclosing_iterations(context, found)
    if under is None and strict:
        raise ExpressionError(
            f"The provided task with taskId = {task_id} has no execution outputs for the current iterative task "
            "runs path"
        )
    return under


def _value_at(iterations: Mapping[str, Any], index: int) -> Any:
    if index >= len(iterations):
        raise ExpressionError(
            f"The provided index ({index}) is out of range. It refers to an iteration whose outputs do not exist "
            f"yet. Maximum valid index is {len(iterations) - 1}."
        )
    chosen = list(iterations.values())[index]
    return chosen.get("value") if isinstance(chosen, Mapping) else None


@register(FUNCTIONS, "iterationOutputs")
@pass_context
def _iteration_outputs(context: Context, iteration: Any = None, taskId: Any = None) -> Any:
    """`iterationOutputs(iteration, taskId)`: the `value` output of `taskId` (default: this task) at iteration index
    `iteration` (default: the previous one) of the innermost ForEach, under the current enclosing iterations."""
    index = _iteration_index(context, "iterationOutputs", iteration)
    task_id = _task_id(context, taskId)
    iterations = _iterations_of(context, task_id, strict=True)
    assert iterations is not None  # strict: raised instead
    return _value_at(iterations, index)


@register(FUNCTIONS, "iterationOutput")
@pass_context
def _iteration_output(context: Context, taskId: Any = None, iteration: Any = None) -> Any:
    """`iterationOutput(taskId, iteration)`: iterationOutputs' older spelling; null when there is nothing yet."""
    task_id = _task_id(context, taskId)
    index = _iteration_index(context, "iterationOutputs", iteration)  # Kestra's message names the newer spelling
    iterations = _iterations_of(context, task_id, strict=False)
    return None if iterations is None else _value_at(iterations, index)
