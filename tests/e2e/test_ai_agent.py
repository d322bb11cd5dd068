"""AIAgent end to end: tools that are tasks, flows and MCP servers, limits, structured output, approvals."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from orchestrator.engine.accounts import Binding
from tests.e2e.conftest import Stack
from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.harness.agent_flows import agent_flow, lookup_tool, mcp_tool, task_tool
from tests.harness.executions import task_runs
from tests.harness.services import psycopg_url
from tests.harness.stack import secured_api_over
from tests.harness.waiting import wait_until

AGENT_WITH_TASK_TOOL = agent_flow(
    "agent-task-tool",
    lookup_tool("status: shipped"),
    more='systemMessage: You answer questions about orders.\nmaxIterations: "{{ 3 }}"',
)


def _question() -> str:
    return f"where is order A-17? ({uuid.uuid4().hex})"


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
    [agent] = task_runs(execution, "agent")
    [lookup] = task_runs(execution, "lookup")
    assert lookup["parentTaskRunId"] == agent["id"]
    assert lookup["state"]["current"] == "SUCCESS"
    assert lookup["outputs"]["values"] == {"order": "A-17", "status": "shipped"}
    # The tool ran as its own Celery task on its pool, not inside the agent's.
    assert lookup["attempts"][0]["celeryTaskId"] not in (None, agent["attempts"][0]["celeryTaskId"])
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


def test_tool_calls_asked_together_run_as_one_child_task_run_each(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(AGENT_WITH_TASK_TOOL)
    question = _question()
    script = openai_wire.script(
        question,
        Reply.tool_calls_of(("kestra_task_lookup", {"order_id": "A-17"}), ("kestra_task_lookup", {"order_id": "B-42"})),
        Reply.text("Both found."),
    )

    created = stack.run(unique_namespace, "agent-task-tool", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS", execution
    lookups = sorted(task_runs(execution, "lookup"), key=lambda t: t["outputs"]["values"]["order"])
    assert [t["outputs"]["values"]["order"] for t in lookups] == ["A-17", "B-42"]
    results = [
        (m["tool_call_id"], json.loads(m["content"])["values"]["order"]) for m in script.requests[1]["messages"][-2:]
    ]
    assert results == [("call_1", "A-17"), ("call_2", "B-42")]


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
    assert len(task_runs(execution, "lookup")) == 2
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
    [agent] = task_runs(execution, "agent")
    [call] = task_runs(execution, "agent__flow_tool_0")
    assert call["parentTaskRunId"] == agent["id"]
    child_id = call["outputs"]["executionId"]
    child = stack.api.get(f"/executions/{child_id}").json()
    assert child["state"]["current"] == "SUCCESS"
    assert child["parentId"] == created["id"]
    assert child["inputs"] == {"order": "A-17"}
    assert json.loads(script.requests[1]["messages"][-1]["content"]) == {"receipt": "refund issued for A-17"}
    assert agent["outputs"]["toolExecutions"][0]["taskRunId"] == call["id"]


def _mcp_flow(tool: str) -> str:
    return agent_flow("agent-mcp-tools", tool, short_provider=True)


def _assert_mcp_answer(stack: Stack, execution_id: str, script_requests: list[dict[str, Any]]) -> None:
    execution = stack.wait_for_state(execution_id, timeout_s=90)
    assert execution["state"]["current"] == "SUCCESS", execution
    [agent] = task_runs(execution, "agent")
    [executed] = agent["outputs"]["toolExecutions"]
    assert executed["requestName"] == "order_status"
    assert executed["result"] == "order A-17 is shipped (Colissimo)"
    [call_run] = task_runs(execution, "agent__mcp_tool_0")  # the call is a child task run of the agent
    assert call_run["parentTaskRunId"] == agent["id"] and executed["taskRunId"] == call_run["id"]
    assert call_run["outputs"]["text"] == "order A-17 is shipped (Colissimo)"
    assert call_run["outputs"]["isError"] is False
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
    deploy_flow(_mcp_flow(mcp_tool("io.kestra.plugin.ai.tool.StdioMcpClient", command=mcp_stdio_command)))
    question = _question()
    script = openai_wire.script(
        question, Reply.tool_call("order_status", {"order_id": "A-17"}), Reply.text("It has shipped.")
    )

    created = stack.run(unique_namespace, "agent-mcp-tools", question=question)

    _assert_mcp_answer(stack, created["id"], script.requests)


def test_an_agent_run_holds_one_mcp_session_for_its_listing_and_all_its_calls(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    mcp_stdio_command: list[str],
    tmp_path: Path,
) -> None:
    shared = Path(tempfile.mkdtemp(prefix="chorus-mcp-sessions-"))  # the server may run as the scripts user
    shared.chmod(0o777)
    sessions_log = shared / "sessions.log"
    env = f"env: {{CHORUS_TEST_MCP_SESSIONS_LOG: '{sessions_log}'}}"
    deploy_flow(_mcp_flow(mcp_tool("io.kestra.plugin.ai.tool.StdioMcpClient", command=mcp_stdio_command, more=env)))
    question = _question()
    script = openai_wire.script(
        question,
        Reply.tool_call("order_status", {"order_id": "A-17"}),
        Reply.tool_call("add", {"a": 2, "b": 3}, call_id="call_2"),
        Reply.text("Shipped, and 5."),
    )

    created = stack.run(unique_namespace, "agent-mcp-tools", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=90)

    assert execution["state"]["current"] == "SUCCESS", execution
    assert len(script.requests) == 3 and script.requests[2]["messages"][-1]["content"] == "5"
    assert len(sessions_log.read_text().splitlines()) == 1  # one stdio server: tools listed and both calls


def test_an_agent_calls_a_tool_of_an_mcp_server_over_streamable_http(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    mcp_http_url: str,
) -> None:
    deploy_flow(_mcp_flow(mcp_tool("StreamableHttpMcpClient", url=mcp_http_url)))
    question = _question()
    script = openai_wire.script(
        question, Reply.tool_call("order_status", {"order_id": "A-17"}), Reply.text("It has shipped.")
    )

    created = stack.run(unique_namespace, "agent-mcp-tools", question=question)

    _assert_mcp_answer(stack, created["id"], script.requests)


AGENT_WITH_SCHEMA = agent_flow(
    "agent-schema",
    short_provider=True,
    more="configuration:\n  responseFormat:\n    type: JSON\n    jsonSchema:\n      type: object\n"
    "      required: [category]\n      properties:\n        category: {type: string, enum: [BILLING, TECHNICAL]}",
)


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
    assert task_runs(execution, "agent")[0]["outputs"]["jsonOutput"] == {"category": "BILLING"}


AGENT_WITH_GATED_TOOL = agent_flow(
    "agent-approval",
    task_tool(
        '- id: refund\n  type: io.kestra.plugin.core.debug.Return\n  format: "..."', more="requireApproval: true"
    ),
    short_provider=True,
)


@pytest.fixture(scope="module")
def secured_api(stack: Stack) -> Iterator[TestClient]:
    with secured_api_over(
        stack, ADMIN, {APPROVER: [Binding("approver", "tests")], VIEWER: [Binding("viewer", "tests")]}
    ) as client:
        yield client


ADMIN = ("agent-admin@chorus.test", "agent-admin-password")
APPROVER = ("alice-approver", "alice-password-1")
VIEWER = ("victor-viewer", "victor-password-1")


def _paused_for_approval(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> tuple[str, Any, dict[str, Any]]:
    deploy_flow(AGENT_WITH_GATED_TOOL)
    question = _question()
    script = openai_wire.script(
        question,
        Reply.tool_calls_of(
            ("kestra_task_refund", {"format": "refund 30 EUR on A-17"}),
            content="A refund of 30 EUR is fair.",
            id_prefix="refund",
        ),
        Reply.text("Done."),
    )
    created = stack.run(unique_namespace, "agent-approval", question=question)
    execution = stack.wait_for_state(created["id"], {"PAUSED", "FAILED", "SUCCESS"}, timeout_s=60)
    assert execution["state"]["current"] == "PAUSED", execution
    [agent] = task_runs(execution, "agent")
    return created["id"], script, agent


def _resume(api: TestClient, execution_id: str, user: tuple[str, str], **form: str) -> Any:
    return api.post(
        f"/api/v1/main/executions/{execution_id}/resume", files={k: (None, v) for k, v in form.items()}, auth=user
    )


def test_an_approved_tool_call_runs_after_the_approver_resumes_and_a_viewer_cannot_approve(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    secured_api: TestClient,
) -> None:
    execution_id, script, agent = _paused_for_approval(stack, deploy_flow, unique_namespace, openai_wire)
    assert agent["state"]["current"] == "PAUSED"
    logs = stack.api.get(f"/logs/{execution_id}").json()
    before = [line["message"] for line in (logs if isinstance(logs, list) else logs.get("results", []))]
    assert any("kestra_task_refund needs an approval" in m for m in before), before  # kept with the pause
    proposal = agent["outputs"]["approval"]
    assert proposal["tool"] == "kestra_task_refund"
    assert proposal["arguments"] == {"format": "refund 30 EUR on A-17"}
    assert proposal["reasoning"] == "A refund of 30 EUR is fair."

    assert _resume(secured_api, execution_id, VIEWER, decision="APPROVE").status_code == 403
    missing = _resume(secured_api, execution_id, APPROVER)
    assert missing.status_code in (400, 422) and "decision" in missing.text
    assert _resume(secured_api, execution_id, APPROVER, decision="APPROVE").status_code == 204
    execution = stack.wait_for_state(execution_id, timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS", execution
    [refund] = task_runs(execution, "refund")
    assert refund["outputs"] == {"value": "refund 30 EUR on A-17"}
    assert json.loads(script.requests[1]["messages"][-1]["content"]) == {"value": "refund 30 EUR on A-17"}
    [approved] = [e for e in _audit_actions(stack, execution_id) if e["action"] == "agent.tool_approved"]
    assert approved["actor"].startswith(f"user:{APPROVER[0]}")  # the approver, as the API names callers
    assert approved["payload"]["tool"] == "kestra_task_refund"


def test_a_rejected_tool_call_is_reported_to_the_model_which_goes_on(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    secured_api: TestClient,
) -> None:
    execution_id, script, _ = _paused_for_approval(stack, deploy_flow, unique_namespace, openai_wire)

    response = _resume(secured_api, execution_id, APPROVER, decision="REJECT", reason="over the refund limit")
    assert response.status_code == 204
    execution = stack.wait_for_state(execution_id, timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS", execution
    assert task_runs(execution, "refund") == []
    tool_message = script.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "refund_1"
    assert tool_message["content"].startswith(f"REJECTED: user:{APPROVER[0]}")
    assert "did not approve this call" in tool_message["content"]
    assert "over the refund limit" in tool_message["content"]
    [agent] = task_runs(execution, "agent")
    assert agent["outputs"]["toolExecutions"][0]["approval"]["decision"] == "REJECTED"
    [rejected] = [e for e in _audit_actions(stack, execution_id) if e["action"] == "agent.tool_rejected"]
    assert rejected["actor"].startswith(f"user:{APPROVER[0]}")
    assert rejected["payload"]["reason"] == "over the refund limit"


AGENT_ON_A_DOOMED_WORKER = agent_flow(
    "agent-recovery",
    task_tool(
        "- id: wait_for_warehouse\n  type: io.kestra.plugin.core.flow.Sleep\n  duration: PT3S",
        tool_type="KestraTask",
        more="description: Wait for the warehouse to answer",
    ),
    more="workerGroup:\n  key: doomed-agent",
    short_provider=True,
)


def test_an_agent_whose_worker_dies_resumes_its_conversation_on_another_worker(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(AGENT_ON_A_DOOMED_WORKER)
    question = _question()
    script = openai_wire.script(
        question, Reply.tool_call("kestra_task_wait_for_warehouse", {}), Reply.text("The warehouse answered.")
    )
    stack.cluster.start_worker("doomed-agent")
    try:
        execution_id = stack.run(unique_namespace, "agent-recovery", question=question)["id"]
        wait_until(
            lambda: task_runs(stack.api.get(f"/executions/{execution_id}").json(), "wait_for_warehouse"),
            timeout_s=30,
            message="the agent calling its tool",
        )
        stack.cluster.kill_worker("doomed-agent")  # mid-agent: after its first model call, during its tool call
        stack.cluster.start_worker("doomed-agent")

        execution = stack.wait_for_state(execution_id, timeout_s=60)
    finally:
        if "doomed-agent" in stack.cluster.workers:
            stack.cluster.stop_worker("doomed-agent")

    assert execution["state"]["current"] == "SUCCESS", execution
    [agent] = task_runs(execution, "agent")
    assert agent["outputs"]["textOutput"] == "The warehouse answered."
    assert len(agent["attempts"]) == 1  # the same attempt, taken over and resumed
    assert len(task_runs(execution, "wait_for_warehouse")) == 1  # the tool ran once
    assert len(script.requests) == 2  # the first model call was not made again
    assert _llm_calls(stack, execution_id) == 2
    taken_over = [e["subject"] for e in _audit_actions(stack, execution_id) if e["action"] == "task_run.taken_over"]
    assert agent["id"] in taken_over


AGENTS_SHARING_MEMORY = """
id: agents-memory
namespace: {ns}
inputs:
  - id: question
    type: STRING
