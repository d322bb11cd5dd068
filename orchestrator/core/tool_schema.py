"""A flow as a tool for outside agents: whether it is one, its name and description, its inputs as JSON Schema.

A flow is a tool when it declares an `McpToolTrigger` (Kestra 2's `io.kestra.plugin.core.trigger.McpToolTrigger`,
with `toolName`, `title`, `toolDescription`, `mcpServer`) or carries the label `chorus.io/mcp-tool: "true"` (a
Chorus shorthand for flows that must stay Kestra 1.x-compatible). The same definition feeds the MCP server's
tool list and the A2A agent cards' skills.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from orchestrator.core.flow import Flow, FlowOutput, Input, InputType
from orchestrator.core.prop_types import Text
from orchestrator.core.trigger_props import TriggerProperties

__all__ = ["TOOL_LABEL", "TRIGGER_TYPE", "McpToolTriggerProps", "ToolSpec", "input_schema", "output_schema", "tool_of"]

#: The label that marks a flow as a tool without a trigger.
TOOL_LABEL = "chorus.io/mcp-tool"
#: The canonical short name of the trigger type.
TRIGGER_TYPE = "McpToolTrigger"
# MCP tool names: 1-128 characters of letters, digits, `_`, `-` and `.` (spec 2025-11-25).
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class McpToolTriggerProps(TriggerProperties):
    """Kestra 2's McpToolTrigger: exposes the flow as a named tool on an MCP server."""

    tool_name: Text | None = None  #: defaults to `<namespace>.<flow id>`
    title: Text | None = None
    tool_description: Text | None = None  #: what the agent reads to decide when to call it
    mcp_server: Text | None = None  #: Kestra's server name; Chorus serves one server, `default`


@dataclass(frozen=True)
class ToolSpec:
    """A flow exposed as a tool: what MCP lists and A2A cards describe."""

    name: str
    title: str
    description: str
    namespace: str
    flow_id: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


def tool_of(flow: Flow) -> ToolSpec | None:
    """The flow's tool definition, or None when the flow is not marked as a tool (or is disabled)."""
    if flow.disabled:
        return None
    trigger = next((t for t in flow.triggers if t.type == TRIGGER_TYPE and not t.disabled), None)
    labelled = any(label.key == TOOL_LABEL and label.value.lower() == "true" for label in flow.labels)
    if trigger is None and not labelled:
        return None
    props: dict[str, JsonValue] = dict(trigger.properties) if trigger is not None else {}
    name = str(props.get("toolName") or f"{flow.namespace}.{flow.id}")
    if not _TOOL_NAME.fullmatch(name):
        # The parser accepts any text; a name MCP clients would refuse falls back to the flow's key.
        name = f"{flow.namespace}.{flow.id}"
    description = props.get("toolDescription") or props.get("description") or flow.description or ""
    return ToolSpec(
        name=name,
        title=str(props.get("title") or flow.id),
        description=str(description),
        namespace=flow.namespace,
        flow_id=flow.id,
        input_schema=input_schema(flow.inputs),
        output_schema=output_schema(flow.outputs),
    )


def _string(fmt: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "string", **({"format": fmt} if fmt else {}), **extra}


def _type_schema(input_type: InputType, item_type: InputType | None = None) -> dict[str, Any]:
    match input_type:
        case InputType.INT:
            return {"type": "integer"}
        case InputType.FLOAT:
            return {"type": "number"}
        case InputType.BOOLEAN | InputType.BOOL:
            return {"type": "boolean"}
        case InputType.DATETIME:
            return _string("date-time")
        case InputType.DATE:
            return _string("date")
        case InputType.TIME:
            return _string("time")
        case InputType.DURATION:
            return _string("duration")
        case InputType.URI:
            return _string("uri")
        case InputType.EMAIL:
            return _string("email")
        case InputType.JSON:
            return {}  # any JSON value
        case InputType.ARRAY:
            return {"type": "array", "items": _type_schema(item_type or InputType.STRING)}
        case InputType.FILE:
            return _string(description="a kestra:/// storage URI or the file's text")
        case _:
            return {"type": "string"}


def _property(spec: Input) -> dict[str, Any]:
    schema = _type_schema(spec.type, spec.item_type)
    if spec.type in (InputType.ENUM, InputType.SELECT) and spec.values and not spec.allow_custom_value:
        schema["enum"] = list(spec.values)
    if spec.type is InputType.MULTISELECT:
        items: dict[str, Any] = {"type": "string"}
        if spec.values and not spec.allow_custom_value:
            items["enum"] = list(spec.values)
        schema = {"type": "array", "items": items}
    if spec.type in (InputType.INT, InputType.FLOAT):
        if isinstance(spec.min, int | float):
            schema["minimum"] = spec.min
        if isinstance(spec.max, int | float):
            schema["maximum"] = spec.max
    if spec.validator and spec.type in (InputType.STRING, InputType.SECRET):
        schema["pattern"] = f"^(?:{spec.validator})$"
    if spec.type is InputType.SECRET:
        schema["writeOnly"] = True
    if spec.description or spec.display_name:
        schema["description"] = spec.description or spec.display_name
    # A default that is an expression is rendered at run time: the client cannot be told its value.
    if spec.defaults is not None and not (isinstance(spec.defaults, str) and "{{" in spec.defaults):
        schema["default"] = spec.defaults
    return schema


def input_schema(inputs: tuple[Input, ...]) -> dict[str, Any]:
    """A JSON Schema object for a flow's typed inputs: required ones are those without defaults."""
    properties = {spec.id: _property(spec) for spec in inputs}
    required = [spec.id for spec in inputs if spec.required and spec.defaults is None]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    # An output expression may render to null (a task that did not run): the type must admit it.
    return {**schema, "type": [schema["type"], "null"]} if "type" in schema else schema


def output_schema(outputs: tuple[FlowOutput, ...]) -> dict[str, Any]:
    """A JSON Schema object for a flow's outputs, rendered and typed when the execution ends."""
    properties = {
        out.id: {**_nullable(_type_schema(out.type)), **({"description": out.description} if out.description else {})}
        for out in outputs
    }
    return {"type": "object", "properties": properties}
