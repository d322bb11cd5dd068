"""AIAgent end to end: tools that are tasks, flows and MCP servers, limits, structured output, approvals."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from tests.e2e.conftest import Stack
from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.harness.services import psycopg_url

AGENT_WITH_TASK_TOOL = """
id: agent-task-tool
namespace: {ns}
inputs:
  - id: question
    type: STRING
tasks:
  - id: agent
    type: io.kestra.plugin.ai.agent.AIAgent
    provider:
      type: io.kestra.plugin.ai.provider.OpenAI
      modelName: gpt-4o-mini
      baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
      apiKey: "{{ secret('OPENAI_API_KEY') }}"
    systemMessage: You answer questions about orders.
    prompt: "{{ inputs.question }}"
    maxIterations: "{{ 3 }}"
    tools:
      - type: io.kestra.plugin.ai.tool.KestraTask
        tasks:
          - id: lookup
            type: io.kestra.plugin.core.output.OutputValues
            values:
              order: "{{ arguments.order_id }}"
              status: shipped
"""


def _question() -> str:
    return f"where is order A-17? ({uuid.uuid4().hex})"


def _task_runs(execution: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    return [t for t in execution["taskRunList"] if t["taskId"] == task_id]


def _audit_actions(stack: Stack, execution_id: str) -> list[dict[str, Any]]:
    body = stack.api.get(f"/executions/{execution_id}/audit").json()
    return list(body["events"])


def _llm_calls(stack: Stack, execution_id: str) -> int:
    with psycopg.connect(psycopg_url(stack.settings.database_url)) as conn:
        row = conn.execute("SELECT count(*) FROM llm_calls WHERE execution_id = %s", (execution_id,)).fetchone()
    return int(row[0]) if row else 0


def test_an_agent_calls_a_task_tool_as_a_child_task_run_and_answers_with_its_result(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(AGENT_WITH_TASK_TOOL)
    question = _question()
    script = openai_wire.script(
        question,
        Reply.tool_call("kestra_task_lookup", {"order_id": "A-17"}, call_id="call_lookup"),
        Reply.text("Order A-17 has shipped."),
    )

    created = stack.run(unique_namespace, "agent-task-tool", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS", execution
    [agent] = _task_runs(execution, "agent")
    [lookup] = _task_runs(execution, "lookup")
    assert lookup["parentTaskRunId"] == agent["id"]
    assert lookup["state"]["current"] == "SUCCESS"
    assert lookup["outputs"]["values"] == {"order": "A-17", "status": "shipped"}
    outputs = agent["outputs"]
    assert outputs["textOutput"] == "Order A-17 has shipped."
    assert outputs["finishReason"] == "STOP"
    assert outputs["iterations"] == 2
    [executed] = outputs["toolExecutions"]
    assert executed["requestName"] == "kestra_task_lookup"
    assert executed["requestArguments"] == {"order_id": "A-17"}
    assert executed["taskRunId"] == lookup["id"]
    assert outputs["tokenUsage"]["totalTokenCount"] > 0
    # The second request carries the assistant's tool call and the tool's result.
    assert len(script.requests) == 2
    first, second = script.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["kestra_task_lookup"]
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_lookup"
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_lookup"
    assert json.loads(tool_message["content"]) == {"values": {"order": "A-17", "status": "shipped"}}
    assert _llm_calls(stack, created["id"]) == 2


def test_an_agent_that_keeps_calling_tools_fails_at_max_iterations(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(AGENT_WITH_TASK_TOOL)
    question = _question()
    script = openai_wire.script(question, Reply.tool_call("kestra_task_lookup", {"order_id": "A-17"}))

    created = stack.run(unique_namespace, "agent-task-tool", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=60)

    assert execution["state"]["current"] == "FAILED"
    assert len(script.requests) == 3
    assert len(_task_runs(execution, "lookup")) == 2
    logs = stack.api.get(f"/logs/{created['id']}").json()
    messages = [line["message"] for line in (logs if isinstance(logs, list) else logs.get("results", []))]
    assert any("AIAgent stopped: the agent reached maxIterations (3 model calls)" in m for m in messages), messages


CHILD_FLOW = """
id: refund
namespace: {ns}
inputs:
  - id: order
    type: STRING
tasks:
  - id: decide
    type: io.kestra.plugin.core.debug.Return
    format: "refund issued for {{ inputs.order }}"
outputs:
  - id: receipt
    type: STRING
    value: "{{ outputs.decide.value }}"
"""

AGENT_WITH_FLOW_TOOL = """
id: agent-flow-tool
namespace: {ns}
inputs:
  - id: question
    type: STRING
tasks:
  - id: agent
    type: AIAgent
    provider: {type: openai, modelName: gpt-4o-mini}
    baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
    apiKey: "{{ secret('OPENAI_API_KEY') }}"
    prompt: "{{ inputs.question }}"
    tools:
      - type: io.kestra.plugin.ai.tool.KestraFlow
        namespace: {ns}
        flowId: refund
        description: Issue a refund for an order
