"""The task catalogue described for clients, in the shapes of Kestra's `/plugins` endpoints.

`plugin_groups()` is Kestra's `GET /plugins` (one entry per plugin group, naming its task and trigger classes);
`plugin_doc(cls)` is `GET /plugins/{cls}` (its properties as a JSON schema object). The console's editor
completes task types and their properties from these, so they list only what the parser accepts: each
type's canonical Kestra name (legacy names still validate, but are not offered), its own properties,
the properties every task has and its child task lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, JsonValue

from orchestrator.core import tasktypes
from orchestrator.core.parse_tasks import COMMON_TASK_PROPERTIES

#: What a common task property holds, for the completion's detail (Kestra's `Task` fields).
_COMMON_SCHEMAS: Mapping[str, dict[str, JsonValue]] = {
    "id": {"type": "string", "title": "The task's id, unique in the flow"},
    "type": {"type": "string", "title": "The task type's class"},
    "version": {"type": "string", "title": "The plugin version"},
    "description": {"type": "string", "title": "What the task does"},
    "retry": {"type": "object", "title": "Retry policy: constant, exponential or random"},
    "timeout": {"type": "string", "format": "duration", "title": "Maximum run time (ISO 8601 duration)"},
    "disabled": {"type": "boolean", "title": "Skip the task"},
    "workerGroup": {"type": "object", "title": "Worker group (accepted, not used)"},
    "logLevel": {"type": "string", "enum": ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"], "title": "Minimum log level"},
    "allowFailure": {"type": "boolean", "title": "A failure ends the task in WARNING"},
    "allowWarning": {"type": "boolean", "title": "A warning ends the task in SUCCESS"},
    "logToFile": {"type": "boolean", "title": "Logs go to a file"},
    "runIf": {"type": "string", "title": "Run only when this expression is true"},
    "when": {"type": "string", "title": "Run only when this expression is true"},
    "taskCache": {"type": "object", "title": "Cache the task's outputs"},
    "assets": {"type": "object", "title": "Asset lineage: enableAuto, inputs, outputs (accepted, not recorded)"},
}


def _canonical(names: tuple[str, ...]) -> str:
    return names[0]


def _offered(names: tuple[str, ...]) -> bool:
    """Internal types (no Kestra name, or ForEachItem's `$` parts that the engine writes itself) are not offered."""
    return bool(names) and "$" not in names[0]


def _group(cls: str) -> str:
    """`io.kestra.plugin.core.log.Log` -> `io.kestra.plugin.core` (Kestra groups plugins by their artifact)."""
    parts = cls.split(".")
    return ".".join(parts[:4]) if len(parts) > 4 else ".".join(parts[:-1])


def plugin_groups() -> list[dict[str, Any]]:
    """Kestra's `Plugin` list: per group, its title and the classes of its tasks and triggers."""
    groups: dict[str, dict[str, list[str]]] = {}
    for task in tasktypes.CATALOGUE.values():
        if not _offered(task.kestra_names):
            continue
        cls = _canonical(task.kestra_names)
        groups.setdefault(_group(cls), {"tasks": [], "triggers": []})["tasks"].append(cls)
    for trigger in tasktypes.TRIGGERS.values():
        cls = _canonical(trigger.kestra_names)
        groups.setdefault(_group(cls), {"tasks": [], "triggers": []})["triggers"].append(cls)
    return [
        {
            "name": group.rsplit(".", 1)[-1],
            "title": group.rsplit(".", 1)[-1],
            "group": group,
            "tasks": sorted(members["tasks"]),
            "triggers": sorted(members["triggers"]),
            "conditions": [],
        }
        for group, members in sorted(groups.items())
    ]


def _property_schemas(model: type[BaseModel]) -> tuple[dict[str, Any], list[str]]:
    """Each property's JSON schema by its YAML name, and the required ones."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.get("$defs", {})
    properties: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        # A `$ref` to a nested model is inlined one level: the editor shows its title, not a pointer.
        ref = prop.get("$ref", "")
        properties[name] = definitions.get(ref.rsplit("/", 1)[-1], prop) if ref else prop
    return properties, list(schema.get("required", []))


def plugin_doc(cls: str) -> dict[str, Any] | None:
    """Kestra's `DocumentationWithSchema` for a task or trigger class (any accepted name), or None."""
    try:
        task: tasktypes.TaskType | None = tasktypes.resolve(cls)
    except KeyError:
        task = None
    if task is not None and _offered(task.kestra_names):
        properties, required = _property_schemas(task.properties)
        common = {name: dict(_COMMON_SCHEMAS.get(name, {})) for name in COMMON_TASK_PROPERTIES}
        branches = {
            name: {"type": "array", "title": "Child tasks", "items": {"type": "object"}} for name in task.branch_fields
        }
        # A type's own property wins over a common one of the same name (JiraCreate's description).
        merged = {**common, **branches, **properties}
        required = sorted({"id", "type", *required, *task.required_branches})
        return _doc(_canonical(task.kestra_names), task.name, task.properties, merged, required, "task")
    if task is not None:
        return None
    try:
        trigger = tasktypes.resolve_trigger(cls)
    except KeyError:
        return None
    properties, required = _property_schemas(trigger.properties)
    merged = {"id": _COMMON_SCHEMAS["id"], "type": _COMMON_SCHEMAS["type"], "disabled": {"type": "boolean"}}
    merged |= properties
    return _doc(
        _canonical(trigger.kestra_names), trigger.name, trigger.properties, merged, sorted({"id", "type", *required}),
        "trigger",
    )  # fmt: skip


def _doc(
    cls: str, name: str, model: type[BaseModel], properties: dict[str, Any], required: list[str], kind: str
) -> dict[str, Any]:
    return {
        "cls": cls,
        "shortName": name,
        "kind": kind,
        "markdown": (model.__doc__ or "").strip(),
        "schema": {
            "properties": {"type": "object", "properties": properties, "required": required},
            "outputs": {},
            "definitions": {},
        },
    }
