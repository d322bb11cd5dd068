"""The control pool's tasks: Log, Return, OutputValues, Fail, and the decisions of Sequential, Parallel, If."""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors import TaskFailed
from orchestrator.core.expressions import is_true
from workers.context import Decider, Handler, TaskContext


def run_log(ctx: TaskContext) -> dict[str, Any] | None:
    level = str(ctx.properties.get("level", "INFO"))
    message = ctx.properties.get("message", "")
    for line in message if isinstance(message, list) else [message]:
        ctx.log(level, str(ctx.render(line)))
    return None


def run_return(ctx: TaskContext) -> dict[str, Any] | None:
    return {"value": ctx.render(ctx.properties.get("format"))}


def run_output_values(ctx: TaskContext) -> dict[str, Any] | None:
    return {"values": ctx.render(ctx.properties.get("values", {}))}


def run_fail(ctx: TaskContext) -> dict[str, Any] | None:
    condition = ctx.properties.get("condition")
    if condition is not None and not is_true(ctx.render(condition)):
        return None
    message = ctx.render(ctx.properties.get("errorMessage", "Task failure"))
    raise TaskFailed(str(message), retryable=True)


def decide_sequence(ctx: TaskContext) -> dict[str, Any]:
    return {"branch": "tasks"}


def decide_if(ctx: TaskContext) -> dict[str, Any]:
    condition = ctx.render(ctx.properties.get("condition"))
    return {"branch": "then" if is_true(condition) else "else", "condition": is_true(condition)}


HANDLERS: dict[str, Handler] = {
    "Log": run_log,
    "Return": run_return,
    "Debug": run_return,
    "OutputValues": run_output_values,
    "Fail": run_fail,
}

DECIDERS: dict[str, Decider] = {
    "Sequential": decide_sequence,
    "Parallel": decide_sequence,
    "If": decide_if,
}
