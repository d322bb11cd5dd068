"""Kestra's general functions: the caller's I/O (secret, kv, read, errorLogs), range, min/max, ids, loop outputs."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from orchestrator.core.errors import ExpressionError
from orchestrator.core.pebble_operators import inclusive_range
from orchestrator.core.pebble_runtime import CURRENT, io_clock, register
from orchestrator.core.pebble_values import format_value

FUNCTIONS: dict[str, Callable[..., Any]] = {}


def _caller_functions(name: str, method: str) -> Any:
    state = CURRENT.get()
    functions = state.functions if state is not None else None
    if functions is None or not callable(getattr(functions, method, None)):
        raise ExpressionError(f"The {name}() function is not available here")
    return getattr(functions, method)


@register(FUNCTIONS, "secret")
def _secret(name: str) -> str:
    secret = _caller_functions("secret", "secret")
    with io_clock():
        return str(secret(name))


@register(FUNCTIONS, "kv")
def _kv(key: str, namespace: str | None = None, errorOnMissing: bool | None = True) -> Any:
    kv = _caller_functions("kv", "kv")
    with io_clock():
        return kv(key, namespace, errorOnMissing is not False)


@register(FUNCTIONS, "read")
def _read(path: str) -> str:
    """Kestra's read(): the text of a file in internal storage that this execution may see."""
    read_file = _caller_functions("read", "read_file")
    with io_clock():
        return str(read_file(str(path)))


@register(FUNCTIONS, "errorLogs")
def _error_logs() -> Any:
    error_logs = _caller_functions("errorLogs", "error_logs")
    with io_clock():
        return error_logs()


FUNCTIONS["range"] = inclusive_range


@register(FUNCTIONS, "max")
def _max(*values: Any) -> Any:
    return max(values[0] if len(values) == 1 else values)


@register(FUNCTIONS, "min")
def _min(*values: Any) -> Any:
    return min(values[0] if len(values) == 1 else values)


@register(FUNCTIONS, "uuid")
def _uuid() -> str:
    return str(uuid.uuid4())


@register(FUNCTIONS, "randomInt")
def _random_int(lower: int, upper: int) -> int:
    return random.randrange(lower, upper)  # not for security


@register(FUNCTIONS, "currentEachOutput")
@pass_context
def _current_each_output(context: Context, outputs: Any) -> Any:
    """The output of a task inside ForEach for the current iteration (indexed by each parent's value)."""
    parents = context.resolve_or_missing("parents")
    taskrun = context.resolve_or_missing("taskrun")
    result = outputs
    # a parent listed for its outputs alone (an If outside any loop) has no `taskrun` and indexes nothing
    values = [p["taskrun"]["value"] for p in reversed(parents) if "taskrun" in p] if isinstance(parents, list) else []
    if isinstance(taskrun, Mapping):
        values.append(taskrun.get("value"))
    for value in values:
        if isinstance(result, Mapping) and value in result:
            result = result[value]
    return result


@register(FUNCTIONS, "loopOutputs")
def _loop_outputs(outputs: Any, output_id: Any) -> list[Any]:
    """Kestra 2's `loopOutputs(outputs.<loop>.outputs, 'id')`: one declared output of every Loop iteration."""
    if not isinstance(outputs, list):
        raise ExpressionError(f"loopOutputs expects the list of a Loop's outputs, got {format_value(outputs)}")
    name = format_value(output_id)
    return [entry["outputs"].get(name) for entry in outputs if isinstance(entry, Mapping) and "outputs" in entry]


def _state_name(value: Any) -> str | None:
    return str(value).upper() if isinstance(value, str) else None


@register(FUNCTIONS, "tasksWithState")
@pass_context
def _tasks_with_state(context: Context, state: Any = "FAILED") -> list[dict[str, Any]]:
    """Kestra's `tasksWithState(state='FAILED')` (TasksWithStateFunction): the task runs of the `tasks` variable
    in `state`, as `{taskId, state}`, plus `value` for a task run of a loop iteration."""
    if not isinstance(state, str):
        raise ExpressionError(f"The 'tasksWithState' function expects a state name, got {format_value(state)}")
    wanted = state.upper()
    tasks = context.resolve_or_missing("tasks")
    found: list[dict[str, Any]] = []
    if not isinstance(tasks, Mapping):
        return found
    for task_id, details in tasks.items():
        if not isinstance(details, Mapping):
            continue
        for key, value in details.items():
            if key == "state" and not isinstance(value, Mapping):
                if _state_name(value) == wanted:
                    found.append({"taskId": task_id, "state": wanted})
            elif isinstance(value, Mapping) and _state_name(value.get("state")) == wanted:
                found.append({"taskId": task_id, "state": wanted, "value": key})
    return found


@register(FUNCTIONS, "env")
@pass_context
def _env(context: Context, name: Any = None, default: Any = None) -> Any:
    """Kestra 2's `env(name, default?)` (EnvFunction): the `envs` variable's value (the server's configured
    KESTRA_-style environment, never the process's), else `default` when it is missing or empty."""
    if name is None:
        raise ExpressionError("The 'env' function expects an argument 'name'.")
    envs = context.resolve_or_missing("envs")
    if not isinstance(envs, Mapping):
        return default
    value = envs.get(format_value(name))
    return default if value is None or format_value(value) == "" else value
