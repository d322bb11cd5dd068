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
