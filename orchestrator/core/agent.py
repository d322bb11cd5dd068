"""AIAgent tools as the model sees them, and the pure rules of the agent loop (limits, tool calls, outputs).

A flow declares tools in Kestra's shapes (`io.kestra.plugin.ai.tool.KestraTask`, `KestraFlow`,
`StdioMcpClient`, `StreamableHttpMcpClient`, or the short names). Task and flow tools become task
specs the parser checks like any task (a flow tool is a Subflow task named by `flow_tool_task_id`), so
each call runs as a child task run of the agent; MCP tools are listed from their server at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.flow import TaskSpec

__all__ = [
    "PLACEHOLDER",
    "TOOL_KINDS",
    "AgentLimits",
    "ToolCall",
    "agent_of_tool",
    "fill_placeholders",
    "flow_tool_name",
    "flow_tool_task_id",
    "function_name",
    "literal",
    "mcp_tool_task_id",
    "parse_tool_calls",
    "placeholder_parameters",
    "task_tool_name",
    "tool_kind",
    "tool_run_properties",
]

#: A task property set to this text is for the model to fill (Kestra's KestraTask convention).
PLACEHOLDER = "..."

#: Tool type names (Kestra's and Chorus's short ones) -> kind.
TOOL_KINDS: Mapping[str, str] = {
    "io.kestra.plugin.ai.tool.KestraTask": "task",
    "KestraTask": "task",
    "io.kestra.plugin.ai.tool.KestraFlow": "flow",
    "KestraFlow": "flow",
    "io.kestra.plugin.ai.tool.StdioMcpClient": "mcp-stdio",
    "StdioMcpClient": "mcp-stdio",
    "io.kestra.plugin.ai.tool.StreamableHttpMcpClient": "mcp-http",
    "StreamableHttpMcpClient": "mcp-http",
}

_NAME_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")
_EXPRESSION_MARKS = ("{{", "{%", "{#")


def tool_kind(type_name: object) -> str | None:
    """The kind of a tool entry's `type` (task, flow, mcp-stdio, mcp-http), or None when unknown."""
    return TOOL_KINDS.get(type_name) if isinstance(type_name, str) else None


def function_name(raw: str) -> str:
    """A name OpenAI-compatible APIs accept for a function: [A-Za-z0-9_-], at most 64 characters."""
    return _NAME_FORBIDDEN.sub("_", raw)[:64]


def task_tool_name(task_id: str) -> str:
    return function_name(f"kestra_task_{task_id}")


def flow_tool_name(namespace: str, flow_id: str) -> str:
    return function_name(f"kestra_flow_{namespace}_{flow_id}")


def flow_tool_task_id(agent_id: str, index: int) -> str:
    """The id of the Subflow task that runs the flow tool at `tools[index]` of an agent."""
    return f"{agent_id}__flow_tool_{index}"


def agent_of_tool(agents: Iterable[TaskSpec], task_id: str) -> TaskSpec | None:
    """The AIAgent (among a flow's tasks) that has the task `task_id` as one of its tools."""
    for task in agents:
        if task.type == "AIAgent" and any(tool.id == task_id for tool in task.tools):
            return task
    return None


def tool_run_properties(tool: TaskSpec, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A tool task's properties for one call: placeholders filled, or a flow tool's inputs merged (made inert)."""
    if tool.type == "McpToolCall":
        return dict(tool.properties)  # the call's tool name and arguments reach it as variables
    if tool.type == "Subflow":
        given = arguments.get("inputs", arguments)
        defaults = tool.properties.get("inputs")
        inputs = {**(defaults if isinstance(defaults, dict) else {}), **literal(dict(given or {}))}
        return {**tool.properties, "inputs": inputs}
    return fill_placeholders(tool.properties, arguments)


def mcp_tool_task_id(agent_id: str, index: int) -> str:
    """The id of the McpToolCall task that calls the tools of the MCP server at `tools[index]` of an agent."""
    return f"{agent_id}__mcp_tool_{index}"


def placeholder_parameters(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema of a task tool's arguments: one required parameter per `...` property."""
    names = sorted(k for k, v in properties.items() if v == PLACEHOLDER)
    return {
        "type": "object",
        "properties": {name: {"description": f"value of the task's '{name}' property"} for name in names},
        "required": names,
    }


def literal(value: Any) -> Any:
    """A model-supplied value made inert for rendering: text the model wrote is never an expression.

    Arguments reach task properties that workers render; without this, a model could write
    `{{ secret('...') }}` into an argument and read the secret back from the tool's result.
    """
    if isinstance(value, str):
        if any(mark in value for mark in _EXPRESSION_MARKS):
            if "endraw" in value:
                raise ValueError("an argument may not contain the text 'endraw'")
            return "{% raw %}" + value + "{% endraw %}"
        return value
    if isinstance(value, list):
        return [literal(v) for v in value]
    if isinstance(value, dict):
        return {str(k): literal(v) for k, v in value.items()}
    return value


def fill_placeholders(properties: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A task tool's properties with each `...` replaced by the model's argument of that name (made inert)."""
    missing = sorted(k for k, v in properties.items() if v == PLACEHOLDER and k not in arguments)
    if missing:
        raise ValueError(f"missing argument(s) {', '.join(missing)}")
    return {k: literal(arguments[k]) if v == PLACEHOLDER else v for k, v in properties.items()}


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for."""

    id: str
    name: str
    arguments: dict[str, Any]

    def public(self) -> dict[str, Any]:
        """Kestra's ToolExecutionRequest shape."""
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


def parse_tool_calls(message: Mapping[str, Any]) -> list[ToolCall]:
    """The function calls of an assistant message; arguments that are not a JSON object become an error."""
    calls: list[ToolCall] = []
    for i, raw in enumerate(message.get("tool_calls") or []):
        function = raw.get("function") or {}
        text = function.get("arguments") or "{}"
        try:
            arguments = json.loads(text) if isinstance(text, str) else dict(text)
        except ValueError as e:
            raise ValueError(f"tool call {i} ({function.get('name')}) has arguments that are not JSON: {e}") from e
        if not isinstance(arguments, dict):
            raise ValueError(f"tool call {i} ({function.get('name')}) has arguments that are not a JSON object")
        calls.append(ToolCall(str(raw.get("id") or f"call_{i}"), str(function.get("name") or ""), arguments))
    return calls


@dataclass(frozen=True)
class AgentLimits:
    """`maxIterations` (model calls) and `maxSequentialToolsInvocations` (tool calls) of one agent run."""

    max_iterations: int
    max_tool_calls: int | None

    def check(self, *, model_calls: int, tool_calls: int, asked: int) -> str | None:
        """Why the agent must stop before running `asked` more tool calls, or None to go on."""
        if model_calls >= self.max_iterations:
            return (
                f"the agent reached maxIterations ({self.max_iterations} model calls) and the model still "
                f"asks for {asked} tool call(s) instead of answering"
            )
        if self.max_tool_calls is not None and tool_calls + asked > self.max_tool_calls:
            return (
                f"the agent would exceed maxSequentialToolsInvocations ({self.max_tool_calls}): "
                f"{tool_calls} tool call(s) made, the model asks for {asked} more"
            )
        return None


#: OpenAI finish reasons -> langchain4j's FinishReason names, which Kestra's AIAgent outputs.
FINISH_REASONS: Mapping[str, str] = {
    "stop": "STOP",
    "length": "LENGTH",
    "tool_calls": "TOOL_EXECUTION",
    "function_call": "TOOL_EXECUTION",
    "content_filter": "CONTENT_FILTER",
}
