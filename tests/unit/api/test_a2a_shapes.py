"""A2A shapes: execution states as task states, message parts as flow inputs, tasks and cards."""

from __future__ import annotations

import pytest

from api import a2a_shapes as a2a
from orchestrator.core.states import State
from orchestrator.core.tool_schema import ToolSpec

_TOOL = ToolSpec(
    name="greet",
    title="Greeter",
    description="Greets.",
    namespace="team.a",
    flow_id="greet",
    input_schema={
        "type": "object",
        "properties": {
            "who": {"type": "string"},
            "times": {"type": "integer"},
            "at": {"type": "string", "format": "date"},
        },
        "required": ["who"],
    },
    output_schema={"type": "object", "properties": {}},
)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (State.CREATED, "working"),
        (State.RUNNING, "working"),
        (State.QUEUED, "working"),
        (State.KILLING, "working"),
        (State.PAUSED, "input-required"),
        (State.SUCCESS, "completed"),
        (State.WARNING, "completed"),
        (State.FAILED, "failed"),
        (State.KILLED, "canceled"),
        (State.CANCELLED, "canceled"),
    ],
)
def test_execution_states_map_to_task_states(state: State, expected: str) -> None:
    assert a2a.task_state(state) == expected


def _message(*parts: dict[str, object]) -> a2a.Message:
    return a2a.Message.model_validate({"role": "user", "messageId": "m", "parts": list(parts)})


def test_data_parts_are_merged_into_the_inputs() -> None:
    message = _message({"kind": "data", "data": {"who": "Ada"}}, {"kind": "data", "data": {"times": 2}})
    assert a2a.inputs_of(message, _TOOL) == {"who": "Ada", "times": 2}


def test_a_text_part_fills_the_only_plain_text_input() -> None:
    assert a2a.inputs_of(_message({"kind": "text", "text": "Ada"}), _TOOL) == {"who": "Ada"}


def test_a_text_part_is_not_guessed_into_a_flow_with_several_text_inputs() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    tool = ToolSpec("t", "t", "", "n", "f", schema, {})
    assert a2a.inputs_of(_message({"kind": "text", "text": "x"}), tool) == {}


def test_a_task_carries_the_outputs_as_one_data_artifact_and_a_final_note() -> None:
    task = a2a.task("e1", "c1", State.SUCCESS, {"greeting": "hi"}, "team.a.greet")
    assert (task["kind"], task["id"], task["contextId"], task["status"]["state"]) == ("task", "e1", "c1", "completed")
    assert task["artifacts"] == [
        {"artifactId": "outputs", "name": "outputs", "parts": [{"kind": "data", "data": {"greeting": "hi"}}]}
    ]
    assert task["status"]["message"]["parts"] == [{"kind": "text", "text": "execution SUCCESS"}]
    assert "artifacts" not in a2a.task("e1", "c1", State.RUNNING, {}, "team.a.greet")


def test_a_skill_is_named_by_the_flow_key() -> None:
    skill = a2a.skill(_TOOL)
    assert (skill["id"], skill["name"], skill["description"]) == ("team.a.greet", "Greeter", "Greets.")


def test_a_message_without_parts_or_role_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="parts"):
        a2a.Message.model_validate({"role": "user", "messageId": "m"})
    with pytest.raises(ValueError, match="role"):
        a2a.Message.model_validate({"role": "robot", "messageId": "m", "parts": []})
