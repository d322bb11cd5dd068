"""Kestra 2's `subflow()` function: run a flow synchronously while rendering a flow input, read its outputs.

Ported from core/src/main/java/io/kestra/core/runners/pebble/functions/SubflowFunction.java (and its
SubflowFunctionConfiguration defaults). Everything Kestra checks before it runs the child lives here, pure, in
Kestra's order; running the child and waiting for it is the caller's I/O (`ExpressionFunctions.run_subflow`).
No Chorus render site supplies that method today (task and trigger properties must refuse the call, as Kestra
does, and Chorus has no execute-form render of input values), so past the checks the function says it is not
available here instead of blocking a worker on a child execution.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from jinja2 import Undefined, pass_context
from jinja2.runtime import Context
from jinja2.utils import missing

from orchestrator.core.durations import format_duration, parse_duration
from orchestrator.core.errors import ExpressionError
from orchestrator.core.pebble_runtime import CURRENT, io_clock, register

FUNCTIONS: dict[str, Any] = {}

#: SubflowFunctionConfiguration's defaults (kestra.pebble.subflow-function.*).
DEFAULT_TIMEOUT = timedelta(minutes=1)
MAX_TIMEOUT = timedelta(minutes=5)
MAX_DEPTH = 3

_CORRELATION_ID = "system.correlationId"
_FROM = "system.from"
_TERMINAL_OK = ("SUCCESS", "WARNING")

# A child's own inputs may call subflow() again while this call renders them (Kestra's per-thread DEPTH).
_DEPTH: ContextVar[int] = ContextVar("chorus_subflow_depth", default=0)


def _defined(context: Context, name: str) -> Any:
    """A top-level variable of the render, None when absent (Kestra's `context.getVariable(name)`)."""
    value = context.resolve_or_missing(name)
    return None if value is missing or isinstance(value, Undefined) else value


def subflow_labels(raw: Any) -> list[dict[str, str]]:
    """The child's labels: the caller's (no reserved `system.*` but the correlation id), then `system.from`."""
    labels: list[dict[str, str]] = []
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise ExpressionError("The 'subflow' function 'labels' must be a map of string keys to values.")
        for key, value in raw.items():
            if value is None:
                continue
            if str(key).startswith("system.") and key != _CORRELATION_ID:
                raise ExpressionError(
                    f"The 'subflow' function cannot set the system label '{key}'; system labels are reserved "
                    f"(except '{_CORRELATION_ID}')."
                )
            labels.append({"key": str(key), "value": _text(value)})
    labels.append({"key": _FROM, "value": "subflow"})  # Label.FromLabel.SUBFLOW
    return labels


def subflow_timeout(raw: Any) -> timedelta:
    """The wait: `timeout` (an ISO-8601 duration) or PT1M, never over PT5M."""
    if raw is None:
        timeout = DEFAULT_TIMEOUT
    elif isinstance(raw, timedelta):
        timeout = raw
    elif isinstance(raw, str):
        try:
            timeout = parse_duration(raw)
        except ValueError:
            raise ExpressionError(
                f"The 'subflow' function 'timeout' must be an ISO-8601 duration (e.g. 'PT30S'), got '{raw}'."
            ) from None
    else:
        raise ExpressionError("The 'subflow' function 'timeout' must be an ISO-8601 duration string (e.g. 'PT30S').")
    if timeout > MAX_TIMEOUT:
        limit = format_duration(MAX_TIMEOUT)
        raise ExpressionError(
            f"The 'subflow' function 'timeout' ({format_duration(timeout)}) exceeds the maximum allowed ({limit})."
        )
    return timeout


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@contextlib.contextmanager
def _one_level_deeper() -> Iterator[None]:
    depth = _DEPTH.get()
    if depth >= MAX_DEPTH:
        raise ExpressionError(
            f"The 'subflow' function exceeded the maximum nesting depth of {MAX_DEPTH} "
            "(a subflow's inputs likely call subflow() recursively)."
        )
    token = _DEPTH.set(depth + 1)
    try:
        yield
    finally:
        _DEPTH.reset(token)


@register(FUNCTIONS, "subflow")
@pass_context
def _subflow(
    context: Context,
    namespace: Any = None,
    id: Any = None,  # Kestra's argument name
    inputs: Any = None,
    revision: Any = None,
    labels: Any = None,
    timeout: Any = None,
) -> dict[str, Any]:
    # The call blocks until the child ends: Kestra refuses it where a worker renders (task, trigger properties).
    if _defined(context, "taskrun") is not None or _defined(context, "trigger") is not None:
        raise ExpressionError(
            "The 'subflow' function can only be used at flow-input render time (e.g. an input's 'values'); "
            "it is not supported inside task or trigger properties."
        )
    if namespace is None or id is None:
        raise ExpressionError("The 'subflow' function expects the arguments 'namespace' and 'id'.")
    flow = _defined(context, "flow")
    if not isinstance(flow, Mapping):
        raise ExpressionError(
            "The 'subflow' function can only be used in a flow context (e.g. an input's 'values'); "
            "the caller flow could not be resolved."
        )
    if revision is not None and (isinstance(revision, bool) or not isinstance(revision, int | float)):
        raise ExpressionError(f"The 'subflow' function 'revision' must be a number, got '{revision}'.")
    if inputs is not None and not isinstance(inputs, Mapping):
        raise ExpressionError("The 'subflow' function 'inputs' must be a map of input ids to values.")
    child_labels = subflow_labels(labels)
    wait = subflow_timeout(timeout)
    with _one_level_deeper():
        state = CURRENT.get()
        run = getattr(state.functions, "run_subflow", None) if state is not None else None
        if not callable(run):
            raise ExpressionError("The subflow() function is not available here")
        with io_clock():
            result = run(
                caller={"namespace": flow.get("namespace"), "id": flow.get("id")},
                namespace=str(namespace),
                flow_id=str(id),
                inputs=dict(inputs or {}),
                revision=None if revision is None else int(revision),
                labels=child_labels,
                timeout=wait,
            )
    ended = str(result.get("state"))
    if ended not in _TERMINAL_OK:
        raise ExpressionError(f"Subflow '{namespace}'.'{id}' ended in state {ended} (execution {result.get('id')}).")
    # SubflowFunction.Result: id, state, outputs (flow-level) and labels as a key -> value map.
    return {
        "id": result.get("id"),
        "state": ended,
        "outputs": dict(result.get("outputs") or {}),
        "labels": {str(label["key"]): label["value"] for label in result.get("labels") or []},
    }
