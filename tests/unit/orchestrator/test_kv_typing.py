"""Kestra's typing of KV body literals, and TTL parsing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.engine.kv import TypedValue, ValueInvalid, check_key, parse_ttl, typed_value


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ('"hello"', TypedValue("STRING", "hello")),
        ("42", TypedValue("NUMBER", 42)),
        ("4.5", TypedValue("NUMBER", 4.5)),
        ("true", TypedValue("BOOLEAN", True)),
        ('{"a": [1]}', TypedValue("JSON", {"a": [1]})),
        ("[1, 2]", TypedValue("JSON", [1, 2])),
        ("2024-01-01", TypedValue("DATE", "2024-01-01")),
        ("2024-01-01T10:00:00Z", TypedValue("DATETIME", "2024-01-01T10:00:00Z")),
        ("2024-01-01T12:00:00+02:00", TypedValue("DATETIME", "2024-01-01T10:00:00Z")),
        ('"PT5M"', TypedValue("DURATION", "PT5M")),
        ('"Pizza"', TypedValue("STRING", "Pizza")),
        ("hello", TypedValue("STRING", "hello")),
    ],
)
def test_a_literal_gets_kestras_type(literal: str, expected: TypedValue) -> None:
    assert typed_value(literal) == expected


@pytest.mark.parametrize("literal", ["", "null", "{not json", "hello world", '"a\\u0000b"', "[NaN]", "1e999"])
def test_unusable_literals_are_refused_naming_the_body(literal: str) -> None:
    with pytest.raises(ValueInvalid) as caught:
        typed_value(literal)

    assert caught.value.path == "body"


def test_a_ttl_is_an_iso_duration() -> None:
    assert parse_ttl("PT1H") == timedelta(hours=1)
    assert parse_ttl(None) is None


@pytest.mark.parametrize("ttl", ["soon", "PT0S", "-PT1H"])
def test_a_bad_ttl_is_refused_naming_the_header(ttl: str) -> None:
    with pytest.raises(ValueInvalid) as caught:
        parse_ttl(ttl)

    assert caught.value.path == "ttl"


@pytest.mark.parametrize("key", ["", ".hidden", "a/b", "x" * 600])
def test_a_bad_key_is_refused(key: str) -> None:
    with pytest.raises(ValueInvalid):
        check_key(key)
