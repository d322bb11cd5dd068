"""Reading an execution as the API returns it: its task runs by task id, their states."""

from __future__ import annotations

from typing import Any


def task_runs(execution: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    """The task runs of `task_id` in the execution's `taskRunList`."""
    return [r for r in execution["taskRunList"] if r["taskId"] == task_id]


def task_state(execution: dict[str, Any], task_id: str) -> str:
    """The current state of the first task run of `task_id`."""
    return str(task_runs(execution, task_id)[0]["state"]["current"])
