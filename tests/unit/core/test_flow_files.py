"""Offline validation of flow files: which files are read, and the text and JSON-lines reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli.flow_files import FileReport, format_reports, validate_paths

VALID = (
    "id: hello\nnamespace: company.team\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
)
INVALID = (
    "id: broken\nnamespace: company.team\ntasks:\n"
    "  - id: a\n    type: io.kestra.plugin.core.log.Lgo\n"
    "  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
)


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / "b_valid.yaml").write_text(VALID)
    (tmp_path / "nested" / "a_invalid.yml").write_text(INVALID)
    (tmp_path / "nested" / "deeper" / "c_valid.yaml").write_text(VALID.replace("hello", "other"))
    (tmp_path / "nested" / "notes.txt").write_text("not a flow")
    return tmp_path


def test_a_directory_is_searched_recursively_for_yaml_and_yml_files_in_path_order(flows: Path) -> None:
    reports = validate_paths([flows])
    assert [r.path.relative_to(flows).as_posix() for r in reports] == [
        "b_valid.yaml",
        "nested/a_invalid.yml",
        "nested/deeper/c_valid.yaml",
    ]


def test_each_report_says_whether_its_file_is_valid(flows: Path) -> None:
    reports = {r.path.name: r for r in validate_paths([flows])}
    assert (reports["b_valid.yaml"].valid, reports["b_valid.yaml"].flow_key) == (True, "company.team.hello")
    assert (reports["a_invalid.yml"].valid, reports["a_invalid.yml"].flow_key) == (False, None)
    assert [e.path for e in reports["a_invalid.yml"].errors] == ["tasks[0].type", "tasks[1].id"]


def test_a_file_given_twice_is_reported_once(flows: Path) -> None:
    path = flows / "b_valid.yaml"
    assert len(validate_paths([path, path, flows])) == 3


def test_a_missing_path_is_an_invalid_report_not_an_exception(tmp_path: Path) -> None:
    (report,) = validate_paths([tmp_path / "nope.yaml"])
    assert (report.valid, report.errors[0].message) == (False, "no such file")


def test_a_file_that_is_not_utf8_is_an_invalid_report(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("id: café\n".encode("latin-1"))
    (report,) = validate_paths([path])
    assert report.errors[0].message == "the file is not UTF-8 text"


def test_an_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(VALID + "variables:\n  v: '" + "x" * 2_000_000 + "'\n")
    (report,) = validate_paths([path])
    assert report.errors[0].message.startswith("the file is larger than")


def test_the_text_report_has_one_line_per_file_and_indents_each_error(flows: Path) -> None:
    text = format_reports(validate_paths([flows]), as_json=False)
    lines = text.splitlines()
    assert lines[0] == f"OK {flows / 'b_valid.yaml'} company.team.hello"
    assert lines[1] == (
        f"INVALID {flows / 'nested' / 'a_invalid.yml'}: tasks[0].type (line 5, column 11): "
        "unknown task type 'io.kestra.plugin.core.log.Lgo'; did you mean 'io.kestra.plugin.core.log.Log'?"
    )
    assert lines[2].startswith("  tasks[0].type (line 5, column 11)")
    assert lines[3] == "  tasks[1].id (line 6, column 9): duplicate task id 'a' (first used at tasks[0])"
    assert lines[4].startswith("OK ")


def test_the_json_report_has_one_object_per_file(flows: Path) -> None:
    objects = [json.loads(line) for line in format_reports(validate_paths([flows]), as_json=True).splitlines()]
    assert [o["valid"] for o in objects] == [True, False, True]
    assert objects[0] == {
        "path": str(flows / "b_valid.yaml"),
        "valid": True,
        "flow": "company.team.hello",
        "errors": [],
        "unsupported": [],
    }
    assert objects[1]["errors"][0] == {
        "path": "tasks[0].type",
        "line": 5,
        "column": 11,
        "message": "unknown task type 'io.kestra.plugin.core.log.Lgo'",
        "suggestion": "io.kestra.plugin.core.log.Log",
    }


def test_kestra_types_chorus_lacks_are_named_and_listed_apart_from_typos(tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text(
        "id: f\nnamespace: n\ntasks:\n"
        "  - id: a\n    type: io.kestra.plugin.core.flow.Template\n"
        "  - id: b\n    type: io.kestra.plugin.scripts.node.Script\n"
        "  - id: c\n    type: io.kestra.plugin.core.log.Lgo\n"
    )
    reports = validate_paths([flow])

    text = format_reports(reports, as_json=False).splitlines()
    objects = [json.loads(line) for line in format_reports(reports, as_json=True).splitlines()]

    assert "task type 'io.kestra.plugin.core.flow.Template' is not supported by Chorus: " in text[1]
    assert text[-1] == (
        "Not supported by Chorus: io.kestra.plugin.core.flow.Template, io.kestra.plugin.scripts.node.Script"
    )
    assert objects[0]["unsupported"] == ["io.kestra.plugin.core.flow.Template", "io.kestra.plugin.scripts.node.Script"]
    assert objects[0]["errors"][2]["suggestion"] == "io.kestra.plugin.core.log.Log"


def test_no_reports_format_as_an_empty_string() -> None:
    reports: list[FileReport] = []
    assert format_reports(reports, as_json=False) == format_reports(reports, as_json=True) == ""


def test_an_expression_syntax_error_is_listed_as_a_warning_of_a_valid_file(tmp_path: Path) -> None:
    (tmp_path / "warn.yaml").write_text(VALID.replace("message: hi", 'message: "{{ oops"'))

    [report] = validate_paths([tmp_path])

    assert report.valid and [w.path for w in report.warnings] == ["tasks[0].message"]
    assert "  warning: tasks[0].message (line 6, column 15): Syntax error" in format_reports([report], as_json=False)


def test_a_cron_the_scheduler_cannot_fire_makes_a_file_invalid(tmp_path: Path) -> None:
    trigger = "triggers:\n  - id: s\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: '61 * * * *'\n"
    (tmp_path / "cron.yaml").write_text(VALID + trigger)

    [report] = validate_paths([tmp_path])

    assert not report.valid and [e.path for e in report.errors] == ["triggers[0].cron"]
