"""Execution inputs are coerced to their declared types, checked, defaulted and nested as Kestra does."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.errors import InputInvalid
from orchestrator.core.flow import Flow, Input, InputType
from orchestrator.core.inputs import coerce_declared, coerce_inputs
from orchestrator.core.parse import parse_flow

TASKS = "tasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}\n"


def _flow(*declarations: str) -> Flow:
    inputs = "".join(f"  - {d}\n" for d in declarations)
    return parse_flow(f"id: f\nnamespace: ns\ninputs:\n{inputs}{TASKS}")


def _one(declaration: str, value: Any) -> Any:
    return coerce_inputs(_flow(declaration), {"x": value})["x"]


GOOD = [
    ("{id: x, type: STRING}", "hello", "hello"),
    ("{id: x, type: STRING}", 5, "5"),
    ("{id: x, type: STRING, validator: 'A\\d+'}", "A12", "A12"),
    ("{id: x, type: INT}", "42", 42),
    ("{id: x, type: INT}", -7, -7),
    ("{id: x, type: INT, min: 10, max: 20}", "20", 20),
    ("{id: x, type: FLOAT}", "0.25", 0.25),
    ("{id: x, type: FLOAT}", 1, 1.0),
    ("{id: x, type: FLOAT, min: 0.1, max: 0.5}", 0.1, 0.1),
    ("{id: x, type: BOOLEAN}", "true", True),
    ("{id: x, type: BOOLEAN}", "FALSE", False),
    ("{id: x, type: BOOLEAN}", True, True),
    ("{id: x, type: DATETIME}", "2024-01-31T09:30:00+01:00", "2024-01-31T08:30:00Z"),
    ("{id: x, type: DATETIME}", "2024-01-31T09:30:00.5Z", "2024-01-31T09:30:00.500Z"),
    ("{id: x, type: DATETIME, after: '2024-01-01T00:00:00Z'}", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
    ("{id: x, type: DATE}", "2024-01-31", "2024-01-31"),
    ("{id: x, type: DATE, after: 2024-01-01, before: 2024-12-31}", "2024-12-31", "2024-12-31"),
    ("{id: x, type: TIME}", "09:30", "09:30:00"),
    ("{id: x, type: TIME, after: '01:00:00', before: '11:59:59'}", "11:00:00", "11:00:00"),
    ("{id: x, type: DURATION}", "PT1M30S", "PT1M30S"),
    ("{id: x, type: DURATION}", "P1D", "PT24H"),
    ("{id: x, type: DURATION, min: PT10S, max: PT20S}", "pt15s", "PT15S"),
    ("{id: x, type: JSON}", '{"a": [1, 2]}', {"a": [1, 2]}),
    ("{id: x, type: JSON}", {"a": 1}, {"a": 1}),
    ("{id: x, type: YAML}", "a: 1\nb: [x, y]\n", {"a": 1, "b": ["x", "y"]}),
    ("{id: x, type: YAML}", ["already", "parsed"], ["already", "parsed"]),
    ("{id: x, type: ARRAY, itemType: INT}", "[1, 2, 3]", [1, 2, 3]),
    ("{id: x, type: ARRAY, itemType: INT}", ["4", 5], [4, 5]),
    ("{id: x, type: ARRAY, itemType: STRING}", '["a", 1]', ["a", "1"]),
    ("{id: x, type: ENUM, values: [A, B]}", "B", "B"),
    ("{id: x, type: SELECT, values: [A, B]}", "A", "A"),
    ("{id: x, type: SELECT, values: [A, B], allowCustomValue: true}", "C", "C"),
    ("{id: x, type: MULTISELECT, values: [a, b, c]}", '["a", "c"]', ["a", "c"]),
    ("{id: x, type: MULTISELECT, values: [a, b, c]}", ["b"], ["b"]),
    ("{id: x, type: SECRET}", "s3cr3t", "s3cr3t"),
    (
        "{id: x, type: FILE}",
        "kestra:///ns/f/executions/1/inputs/x/file.txt",
        "kestra:///ns/f/executions/1/inputs/x/file.txt",
    ),
    ("{id: x, type: URI}", "https://example.com/path?q=1", "https://example.com/path?q=1"),
    ("{id: x, type: URI}", "http://localhost:8080", "http://localhost:8080"),
    ("{id: x, type: EMAIL}", "ada@example.com", "ada@example.com"),
]


@pytest.mark.parametrize(("declaration", "value", "expected"), GOOD, ids=lambda v: str(v)[:40])
def test_a_good_value_is_coerced_to_its_declared_type(declaration: str, value: Any, expected: Any) -> None:
    assert _one(declaration, value) == expected


BAD = [
    ("{id: x, type: STRING}", {"a": 1}, "expected text"),
    ("{id: x, type: STRING, validator: 'A\\d+'}", "B12", "it must match the pattern `A\\d+`"),
    ("{id: x, type: INT}", "4.2", "expected an integer, got '4.2'"),
    ("{id: x, type: INT}", True, "expected an integer"),
    ("{id: x, type: INT}", "99999999999", "out of the INT range"),
    ("{id: x, type: INT, min: 10, max: 20}", "9", "it must be more than `10`, but received `9`"),
    ("{id: x, type: INT, min: 10, max: 20}", 21, "it must be less than `20`, but received `21`"),
    ("{id: x, type: FLOAT}", "abc", "expected a number"),
    ("{id: x, type: FLOAT}", "nan", "expected a number"),
    ("{id: x, type: FLOAT, min: 0.1, max: 0.5}", "0.6", "it must be less than `0.5`, but received `0.6`"),
    ("{id: x, type: BOOLEAN}", "yes", "expected true or false"),
    ("{id: x, type: DATETIME}", "2024-01-31T09:30:00", "with a time zone"),
    ("{id: x, type: DATETIME}", "yesterday", "expected an ISO-8601 date-time"),
    (
        "{id: x, type: DATETIME, before: '2024-01-01T00:00:00Z'}",
        "2024-01-01T00:00:01Z",
        "it must be before `2024-01-01T00:00:00Z`",
    ),
    ("{id: x, type: DATE}", "31/01/2024", "expected an ISO-8601 date"),
    (
        "{id: x, type: DATE, after: 2024-01-01}",
        "2023-12-31",
        "it must be after `2024-01-01`, but received `2023-12-31`",
    ),
    ("{id: x, type: TIME}", "25:00", "expected an ISO-8601 local time"),
    ("{id: x, type: TIME}", "09:30:00+01:00", "expected an ISO-8601 local time"),
    ("{id: x, type: DURATION}", "90s", "is not an ISO-8601 duration"),
    ("{id: x, type: DURATION, min: PT10S, max: PT20S}", "PT21S", "it must be less than `PT20S`, but received `PT21S`"),
    ("{id: x, type: JSON}", "{bad", "expected a JSON document"),
    ("{id: x, type: YAML}", "a: [", "expected a YAML document"),
    ("{id: x, type: ARRAY, itemType: INT}", '["x"]', "an item is not a valid INT"),
    ("{id: x, type: ARRAY, itemType: INT}", '{"a": 1}', "expected a list"),
    ("{id: x, type: ENUM, values: [A, B]}", "C", "'C' is not one of ['A', 'B']"),
    ("{id: x, type: SELECT, values: [A, B]}", "a", "'a' is not one of ['A', 'B']"),
    ("{id: x, type: MULTISELECT, values: [a, b]}", '["a", "z"]', "'z' is not one of ['a', 'b']"),
    ("{id: x, type: SECRET, validator: '[a-z]+'}", "ABC", "it must match the pattern"),
    ("{id: x, type: FILE}", "/tmp/local.txt", "expected a file URI"),
    ("{id: x, type: URI}", "example.com", "expected a URI"),
    ("{id: x, type: EMAIL}", "not-an-email", "expected an e-mail address"),
]


@pytest.mark.parametrize(("declaration", "value", "message"), BAD, ids=lambda v: str(v)[:40])
def test_a_bad_value_raises_input_invalid_naming_the_input(declaration: str, value: Any, message: str) -> None:
    with pytest.raises(InputInvalid) as raised:
        _one(declaration, value)
    assert (raised.value.input_id, raised.value.path) == ("x", "inputs.x")
    assert message in raised.value.message


def test_a_missing_required_input_is_refused() -> None:
    with pytest.raises(InputInvalid) as raised:
        coerce_inputs(_flow("{id: name, type: STRING}"), {})
    assert (raised.value.input_id, raised.value.message) == (
        "name",
        "Invalid input for `name`, missing required input, but received `null`",
    )


def test_an_empty_string_is_a_value_for_a_string_input() -> None:
    assert coerce_inputs(_flow("{id: name, type: STRING}"), {"name": ""}) == {"name": ""}


def test_a_missing_optional_input_comes_back_as_none() -> None:
    assert coerce_inputs(_flow("{id: n, type: INT, required: false}"), {}) == {"n": None}


@pytest.mark.parametrize(
    ("declaration", "expected"),
    [
        ("{id: x, type: INT, defaults: 3}", 3),
        ("{id: x, type: BOOLEAN, defaults: false}", False),
        ("{id: x, type: DATETIME, defaults: '2013-08-09T14:19:00Z'}", "2013-08-09T14:19:00Z"),
        ("{id: x, type: DURATION, defaults: PT1H}", "PT1H"),
        ("{id: x, type: STRING, defaults: ''}", ""),
        ("{id: x, type: YAML, defaults: {a: [1]}}", {"a": [1]}),
        ("{id: x, type: STRING, defaults: '{{ execution.id }}'}", "{{ execution.id }}"),
    ],
)
def test_a_missing_input_takes_its_typed_default(declaration: str, expected: Any) -> None:
    assert coerce_inputs(_flow(declaration), {}) == {"x": expected}


def test_a_given_value_wins_over_the_default() -> None:
    assert coerce_inputs(_flow("{id: x, type: INT, defaults: 3}"), {"x": "4"}) == {"x": 4}


def test_undeclared_inputs_are_ignored() -> None:
    assert coerce_inputs(_flow("{id: x, type: INT}"), {"x": "1", "other": "y"}) == {"x": 1}


def test_dotted_input_ids_are_nested() -> None:
    flow = _flow("{id: nested.string, type: STRING}", "{id: nested.more.int, type: INT}", "{id: top, type: BOOLEAN}")
    typed = coerce_inputs(flow, {"nested.string": "s", "nested.more.int": "1", "top": "true"})
    assert typed == {"nested": {"string": "s", "more": {"int": 1}}, "top": True}


def test_the_first_bad_input_in_declaration_order_is_reported() -> None:
    flow = _flow("{id: a, type: INT}", "{id: b, type: INT}")
    with pytest.raises(InputInvalid) as raised:
        coerce_inputs(flow, {"b": "x", "a": "y"})
    assert raised.value.input_id == "a"


def test_the_kestra_inputs_flow_accepts_a_full_set_of_form_values() -> None:
    path = "tests/fixtures/kestra_flows/io.kestra.tests/inputs.yaml"
    with open(path) as text:
        flow = parse_flow(text.read())
    form = {
        "string": "myString",
        "enum": "ENUM_VALUE",
        "int": "42",
        "float": "42.42",
        "instant": "2019-10-06T18:27:49Z",
        "file": "kestra:///io/kestra/tests/inputs/file.txt",
        "secret": "secret",
        "array": "[1, 2, 3]",
        "validatedInt": "12",
        "validatedDuration": "PT15S",
    }
    typed = coerce_inputs(flow, form)
    assert (typed["int"], typed["array"], typed["instantDefaults"], typed["empty"]) == (
        42,
        [1, 2, 3],
        "2013-08-09T14:19:00Z",
        "",
    )
    assert typed["nested"] == {"string": None, "more": {"int": None}, "bool": None}
    assert typed["yaml"] == {
        "property": "something",
        "list": [{"key": "key1", "value": "value1"}, {"key": "key2", "value": "value2"}],
    }


def test_coerce_declared_types_values_against_pause_on_resume_declarations() -> None:
    flow = parse_flow(
        "id: f\nnamespace: ns\ntasks:\n  - id: pause\n    type: io.kestra.plugin.core.flow.Pause\n"
        "    onResume:\n      - {id: approved, type: BOOLEAN}\n      - {name: reason, type: STRING, defaults: ok}\n"
    )
    declared = flow.task("pause").properties["onResume"]
    assert isinstance(declared, list)
    specs = [Input.model_validate(d) for d in declared]
    assert coerce_declared(specs, {"approved": "true"}) == {"approved": True, "reason": "ok"}


def test_an_input_reads_a_raw_kestra_declaration() -> None:
    spec = Input.model_validate(
        {"name": "a", "type": "ARRAY", "itemType": "INT", "displayName": "A", "dependsOn": {"inputs": ["b"]}}
    )
    assert (spec.id, spec.item_type, spec.display_name, spec.depends_on) == ("a", InputType.INT, "A", ("b",))
