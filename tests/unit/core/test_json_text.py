"""The one reader of caller-sent JSON (`orchestrator/core/json_text.py`): deep nesting is a ValueError, never
json's RecursionError, and the MCP endpoint's scan agrees with what the parser would refuse."""

from __future__ import annotations

import json

import pytest

from orchestrator.core.json_text import MAX_DEPTH, JsonTooDeep, loads, nests_deeper_than

DEEP = "[" * 200_000 + "]" * 200_000


def test_loads_reads_json_as_json_loads_does() -> None:
    assert loads('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert loads(b"[1]") == [1]


@pytest.mark.parametrize("text", [DEEP, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_json_nested_thousands_deep_is_a_value_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(JsonTooDeep, match="nested too deeply") as caught:
        loads(text)

    assert isinstance(caught.value, ValueError)  # callers that treat all unreadable text alike catch it once


def test_text_that_is_not_json_is_json_s_own_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads("{nope")


def test_parse_constant_is_passed_on() -> None:
    def refuse(name: str) -> None:
        raise ValueError(name)

    with pytest.raises(ValueError, match="NaN"):
        loads("[NaN]", parse_constant=refuse)


def test_the_scan_finds_deep_nesting_without_parsing() -> None:
    assert nests_deeper_than(DEEP.encode())
    assert nests_deeper_than(b"{" + b'"a":[' * (MAX_DEPTH + 1))  # unterminated: the brackets alone decide


def test_the_scan_passes_wide_documents_and_brackets_inside_strings() -> None:
    wide = json.dumps([[i] for i in range(10_000)]).encode()
    quoted = json.dumps({"text": "[" * 10_000, "escaped": '\\"[[[' * 1_000}).encode()
    exactly = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH

    assert not nests_deeper_than(wide)
    assert not nests_deeper_than(quoted)
    assert not nests_deeper_than(exactly)
    assert nests_deeper_than(b"[" + exactly + b"]")
    assert not nests_deeper_than(b"not json at all")
