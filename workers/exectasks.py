"""execution.SetVariables and UnsetVariables (change the execution's `vars` for later tasks), Exit and Kill.

What a run changes is its outputs (`variables` set, `unset` keys); `orchestrator.engine.variables.execution_vars`
applies them in order on top of the flow's `variables`, so a restart or a replay sees the same `vars`.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors import TaskFailed
from orchestrator.engine.exits import EXIT_STATES, exit_execution
from workers.context import TaskContext


def _flag(ctx: TaskContext, name: str, default: bool) -> bool:
    raw = ctx.properties.get(name)
    return default if raw is None else str(ctx.render(raw)).lower() == "true"


def run_set_variables(ctx: TaskContext) -> dict[str, Any] | None:
    variables = ctx.render(ctx.properties.get("variables"))
    if not isinstance(variables, dict):
        raise TaskFailed(f"variables: expected a map, got {variables!r}", retryable=False)
    if not _flag(ctx, "overwrite", True):
        current = ctx.claimed.variables.get("vars") or {}
        duplicated = [key for key in variables if key in current]
        if duplicated:
            raise TaskFailed(
                "`overwrite` is set to false and the following variables already exist: " + ",".join(duplicated),
                retryable=False,
            )
    return {"variables": variables}


def run_unset_variables(ctx: TaskContext) -> dict[str, Any] | None:
    keys = ctx.render(ctx.properties.get("variables"))
    if not isinstance(keys, list):
        raise TaskFailed(f"variables: expected a list of names, got {keys!r}", retryable=False)
    if not _flag(ctx, "ignoreMissing", False):
        current = ctx.claimed.variables.get("vars") or {}
        # As Kestra's removeVar: a missing last key is no error, a missing map on the way is.
        missing = [str(key) for key in keys if not _has(current, str(key).split(".")[:-1])]
        if missing:
            raise TaskFailed(f"variables not found: {','.join(missing)}", retryable=False)
    return {"unset": [str(key) for key in keys]}


def _has(variables: Any, path: list[str]) -> bool:
    for part in path:
        if not isinstance(variables, dict) or part not in variables:
            return False
        variables = variables[part]
    return True


def run_exit(ctx: TaskContext) -> dict[str, Any] | None:
    """execution.Exit: the execution ends now, in `state` (SUCCESS by default)."""
    name = str(ctx.render(ctx.properties.get("state") or "SUCCESS")).upper()
    if name not in EXIT_STATES:
        raise TaskFailed(f"state: expected one of {', '.join(EXIT_STATES)}, got {name!r}", retryable=False)
    ctx.log("INFO", f"Exiting the execution with state {name}")
    exit_execution(ctx.engine, ctx.claimed, EXIT_STATES[name])
    return None


def run_kill(ctx: TaskContext) -> dict[str, Any] | None:
    """execution.Kill: the execution ends KILLED; its subflow executions too with `propagateKill`."""
    ctx.log("INFO", "Killing the execution")
    exit_execution(ctx.engine, ctx.claimed, EXIT_STATES["KILLED"], kill_children=_flag(ctx, "propagateKill", False))
    return None


HANDLERS = {
    "SetVariables": run_set_variables,
    "UnsetVariables": run_unset_variables,
    "Exit": run_exit,
    "Kill": run_kill,
}
