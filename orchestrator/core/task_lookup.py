"""Find one task, as written, in a flow document (Kestra's `Flow.findTaskByTaskId`).

Kestra's `GET /flows/{namespace}/{id}/tasks/{taskId}` answers with the task of that id at any depth:
the flow's `tasks`, `errors`, `finally` and `afterExecution`, then every flowable's children (a Switch's
cases and defaults, a Dag's `tasks[].task`, an If's `then`/`else`, local `errors`, ...). The walk follows
the catalogue's branch fields, so a mapping that only looks like a task (a Pause's `onResume` input, a
trigger's condition) is never taken for one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from orchestrator.core import tasktypes

FLOW_SECTIONS = ("tasks", "errors", "finally", "afterExecution")


def find_task_document(document: Mapping[str, Any], task_id: str) -> dict[str, Any] | None:
    """The first task with this id, depth-first in YAML order, or None when the flow has none."""
    for section in FLOW_SECTIONS:
        found = _in_list(document.get(section), task_id)
        if found is not None:
            return found
    return None


def _in_list(tasks: Any, task_id: str) -> dict[str, Any] | None:
    for task in tasks if isinstance(tasks, list) else ():
        if not isinstance(task, dict):
            continue
        if task.get("id") == task_id:
            return task
        for children in _child_lists(task):
            found = _in_list(children, task_id)
            if found is not None:
                return found
    return None


def _child_lists(task: Mapping[str, Any]) -> Iterator[Any]:
    type_name = task.get("type")
    try:
        task_type = tasktypes.resolve(type_name) if isinstance(type_name, str) else None
    except KeyError:
        task_type = None
    if task_type is None:
        return
    for field in task_type.branch_fields:
        value = task.get(field)
        if task_type.name == "Switch" and field == "cases" and isinstance(value, dict):
            yield from value.values()
        elif task_type.name == "Dag" and field == "tasks" and isinstance(value, list):
            yield [entry.get("task") for entry in value if isinstance(entry, dict)]
        elif isinstance(value, dict):  # Pause's `onPause`: one task (Kestra 2)
            yield [value]
        else:
            yield value
