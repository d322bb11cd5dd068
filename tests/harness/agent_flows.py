"""AIAgent flow texts the end-to-end tests share (test_ai_agent, test_ledger_replay, test_tracing): one builder.

Each flow takes a `question` input and runs one AIAgent `agent` on the OpenAI fake (its base URL and key are
the stack's secrets), prompted with the question. `{ns}` stays a placeholder unless a namespace is given
(`deploy_flow` fills it in).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = ["agent_flow", "lookup_tool", "mcp_tool", "task_tool"]

_KESTRA_PROVIDER = """    provider:
      type: io.kestra.plugin.ai.provider.OpenAI
      modelName: gpt-4o-mini
      baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
      apiKey: "{{ secret('OPENAI_API_KEY') }}"
"""
# The short form Chorus also reads: the provider's alias, its endpoint on the agent itself.
_SHORT_PROVIDER = """    provider: {type: openai, modelName: gpt-4o-mini}
    baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
    apiKey: "{{ secret('OPENAI_API_KEY') }}"
"""


def agent_flow(
    flow_id: str,
    tools: str = "",
    *,
    namespace: str = "{ns}",
    more: str = "",
    short_provider: bool = False,
    agent_type: str = "io.kestra.plugin.ai.agent.AIAgent",
) -> str:
    """The flow's YAML. `tools` are the entries under `tools:` (as `task_tool`, `lookup_tool` and `mcp_tool` write
    them; none: no `tools`); `more` further properties of the agent, YAML at the agent's level (no indentation)."""
    provider = _SHORT_PROVIDER if short_provider else _KESTRA_PROVIDER
    extra = "".join(f"    {line}\n" for line in more.splitlines())
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ninputs:\n  - id: question\n    type: STRING\ntasks:\n"
        f"  - id: agent\n    type: {agent_type}\n{provider}{extra}"
        f'    prompt: "{{{{ inputs.question }}}}"\n' + (f"    tools:\n{tools}" if tools else "")
    )


def task_tool(tasks: str, *, tool_type: str = "io.kestra.plugin.ai.tool.KestraTask", more: str = "") -> str:
    """A KestraTask tool entry: `tasks` its task list and `more` its further fields, YAML at the entry's level."""
    lines = [*more.splitlines(), "tasks:", *(f"  {line}" for line in tasks.splitlines())]
    return f"      - type: {tool_type}\n" + "".join(f"        {line}\n" for line in lines)


def lookup_tool(*more_values: str) -> str:
    """A KestraTask tool `lookup` (an OutputValues) whose `order` output is the call's `order_id` argument;
    `more_values` are further `name: value` lines among its values."""
    values = "".join(f"\n      {line}" for line in ('order: "{{ arguments.order_id }}"', *more_values))
    return task_tool(f"- id: lookup\n  type: io.kestra.plugin.core.output.OutputValues\n  values:{values}")


def mcp_tool(tool_type: str, *, command: Sequence[str] | None = None, url: str | None = None, more: str = "") -> str:
    """An MCP server tool entry: a stdio `command` or a streamable HTTP `url`; `more` further lines of the entry
    (without indentation)."""
    where = f"command: {json.dumps(list(command))}" if command is not None else f"url: {url}"
    lines = [where, *more.splitlines()]
    return f"      - type: {tool_type}\n" + "".join(f"        {line}\n" for line in lines)