tasks:
  - id: introduce
    type: io.kestra.plugin.ai.agent.AIAgent
    prompt: "Hi, my name is John. ({{ inputs.question }})"
  - id: recall
    type: io.kestra.plugin.ai.agent.AIAgent
    prompt: "What is my name? ({{ inputs.question }})"
  - id: stranger
    type: io.kestra.plugin.ai.agent.AIAgent
    prompt: "Who am I? ({{ inputs.question }})"
    memory:
      memoryId: someone-else
pluginDefaults:
  - type: io.kestra.plugin.ai.agent.AIAgent
    values:
      provider: {type: io.kestra.plugin.ai.provider.OpenAI, modelName: gpt-4o-mini}
      baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
      apiKey: "{{ secret('OPENAI_API_KEY') }}"
      memory:
        memoryId: john
"""


def test_agents_with_the_same_memory_id_see_the_earlier_conversation(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(AGENTS_SHARING_MEMORY)
    question = _question()
    script = openai_wire.script(
        question, Reply.text("Hello John!"), Reply.text("You are John."), Reply.text("I do not know.")
    )

    created = stack.run(unique_namespace, "agents-memory", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS", execution
    _, recall, stranger = script.requests
    assert [(m["role"], m["content"]) for m in recall["messages"]] == [
        ("user", f"Hi, my name is John. ({question})"),
        ("assistant", "Hello John!"),
        ("user", f"What is my name? ({question})"),
    ]
    assert [m["role"] for m in stranger["messages"]] == ["user"]
    assert task_runs(execution, "recall")[0]["outputs"]["textOutput"] == "You are John."


def test_a_replay_from_a_later_agent_keeps_the_memory_of_the_agents_before_it(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(AGENTS_SHARING_MEMORY)
    question = _question()
    script = openai_wire.script(question, Reply.text("Hello John!"), Reply.text("You are John."))
    created = stack.run(unique_namespace, "agents-memory", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=60)
    assert execution["state"]["current"] == "SUCCESS", execution
    [recall] = task_runs(execution, "recall")

    replayed = stack.api.post(f"/executions/{created['id']}/replay", params={"taskRunId": recall["id"]})
    assert replayed.status_code == 200, replayed.text
    again = stack.wait_for_state(replayed.json()["id"], timeout_s=60)

    assert again["state"]["current"] == "SUCCESS", again
    # The replayed `recall` (after introduce, recall, stranger) sees `introduce`'s conversation, copied over.
    replayed_recall = script.requests[3]
    assert [(m["role"], m["content"]) for m in replayed_recall["messages"]] == [
        ("user", f"Hi, my name is John. ({question})"),
        ("assistant", "Hello John!"),
        ("user", f"What is my name? ({question})"),
    ]


AGENT_WITH_BUDGET = agent_flow(
    "agent-budget",
    task_tool("- id: note\n  type: io.kestra.plugin.core.log.Log\n  message: noted", tool_type="KestraTask"),
    more="budget:\n  maxTokens: 50",
    short_provider=True,
    agent_type="AIAgent",
)


def test_an_agent_fails_at_the_model_call_that_crosses_its_token_budget(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, openai_wire: OpenAIWire
) -> None:
    deploy_flow(AGENT_WITH_BUDGET)
    question = _question()
    big = Reply.tool_calls_of(("kestra_task_note", {}), tokens_in=40, tokens_out=5)
    script = openai_wire.script(question, big, Reply.text("never sent", tokens_in=40, tokens_out=5))

    created = stack.run(unique_namespace, "agent-budget", question=question)
    execution = stack.wait_for_state(created["id"], timeout_s=60)

    assert execution["state"]["current"] == "FAILED"
    assert len(script.requests) == 2  # the second call's answer pushed usage over the cap
    logs = stack.api.get(f"/logs/{created['id']}").json()
    messages = [line["message"] for line in (logs if isinstance(logs, list) else logs.get("results", []))]
    assert any("LLM budget exceeded for this task run: 90 tokens (max 50)" in m for m in messages), messages
