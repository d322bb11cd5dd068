"""Loading YAML safely: size, depth and alias limits, plain values, and splitting multi-document text."""

from __future__ import annotations

import time

import pytest

from orchestrator.core import yamldoc
from orchestrator.core.errors import FlowInvalid
from orchestrator.core.parse import MAX_DOCUMENT_BYTES, load_document, parse_flow, split_documents
from orchestrator.core.yamldoc import MAX_DEPTH, load_yaml_value

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
    ]
)
FLOW = "id: f\nnamespace: ns\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}\n"


def _only_error(text: str) -> tuple[str, int | None]:
    with pytest.raises(FlowInvalid) as raised:
        load_document(text)
    (error,) = raised.value.errors
    return error.message, error.line


def test_a_billion_laughs_document_is_refused_in_well_under_a_second() -> None:
    started = time.perf_counter()
    message, _ = _only_error(BILLION_LAUGHS)
    assert "alias bomb" in message
    assert time.perf_counter() - started < 1.0


def test_an_alias_to_its_own_collection_is_refused() -> None:
    assert _only_error("a: &a [1, *a]\n") == ("a YAML alias refers to the collection that contains it", 1)


def test_a_few_ordinary_aliases_are_expanded() -> None:
    assert load_document("base: &b {x: 1}\ncopy: *b\n") == {"base": {"x": 1}, "copy": {"x": 1}}


def test_a_deeply_nested_document_is_refused_at_the_level_over_the_limit() -> None:
    text = "".join("  " * level + "k:\n" for level in range(500)) + "  " * 500 + "v\n"
    assert _only_error(text) == (f"the document nests deeper than {MAX_DEPTH} levels", MAX_DEPTH)


def test_thousands_of_nested_brackets_are_refused_quickly() -> None:
    started = time.perf_counter()
    message, _ = _only_error("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nest" in message  # libyaml may refuse first ("exceeded maximum nesting depth")
    assert time.perf_counter() - started < 1.0


def test_a_ten_megabyte_document_is_refused_before_parsing() -> None:
    text = FLOW + "variables:\n  v: '" + "x" * (10 * 1024 * 1024) + "'\n"
    started = time.perf_counter()
    assert _only_error(text) == (f"the document is larger than {MAX_DOCUMENT_BYTES} bytes", None)
    assert time.perf_counter() - started < 0.5


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    text = "v: '" + "é" * (MAX_DOCUMENT_BYTES // 2 + 1) + "'\n"
    assert len(text) < MAX_DOCUMENT_BYTES
    assert _only_error(text)[0].startswith("the document is larger than")


def test_a_document_just_under_the_limit_is_accepted() -> None:
    padding = MAX_DOCUMENT_BYTES - len(FLOW) - len("variables:\n  v: ''\n")
    text = FLOW + "variables:\n  v: '" + "x" * padding + "'\n"
    assert len(text.encode()) == MAX_DOCUMENT_BYTES
    assert len(parse_flow(text).variables["v"]) == padding  # type: ignore[arg-type]


def test_load_document_returns_plain_values_with_keys_as_written() -> None:
    document = load_document("when: 2024-01-31\n1: one\nflag: true\nnothing: ~\n")
    assert document == {"when": "2024-01-31", "1": "one", "flag": True, "nothing": None}


def test_an_unsupported_yaml_tag_is_refused_with_its_line() -> None:
    assert _only_error("a: 1\nb: !!binary aGVsbG8=\n") == ("unsupported YAML tag 'tag:yaml.org,2002:binary'", 2)


def test_a_python_object_tag_is_refused() -> None:
    message, line = _only_error("a: !!python/object/apply:os.system ['true']\n")
    assert (line, "python/object/apply" in message) == (1, True)


def test_a_yaml_syntax_error_reports_the_line_of_the_problem() -> None:
    message, line = _only_error("a: 1\nb: [1, 2\nc: 3\n")
    assert (message.startswith("invalid YAML: "), line) == (True, 3)


def test_split_documents_splits_on_separator_lines_and_drops_empty_chunks() -> None:
    text = "---\n# first\nid: a\n---\n\n---   \nid: b\n--- \n# trailing comment only\n"
    assert split_documents(text) == ["# first\nid: a\n", "id: b\n"]


def test_split_documents_leaves_a_separator_inside_a_value_alone() -> None:
    assert split_documents("id: a\nmessage: '--- not a separator'\n") == ["id: a\nmessage: '--- not a separator'\n"]


def test_load_yaml_value_parses_any_yaml_value() -> None:
    assert load_yaml_value("- 1\n- two\n") == [1, "two"]
    assert load_yaml_value("") is None


def test_load_yaml_value_raises_value_error_on_a_bomb() -> None:
    with pytest.raises(ValueError, match="alias bomb"):
        load_yaml_value(BILLION_LAUGHS)


def test_a_long_dag_dependency_chain_does_not_exhaust_the_stack() -> None:
    entries = "".join(
        f"      - task: {{id: t{i}, type: io.kestra.plugin.core.log.Log, message: x}}\n        dependsOn: [t{i + 1}]\n"
        for i in range(1100)
    )
    entries += "      - task: {id: t1100, type: io.kestra.plugin.core.log.Log, message: x}\n"
    text = f"id: f\nnamespace: ns\ntasks:\n  - id: dag\n    type: io.kestra.plugin.core.flow.Dag\n    tasks:\n{entries}"
    assert len(parse_flow(text).task("dag").branches["tasks"]) == 1101


def test_the_pure_python_parser_fallback_enforces_the_same_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamldoc, "_LIBYAML", False)
    assert "alias bomb" in _only_error(BILLION_LAUGHS)[0]
    assert parse_flow(FLOW).tasks[0].line == 4