"""


def test_an_agent_runs_a_flow_tool_as_a_linked_subflow_and_reads_its_outputs(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(CHILD_FLOW)
    deploy_flow(AGENT_WITH_FLOW_TOOL)
    question = _question()
    tool = f"kestra_flow_{unique_namespace.replace('.', '_')}_refund"
    script = openai_wire.script(
        question, Reply.tool_call(tool, {"inputs": {"order": "A-17"}}), Reply.text("Refund issued.")
    )

    created = stack.run(unique_namespace, "agent-flow-tool", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS", execution
    [agent] = _task_runs(execution, "agent")
    [call] = _task_runs(execution, "agent__flow_tool_0")
    assert call["parentTaskRunId"] == agent["id"]
    child_id = call["outputs"]["executionId"]
    child = stack.api.get(f"/executions/{child_id}").json()
    assert child["state"]["current"] == "SUCCESS"
    assert child["parentId"] == created["id"]
    assert child["inputs"] == {"order": "A-17"}
    assert json.loads(script.requests[1]["messages"][-1]["content"]) == {"receipt": "refund issued for A-17"}
    assert agent["outputs"]["toolExecutions"][0]["taskRunId"] == call["id"]


AGENT_WITH_MCP_TOOLS = """
id: agent-mcp-tools
namespace: {ns}
inputs:
  - id: question
    type: STRING
tasks:
  - id: agent
    type: io.kestra.plugin.ai.agent.AIAgent
    provider: {type: openai, modelName: gpt-4o-mini}
    baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
    apiKey: "{{ secret('OPENAI_API_KEY') }}"
    prompt: "{{ inputs.question }}"
    tools:
      - type: {tool_type}
        {where}
"""


def _mcp_flow(tool_type: str, where: str) -> str:
    return AGENT_WITH_MCP_TOOLS.replace("{tool_type}", tool_type).replace("{where}", where)


def _assert_mcp_answer(stack: Stack, execution_id: str, script_requests: list[dict[str, Any]]) -> None:
    execution = stack.wait_for_state(execution_id, timeout_s=90)
    assert execution["state"]["current"] == "SUCCESS", execution
    [agent] = _task_runs(execution, "agent")
    [executed] = agent["outputs"]["toolExecutions"]
    assert executed["requestName"] == "order_status"
    assert executed["result"] == "order A-17 is shipped (Colissimo)"
    first, second = script_requests
    assert sorted(t["function"]["name"] for t in first["tools"]) == ["add", "order_status"]
    assert second["messages"][-1]["content"] == "order A-17 is shipped (Colissimo)"
    [call] = [e for e in _audit_actions(stack, execution_id) if e["action"] == "agent.mcp_call"]
    assert call["payload"]["tool"] == "order_status"


def test_an_agent_calls_a_tool_of_an_mcp_server_over_stdio(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    mcp_stdio_command: list[str],
) -> None:
    deploy_flow(_mcp_flow("io.kestra.plugin.ai.tool.StdioMcpClient", f"command: {json.dumps(mcp_stdio_command)}"))
    question = _question()
    script = openai_wire.script(
        question, Reply.tool_call("order_status", {"order_id": "A-17"}), Reply.text("It has shipped.")
    )

    created = stack.run(unique_namespace, "agent-mcp-tools", question=question)

    _assert_mcp_answer(stack, created["id"], script.requests)


def test_an_agent_calls_a_tool_of_an_mcp_server_over_streamable_http(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    mcp_http_url: str,
) -> None:
    deploy_flow(_mcp_flow("StreamableHttpMcpClient", f"url: {mcp_http_url}"))
    question = _question()
    script = openai_wire.script(
        question, Reply.tool_call("order_status", {"order_id": "A-17"}), Reply.text("It has shipped.")
    )

    created = stack.run(unique_namespace, "agent-mcp-tools", question=question)

    _assert_mcp_answer(stack, created["id"], script.requests)


AGENT_WITH_SCHEMA = """
id: agent-schema
namespace: {ns}
inputs:
  - id: question
    type: STRING
tasks:
  - id: agent
    type: io.kestra.plugin.ai.agent.AIAgent
    provider: {type: openai, modelName: gpt-4o-mini}
    baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
    apiKey: "{{ secret('OPENAI_API_KEY') }}"
    prompt: "{{ inputs.question }}"
    configuration:
      responseFormat:
        type: JSON
        jsonSchema:
          type: object
          required: [category]
          properties:
            category: {type: string, enum: [BILLING, TECHNICAL]}
"""


def test_an_agent_answer_that_breaks_its_json_schema_fails_the_task_run(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(AGENT_WITH_SCHEMA)
    question = _question()
    script = openai_wire.script(question, Reply.text('{"category": "SHIPPING"}'))

    created = stack.run(unique_namespace, "agent-schema", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=60)

    assert execution["state"]["current"] == "FAILED"
    assert script.requests[0]["response_format"]["type"] == "json_schema"
    logs = stack.api.get(f"/logs/{created['id']}").json()
    messages = [line["message"] for line in (logs if isinstance(logs, list) else logs.get("results", []))]
    assert any("structured output does not match jsonResponseSchema: 'SHIPPING' is not one of" in m for m in messages)


def test_an_agent_answer_that_fits_its_json_schema_is_the_json_output(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(AGENT_WITH_SCHEMA)
    question = _question()
    openai_wire.script(question, Reply.text('{"category": "BILLING"}'))

    created = stack.run(unique_namespace, "agent-schema", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS"
    assert _task_runs(execution, "agent")[0]["outputs"]["jsonOutput"] == {"category": "BILLING"}
