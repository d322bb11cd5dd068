"""Flows as tools: which flows are tools, their names and descriptions, and their inputs as JSON Schema."""

from __future__ import annotations

import textwrap

import jsonschema
import pytest

from orchestrator.core.errors import FlowInvalid
from orchestrator.core.parse import parse_flow
from orchestrator.core.tool_schema import tool_of

_TASKS = """
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def _flow(body: str) -> str:
    return "id: f\nnamespace: team.a\ndescription: The flow.\n" + textwrap.dedent(body) + _TASKS


def test_a_flow_without_the_trigger_or_the_label_is_not_a_tool() -> None:
    assert tool_of(parse_flow(_flow(""))) is None


def test_the_mcp_tool_trigger_names_and_describes_the_tool() -> None:
    tool = tool_of(
        parse_flow(
            _flow("""
        triggers:
          - id: mcp
            type: io.kestra.plugin.core.trigger.McpToolTrigger
            toolName: greet
            title: Greeter
            toolDescription: Greets.
            mcpServer: default
        """)
        )
    )
    assert tool is not None
    assert (tool.name, tool.title, tool.description, tool.namespace, tool.flow_id) == (
        "greet", "Greeter", "Greets.", "team.a", "f"
    )  # fmt: skip


def test_the_label_makes_a_tool_named_after_the_flow_and_described_by_it() -> None:
    tool = tool_of(parse_flow(_flow('labels:\n  chorus.io/mcp-tool: "true"\n')))
    assert tool is not None and (tool.name, tool.title, tool.description) == ("team.a.f", "f", "The flow.")


def test_a_disabled_trigger_or_flow_is_not_a_tool() -> None:
    trigger = "triggers:\n  - id: mcp\n    type: McpToolTrigger\n    disabled: true\n"
    assert tool_of(parse_flow(_flow(trigger))) is None
    assert tool_of(parse_flow(_flow('disabled: true\nlabels:\n  chorus.io/mcp-tool: "true"\n'))) is None


def test_a_tool_name_mcp_clients_would_refuse_falls_back_to_the_flow_key() -> None:
    tool = tool_of(parse_flow(_flow("triggers:\n  - id: mcp\n    type: McpToolTrigger\n    toolName: has spaces\n")))
    assert tool is not None and tool.name == "team.a.f"


def test_an_unknown_trigger_property_is_refused_at_parse_with_its_path() -> None:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(_flow("triggers:\n  - id: mcp\n    type: McpToolTrigger\n    toolname: x\n"))
    assert any(e.path.startswith("triggers[0]") and "toolname" in e.message for e in caught.value.errors)


_INPUTS = """
labels:
  chorus.io/mcp-tool: "true"
inputs:
  - id: who
    type: STRING
    validator: "[A-Z][a-z]+"
    description: Whom to greet.
  - id: times
    type: INT
    defaults: 1
    min: 1
    max: 5
  - id: ratio
    type: FLOAT
    required: false
  - id: loud
    type: BOOLEAN
    defaults: false
  - id: when
    type: DATETIME
    defaults: "{{ now() }}"
  - id: mode
    type: SELECT
    values: [fast, slow]
    defaults: fast
  - id: tags
    type: MULTISELECT
    values: [a, b]
    required: false
  - id: ids
    type: ARRAY
    itemType: INT
    required: false
  - id: doc
    type: JSON
    required: false
  - id: key
    type: SECRET
    required: false
"""


def test_typed_inputs_become_a_json_schema_with_types_bounds_choices_and_defaults() -> None:
    tool = tool_of(parse_flow(_flow(_INPUTS)))
    assert tool is not None
    schema = tool.input_schema
    props = schema["properties"]
    assert schema["required"] == ["who"] and schema["additionalProperties"] is False
    assert props["who"] == {"type": "string", "pattern": "^(?:[A-Z][a-z]+)$", "description": "Whom to greet."}
    assert props["times"] == {"type": "integer", "minimum": 1, "maximum": 5, "default": 1}
    assert props["ratio"] == {"type": "number"} and props["loud"] == {"type": "boolean", "default": False}
    assert props["when"] == {"type": "string", "format": "date-time"}  # an expression default is not shown
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"], "default": "fast"}
    assert props["tags"] == {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}
    assert props["ids"] == {"type": "array", "items": {"type": "integer"}}
    assert props["doc"] == {} and props["key"] == {"type": "string", "writeOnly": True}
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"who": "Ada", "times": 2, "tags": ["a"]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"who": "Ada", "times": 9}, schema)


def test_declared_outputs_become_an_output_schema_whose_types_admit_null() -> None:
    source = (
        _flow('labels:\n  chorus.io/mcp-tool: "true"\n')
        + """
outputs:
  - id: count
    type: INT
    value: "{{ 1 }}"
    description: How many.
  - id: doc
    type: JSON
    value: "{}"
"""
    )
    tool = tool_of(parse_flow(source))
    assert tool is not None
    assert tool.output_schema == {
        "type": "object",
        "properties": {"count": {"type": ["integer", "null"], "description": "How many."}, "doc": {}},
    }
