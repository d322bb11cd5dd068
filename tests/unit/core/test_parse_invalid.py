"""Invalid flows: each problem is reported with its field path, its YAML line and, where one is close, a suggestion.

Each file in ``invalid_flows/`` is one invalid document whose first line states what must be reported:
``# expect: <path> @ line <n>: <message fragment> [| suggestion: <name>]`` (``<document>`` is the empty path).
Line numbers count that comment line, so they can be read straight off the file.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.core.errors import FlowErrorDetail, FlowInvalid
from orchestrator.core.parse import parse_flow

INVALID_FLOWS = sorted((Path(__file__).parent / "invalid_flows").glob("*.yaml"))
_EXPECT = re.compile(
    r"# expect: (?P<path>\S+) @ line (?P<line>\d+): (?P<message>.+?)(?: \| suggestion: (?P<suggestion>\S+))?$"
)


@dataclass(frozen=True)
class Expected:
    path: str
    line: int
    message: str
    suggestion: str | None


def _expected(text: str) -> Expected:
    match = _EXPECT.fullmatch(text.splitlines()[0])
    assert match, "the first line must be an '# expect: ...' comment"
    path = "" if match["path"] == "<document>" else match["path"]
    return Expected(path, int(match["line"]), match["message"], match["suggestion"])


def _errors(text: str) -> list[FlowErrorDetail]:
    with pytest.raises(FlowInvalid) as raised:
        parse_flow(text)
    return raised.value.errors


def test_there_are_at_least_thirty_five_invalid_flows() -> None:
    assert len(INVALID_FLOWS) >= 35


@pytest.mark.parametrize("path", INVALID_FLOWS, ids=lambda p: p.stem)
def test_an_invalid_flow_reports_the_problem_at_its_path_and_line(path: Path) -> None:
    text = path.read_text()
    expected = _expected(text)
    errors = _errors(text)
    matching = [e for e in errors if e.path == expected.path]
    assert matching, f"no error at {expected.path!r}; got {errors}"
    assert expected.message in matching[0].message
    assert (matching[0].line, matching[0].suggestion) == (expected.line, expected.suggestion)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "the document is empty", id="empty-file"),
        pytest.param("\n\n", "the document is empty", id="blank-file"),
        pytest.param("# nothing here\n", "the document is empty", id="comment-only-file"),
        pytest.param("- id: a\n- id: b\n", "a flow must be a YAML mapping, not a list", id="a-list"),
        pytest.param("just text\n", "a flow must be a YAML mapping, not text", id="a-scalar"),
    ],
)
def test_a_document_that_is_not_a_mapping_is_refused_at_line_one(text: str, message: str) -> None:
    assert [(e.path, e.line, e.message) for e in _errors(text)] == [("", 1, message)]


def test_every_problem_of_a_document_is_reported_at_once() -> None:
    text = textwrap.dedent(
        """\
        id: f
        namespace: ns
        inputs:
          - id: n
            type: NUMBER
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Lgo
          - id: b
            type: io.kestra.plugin.core.flow.Sleep
            duration: soon
          - id: b
            type: io.kestra.plugin.core.log.Log
            message: hi
        """
    )
    assert [(e.path, e.line) for e in _errors(text)] == [
        ("inputs[0].type", 5),
        ("tasks[0].type", 8),
        ("tasks[1].duration", 11),
        ("tasks[2].id", 12),
    ]


def test_an_unknown_property_points_at_its_key_and_a_wrong_value_at_its_value() -> None:
    text = "id: f\nnamespace: ns\ntasks:\n  - id: a\n    type: io.kestra.core.tasks.log.Log\n    message: hi\n"
    text += "    level: LOUD\n    extra: 1\n"
    columns = {e.path: e.column for e in _errors(text)}
    assert columns == {"tasks[0].level": 12, "tasks[0].extra": 5}


def test_the_error_message_names_the_position_and_the_hint() -> None:
    text = "id: f\nnamespace: ns\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Lgo\n"
    with pytest.raises(FlowInvalid) as raised:
        parse_flow(text)
    assert str(raised.value) == (
        "tasks[0].type (line 5, column 11): unknown task type 'io.kestra.plugin.core.log.Lgo'; "
        "did you mean 'io.kestra.plugin.core.log.Log'?"
    )


def test_a_task_with_an_unknown_type_still_counts_for_duplicate_ids() -> None:
    text = "id: f\nnamespace: ns\ntasks:\n  - id: a\n    type: nope.Task\n  - id: a\n    type: nope.Task\n"
    assert {e.path for e in _errors(text)} == {"tasks[0].type", "tasks[1].type", "tasks[1].id"}


def test_trigger_ids_are_checked_apart_from_task_ids() -> None:
    text = textwrap.dedent(
        """\
        id: f
        namespace: ns
        tasks:
          - {id: same, type: io.kestra.plugin.core.log.Log, message: hi}
        triggers:
          - {id: same, type: io.kestra.plugin.core.trigger.Webhook, key: k}
        """
    )
    assert parse_flow(text).triggers[0].id == "same"
