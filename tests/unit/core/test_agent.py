"""The pure rules of AIAgent: tool names, placeholders, inert arguments, tool calls, limits, and parsing tools."""

from __future__ import annotations

import pytest

from orchestrator.core import agent as rules
from orchestrator.core.errors import FlowInvalid
from orchestrator.core.expressions import render_value
from orchestrator.core.parse import parse_flow

AGENT = """
id: a
namespace: t.agents
tasks:
  - id: helper
    type: io.kestra.plugin.ai.agent.AIAgent
    prompt: hi
    provider: {type: openai, modelName: m}
    tools:
{tools}
"""


def _flow(tools: str) -> str:
    return AGENT.replace("{tools}", tools)


def test_function_names_keep_only_what_openai_accepts() -> None:
    assert rules.flow_tool_name("company.team", "refund-v2") == "kestra_flow_company_team_refund-v2"
    assert rules.function_name("a b/c" + "x" * 80) == ("a_b_c" + "x" * 80)[:64]
    assert rules.task_tool_name("lookup") == "kestra_task_lookup"


def test_placeholders_are_the_parameters_and_are_filled_by_the_arguments() -> None:
    properties = {"uri": "...", "method": "GET", "body": "..."}

    assert rules.placeholder_parameters(properties)["required"] == ["body", "uri"]
    assert rules.fill_placeholders(properties, {"uri": "https://x", "body": "{}"}) == {
        "uri": "https://x",
        "method": "GET",
        "body": "{}",
    }


def test_a_missing_placeholder_argument_is_named() -> None:
    with pytest.raises(ValueError, match="missing argument\\(s\\) body, uri"):
        rules.fill_placeholders({"uri": "...", "body": "..."}, {})


def test_an_argument_written_as_an_expression_renders_as_plain_text() -> None:
    arguments = {"message": "{{ secret('DB_PASSWORD') }}", "nested": [{"x": "{% if true %}y{% endif %}"}]}

    inert = rules.literal(arguments)

    assert render_value(inert, {}) == arguments


def test_an_argument_that_tries_to_close_the_raw_block_is_refused() -> None:
    with pytest.raises(ValueError, match="endraw"):
        rules.literal("{% endraw %}{{ secret('X') }}")


def test_a_flow_tool_merges_the_models_inputs_over_its_defaults() -> None:
    flow = parse_flow(
        _flow("      - type: KestraFlow\n        namespace: t.agents\n        flowId: b\n        inputs: {a: 1, b: 2}")
    )
    [tool] = flow.task("helper").tools

    properties = rules.tool_run_properties(tool, {"inputs": {"b": "{{ x }}"}})

    assert properties["inputs"] == {"a": 1, "b": "{% raw %}{{ x }}{% endraw %}"}
    assert properties["namespace"] == "t.agents" and properties["wait"] is True


def test_tool_calls_are_read_from_the_assistant_message() -> None:
    message = {
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}},
        ]
    }

    assert rules.parse_tool_calls(message) == [rules.ToolCall("c1", "f", {"a": 1}), rules.ToolCall("c2", "g", {})]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    message = {"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": arguments}}]}

    with pytest.raises(ValueError, match="tool call 0 \\(f\\)"):
        rules.parse_tool_calls(message)


def test_limits_stop_at_max_iterations_and_at_the_tool_call_cap() -> None:
    limits = rules.AgentLimits(max_iterations=3, max_tool_calls=4)

    assert limits.check(model_calls=2, tool_calls=2, asked=2) is None
    assert "maxIterations (3 model calls)" in (limits.check(model_calls=3, tool_calls=0, asked=1) or "")
    assert "maxSequentialToolsInvocations (4)" in (limits.check(model_calls=1, tool_calls=3, asked=2) or "")


def test_task_and_flow_tools_are_task_specs_of_the_agent_found_by_id() -> None:
    flow = parse_flow(
        _flow(
            "      - type: io.kestra.plugin.ai.tool.KestraTask\n"
            "        tasks:\n"
            "          - {id: lookup, type: io.kestra.plugin.core.log.Log, message: '...'}\n"
            "      - {type: io.kestra.plugin.ai.tool.KestraFlow, namespace: t.other, flowId: b}\n"
            "      - {type: StdioMcpClient, command: [python, server.py]}\n"
            "      - {type: StreamableHttpMcpClient, url: 'http://127.0.0.1:1/mcp'}"
        )
    )

    agent = flow.task("helper")
    assert [(t.id, t.type) for t in agent.tools] == [
        ("lookup", "Log"),
        ("helper__flow_tool_1", "Subflow"),
        ("helper__mcp_tool_2", "McpToolCall"),
        ("helper__mcp_tool_3", "McpToolCall"),
    ]
    assert flow.task("helper__mcp_tool_2").properties == {"transport": "stdio", "command": ["python", "server.py"]}
    assert flow.task("lookup").properties == {"message": "..."}
    assert rules.agent_of_tool(flow.iter_tasks(), "helper__flow_tool_1") is agent
    assert rules.agent_of_tool(flow.iter_tasks(), "helper") is None


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ("      - {type: Bogus}", "tasks[0].tools[0].type (line 10, column 16): unknown tool type 'Bogus'"),
        (
            "      - {type: KestraTask}",
            "tasks[0].tools[0].tasks (line 10, column 9): missing required property 'tasks'",
        ),
        (
            "      - {type: KestraTask, tasks: [{id: s, type: Sequential, tasks: [{id: l, type: Log, message: m}]}]}",
            "a KestraTask tool runs runnable tasks, not Sequential",
        ),
        (
            "      - {type: KestraFlow, namespace: t.x}",
            "tasks[0].tools[0].flowId (line 10, column 9): missing required",
        ),
        ("      - {type: StdioMcpClient, command: python}", "expected the server's command line as a list of texts"),
        ("      - {type: StreamableHttpMcpClient}", "missing required property 'url'"),
        ("      - {type: StreamableHttpMcpClient, url: u, token: t}", "unknown property 'token'"),
        (
            "      - {type: KestraTask, tasks: [{id: helper, type: Log, message: m}]}",
            "duplicate task id 'helper'",
        ),
    ],
)
def test_a_bad_tool_is_refused_at_its_path(tools: str, message: str) -> None:
    with pytest.raises(FlowInvalid) as refused:
        parse_flow(_flow(tools))

    assert message in str(refused.value)
