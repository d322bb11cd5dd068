"""A2A (protocol 0.3, JSON-RPC binding) shapes for Chorus: agent cards from tools, tasks from executions.

An A2A task *is* an execution (task id = execution id); its state maps as CREATED/RUNNING → working,
PAUSED → input-required, SUCCESS/WARNING → completed, FAILED → failed, KILLED/CANCELLED → canceled. The
flow's outputs are the task's one artifact, a data part.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.states import State
from orchestrator.core.tool_schema import ToolSpec

PROTOCOL_VERSION = "0.3.0"
#: The label an execution keeps its A2A contextId in (clients group tasks by it).
CONTEXT_LABEL = "a2a.contextId"

# JSON-RPC 2.0 and A2A error codes.
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
TASK_NOT_FOUND, TASK_NOT_CANCELABLE, UNSUPPORTED_OPERATION = -32001, -32002, -32004
#: Chorus's own code (JSON-RPC leaves -32000..-32099 to servers): the caller lacks the permission.
PERMISSION_DENIED = -32040

_STATES: dict[State, str] = {
    State.SUCCESS: "completed",
    State.WARNING: "completed",
    State.FAILED: "failed",
    State.KILLED: "canceled",
    State.CANCELLED: "canceled",
    State.PAUSED: "input-required",
    State.SKIPPED: "completed",
    State.RETRIED: "failed",  # replaced by a new execution: this one did not succeed
}


def task_state(state: State) -> str:
    """The A2A task state of an execution state (anything not ended or paused is `working`)."""
    return _STATES.get(state, "working")


class RpcRequest(BaseModel):
    """A JSON-RPC 2.0 request."""

    model_config = ConfigDict(extra="forbid")

    jsonrpc: str = Field(pattern=r"^2\.0$")
    id: str | int | None = None
    method: str
    params: dict[str, Any] = Field(default_factory=dict)


class Part(BaseModel):
    """A message part: `text` or `data` (files are not taken: flow FILE inputs come as storage URIs in data)."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(pattern=r"^(text|data|file)$")
    text: str | None = None
    data: dict[str, Any] | None = None


class Message(BaseModel):
    """The user's message: its parts become the flow's inputs."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    role: str = Field(pattern=r"^(user|agent)$")
    parts: list[Part]
    message_id: str = Field(alias="messageId")
    context_id: str | None = Field(default=None, alias="contextId")
    task_id: str | None = Field(default=None, alias="taskId")
    metadata: dict[str, Any] = Field(default_factory=dict)


class SendParams(BaseModel):
    """`message/send` and `message/stream` params."""

    model_config = ConfigDict(extra="allow")

    message: Message
    configuration: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class TaskIdParams(BaseModel):
    """`tasks/get` and `tasks/cancel` params."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(min_length=1)
    history_length: int | None = Field(default=None, alias="historyLength")


def inputs_of(message: Message, tool: ToolSpec) -> dict[str, Any]:
    """Flow inputs from a message: its data parts merged; a text part fills the flow's only plain text input."""
    inputs: dict[str, Any] = {}
    for part in message.parts:
        if part.kind == "data" and part.data is not None:
            inputs.update(part.data)
    texts = [p.text for p in message.parts if p.kind == "text" and p.text]
    properties: dict[str, dict[str, Any]] = tool.input_schema["properties"]
    strings = [n for n, s in properties.items() if s.get("type") == "string" and not {"format", "enum"} & s.keys()]
    if texts and not inputs and len(strings) == 1:
        inputs[strings[0]] = "\n".join(texts)
    return inputs


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def status(state: State, execution_id: str, context_id: str, note: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"state": task_state(state), "timestamp": _now()}
    if note:
        body["message"] = {
            "kind": "message", "role": "agent", "messageId": f"{execution_id}-{state}".lower(),
            "parts": [{"kind": "text", "text": note}], "taskId": execution_id, "contextId": context_id,
        }  # fmt: skip
    return body


def artifact(outputs: dict[str, Any]) -> dict[str, Any]:
    return {"artifactId": "outputs", "name": "outputs", "parts": [{"kind": "data", "data": outputs}]}


def task(execution_id: str, context_id: str, state: State, outputs: dict[str, Any], flow: str) -> dict[str, Any]:
    """An execution as an A2A Task."""
    body: dict[str, Any] = {
        "kind": "task",
        "id": execution_id,
        "contextId": context_id,
        "status": status(state, execution_id, context_id, f"execution {state}" if state.is_terminal else None),
        "metadata": {"chorus.io/flow": flow, "chorus.io/state": str(state)},
    }
    if outputs:
        body["artifacts"] = [artifact(outputs)]
    return body


def skill(tool: ToolSpec) -> dict[str, Any]:
    return {
        "id": f"{tool.namespace}.{tool.flow_id}",
        "name": tool.title,
        "description": tool.description or f"Run the Chorus flow {tool.namespace}.{tool.flow_id}.",
        "tags": ["chorus", tool.namespace],
        "inputModes": ["application/json", "text/plain"],
        "outputModes": ["application/json"],
    }


def card(
    *, name: str, description: str, url: str, version: str, skills: list[dict[str, Any]], extended: bool
) -> dict[str, Any]:
    """An AgentCard: JSON-RPC at `url`, streaming, Bearer (Chorus API tokens) as the security scheme."""
    return {
        "protocolVersion": PROTOCOL_VERSION,
        "name": name,
        "description": description,
        "url": url,
        "preferredTransport": "JSONRPC",
        "version": version,
        "capabilities": {"streaming": True, "pushNotifications": False, "stateTransitionHistory": False},
        "defaultInputModes": ["application/json", "text/plain"],
        "defaultOutputModes": ["application/json"],
        "skills": skills,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A Chorus API token."}},
        "security": [{"bearer": []}],
        "supportsAuthenticatedExtendedCard": extended,
    }
