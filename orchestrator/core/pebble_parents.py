"""Kestra 2's functions that read the outputs of the enclosing task runs: `parentOutput` and `outputFromIteration`.

Both read only the render context: `parents` (the enclosing task runs nearest first, each with `taskrun.value`
when it has one and `outputs`), the task ids of those parents (under PARENT_TASK_IDS, in the same order), `task`
and `outputs` (keyed by task id, then by the value of every enclosing loop iteration, as Kestra nests them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from orchestrator.core.errors import ExpressionError
from orchestrator.core.pebble_iterations import under_enclosing_iterations
from orchestrator.core.pebble_runtime import register
from orchestrator.core.pebble_values import format_value

FUNCTIONS: dict[str, Callable[..., Any]] = {}

#: The render variable with the task ids of `parents`, nearest first. Kestra 2 keeps a parent's task id inside
#: its `parents` entry; Chorus keeps it beside, so `{{ parent }}` renders as Kestra's tests compare it
#: (WorkingDirectoryTest#taskRunNested: `{"taskrun":{"value":"1"}}`).
PARENT_TASK_IDS = "__chorus_parent_task_ids"


def _mapping(context: Context, name: str) -> Mapping[str, Any]:
    value = context.resolve_or_missing(name)
    return value if isinstance(value, Mapping) else {}


def _parents(context: Context) -> list[Any]:
    parents = context.resolve_or_missing("parents")
    return list(parents) if isinstance(parents, list) else []


def _output_of(context: Context, position: int) -> Any:
    """ParentOutputFunction.retrieveOutput: the outputs of the task of the parent at `position` (nearest first),
    at that parent's own value when it has one."""
    parents = _parents(context)
    task_ids = context.resolve_or_missing(PARENT_TASK_IDS)
    if not isinstance(task_ids, list) or not 0 <= position < min(len(parents), len(task_ids)):
        return None
    parent = parents[position]
    taskrun = parent.get("taskrun") if isinstance(parent, Mapping) else None
    value = taskrun.get("value") if isinstance(taskrun, Mapping) else None
    found = _mapping(context, "outputs").get(str(task_ids[position]))
    if isinstance(found, Mapping) and value is not None:
        return found.get(value)
    return found


@register(FUNCTIONS, "parentOutput")
@pass_context
def _parent_output(context: Context, *args: Any, **kwargs: Any) -> Any:
    """Kestra 2's `parentOutput(index?)` (ParentOutputFunction): the outputs of the direct parent, or of the
    `index`-th enclosing task run counted from the outermost (0)."""
    index = kwargs.get("index", args[0] if args else None)
    if index is None:
        return _output_of(context, 0)  # `parent`, the nearest
    if isinstance(index, bool) or not isinstance(index, int):
        raise ExpressionError("The 'parentOutput' function expects an argument 'index' of type integer.")
    size = len(_parents(context))
    if not 0 <= index < size:
        raise ExpressionError(f"Invalid index: {index} for parents size: {size}")
    return _output_of(context, size - 1 - index)  # the index counts from the outermost


@register(FUNCTIONS, "outputFromIteration")
@pass_context
def _output_from_iteration(context: Context, *args: Any, **kwargs: Any) -> Any:
    """Kestra 2's `outputFromIteration(index)` (OutputFromIterationFunction): the `value` output of this very
    task at an earlier iteration of its loop, by position, inside as many nested loops as enclose it."""
    raw = kwargs.get("index", args[0] if args else None)
    if raw is None:
        raise ExpressionError("The 'outputFromIteration' function requires an argument named 'index'.")
    try:
        index = int(format_value(raw))
    except ValueError as e:
        raise ExpressionError(
            f"The 'index' argument for 'outputFromIteration' must be an integer, but got: {format_value(raw)}"
        ) from e
    if index < 0:
        raise ExpressionError(f"Cannot fetch iteration {index}: no previous iteration exists.")
    outputs = _mapping(context, "outputs").get(str(_mapping(context, "task").get("id")))
    target = under_enclosing_iterations(context, outputs) if isinstance(outputs, Mapping) else None
    done = list(target.items()) if target is not None else []
    if index == len(done):
        raise ExpressionError(
            f"The provided index ({index}) refers to the current iteration, whose outputs are not yet available at"
            " runtime."
        )
    if index > len(done):
        raise ExpressionError(
            f"The provided index ({index}) is out of range. It refers to a future iteration whose outputs do not"
            f" exist yet. Maximum valid index is {len(done) - 1}."
        )
    output = done[index][1]
    return output.get("value") if isinstance(output, Mapping) else None
