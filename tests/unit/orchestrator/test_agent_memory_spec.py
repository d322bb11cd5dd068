"""AIAgent `memory`: what deploys (Kestra's memory types and properties) and what the rendered values may be."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from orchestrator.core.errors import FlowInvalid
from orchestrator.core.parse import parse_flow
from orchestrator.engine.agent_memory import MemoryInvalid, MemorySpec, estimated_tokens

FLOW = """
id: a
namespace: t.memory
tasks:
  - id: agent
    type: io.kestra.plugin.ai.agent.AIAgent
    prompt: hi
    provider: {type: openai, modelName: m}
    memory:
{memory}
"""


def _parse(memory: str) -> None:
    parse_flow(FLOW.replace("{memory}", memory))


@pytest.mark.parametrize(
    "memory",
    [
        "      type: io.kestra.plugin.ai.memory.KestraKVStore\n      memoryId: JOHN\n"
        "      ttl: PT1M\n      messages: 5",
        "      type: io.kestra.plugin.ai.memory.PostgreSQL\n      host: localhost\n      port: 5432\n"
        "      database: ai\n      user: u\n      password: p\n      tableName: memory",
        "      type: io.kestra.plugin.ai.memory.Redis\n      host: localhost\n      port: 6379",
        "      type: io.kestra.plugin.langchain4j.memory.KestraKVMemory\n      drop: AFTER_TASKRUN",
        '      memoryId: "{{ inputs.who }}"\n      maxTokens: 500',
    ],
)
def test_kestras_memory_types_and_properties_deploy(memory: str) -> None:
    _parse(memory)


@pytest.mark.parametrize(
    ("memory", "named"),
    [
        ("      type: io.kestra.plugin.ai.memory.Mongo", "tasks[0].memory.type (line 10"),
        ("      ttl: soon", "tasks[0].memory.ttl (line 10"),
        ("      messages: many", "tasks[0].memory.messages (line 10"),
        ("      drop: SOMETIMES", "tasks[0].memory.drop (line 10"),
        ("      memoryKey: x", "memoryKey"),
    ],
)
def test_a_bad_memory_property_is_refused_naming_its_line(memory: str, named: str) -> None:
    with pytest.raises(FlowInvalid) as raised:
        _parse(memory)
    assert named in str(raised.value)


def test_the_rendered_memory_has_kestras_defaults_and_checks_its_values() -> None:
    assert MemorySpec.of({}, "john") == MemorySpec("john", 10, 8000, timedelta(hours=1), "NEVER")
    spec = MemorySpec.of({"messages": "4", "ttl": "PT2S", "maxTokens": 40, "drop": "before_taskrun"}, "x")
    assert (spec.messages, spec.ttl, spec.max_tokens, spec.drop) == (4, timedelta(seconds=2), 40, "BEFORE_TASKRUN")
    for rendered, path in [
        ({"messages": "0"}, "memory.messages"),
        ({"ttl": "PT0S"}, "memory.ttl"),
        ({"ttl": "an hour"}, "memory.ttl"),
        ({"drop": "LATER"}, "memory.drop"),
        ({"maxTokens": "x"}, "memory.maxTokens"),
    ]:
        with pytest.raises(MemoryInvalid, match=re.escape(path)):
            MemorySpec.of(rendered, "x")
    with pytest.raises(MemoryInvalid, match=r"memory\.memoryId"):
        MemorySpec.of({}, "  ")


def test_tokens_are_estimated_from_the_content() -> None:
    assert estimated_tokens({"role": "user", "content": "x" * 40}) == 14
    assert estimated_tokens({"role": "assistant", "content": None}) == 4
