"""The Chorus event extension's types are validated at parse time like any task or trigger."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import FlowInvalid
from orchestrator.core.event_props import valid_event_name
from orchestrator.core.parse import parse_flow


@pytest.mark.parametrize("name", ["ticket.classified", "a", "order-paid.v2", "a_b.c"])
def test_dotted_words_are_event_names(name: str) -> None:
    assert valid_event_name(name)


@pytest.mark.parametrize("name", ["", "a..b", ".a", "a.", "{{ x }}", "a b", 3, None, "x" * 257])
def test_anything_else_is_not_an_event_name(name: object) -> None:
    assert not valid_event_name(name)


def _errors(source: str) -> list[tuple[str, str]]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(source)
    return [(e.path, e.message) for e in caught.value.errors]


def test_publish_short_and_long_names_parse_to_one_type() -> None:
    flow = parse_flow(
        "id: f\nnamespace: n\ntasks:\n  - id: a\n    type: Publish\n    event: e.x\n"
        "  - id: b\n    type: io.chorus.event.Publish\n    event: e.y\n    payload: {k: 1}\n"
    )
    assert [t.type for t in flow.tasks] == ["Publish", "Publish"]


def test_publish_without_an_event_names_the_missing_property() -> None:
    [(path, message)] = _errors("id: f\nnamespace: n\ntasks:\n  - id: a\n    type: Publish\n    payload: 1\n")
    assert path == "tasks[0].event" and "event" in message


def test_publish_refuses_an_unknown_property() -> None:
    [(path, _)] = _errors("id: f\nnamespace: n\ntasks:\n  - id: a\n    type: Publish\n    event: e\n    topic: t\n")
    assert path == "tasks[0].topic"


def test_the_amqp_realtime_trigger_takes_kestras_name_and_properties() -> None:
    flow = parse_flow(
        "id: f\nnamespace: n\ntasks:\n  - id: a\n    type: Log\n    message: m\ntriggers:\n  - id: q\n"
        "    type: io.kestra.plugin.amqp.RealtimeTrigger\n    url: amqp://h\n    queue: orders\n"
        "    consumerTag: chorus\n    serdeType: JSON\n"
    )
    assert flow.triggers[0].type == "AmqpRealtime"


def test_an_amqp_realtime_trigger_without_a_queue_names_it() -> None:
    source = (
        "id: f\nnamespace: n\ntasks:\n  - id: a\n    type: Log\n    message: m\ntriggers:\n  - id: q\n"
        "    type: io.kestra.plugin.amqp.RealtimeTrigger\n    url: amqp://h\n"
    )
    assert [path for path, _ in _errors(source)] == ["triggers[0].queue"]
