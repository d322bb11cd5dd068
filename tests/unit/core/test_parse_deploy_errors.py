"""Errors found at deploy, not at run: expressions, cron expressions, unknown trigger and condition properties."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.core.errors import FlowErrorDetail, FlowInvalid
from orchestrator.core.expression_check import expression_problems
from orchestrator.core.parse import parse_flow, parse_flow_with_warnings
from orchestrator.engine.flow_validation import validate_flow, validate_flow_with_warnings

CONFORMANCE = Path("/work/shared/conformance/kestra/flows")


def _errors(body: str, *, deploy: bool = False) -> list[FlowErrorDetail]:
    with pytest.raises(FlowInvalid) as caught:
        (validate_flow if deploy else parse_flow)("id: f\nnamespace: t\n" + textwrap.dedent(body))
    return caught.value.errors


def _log(message: str) -> str:
    return f"""
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: {message}
"""


@pytest.mark.parametrize(
    ("message", "fragment", "column"),
    [
        ('"hi {{ inputs.x | nope }}"', "unknown filter 'nope'", 18),
        ('"{{ madeUp(1) }}"', "unknown function 'madeUp'", 15),
        ('"{{ x is shiny }}"', "unknown test 'shiny'", 15),
    ],
)
def test_an_unknown_filter_function_or_test_is_refused_at_the_expression(
    message: str, fragment: str, column: int
) -> None:
    errors = _errors(_log(message))

    assert [(e.path, e.line, e.column) for e in errors] == [("tasks[0].message", 7, column)]
    assert fragment in errors[0].message


def test_an_expression_in_a_block_scalar_is_located_on_its_own_line() -> None:
    errors = _errors(_log("|\n      first line\n      then {{ nope() }}"))

    assert [(e.line, e.column) for e in errors] == [(9, 12)]


@pytest.mark.parametrize(
    "template",
    [
        "{{ x | date('yyyy') | upper }}",
        "{{ now() | dateAdd(1, 'DAYS') }}",
        "{{ secret('A') ~ kv('k') ~ read('f') }}",
        "{{ fileExists('x') }}",  # Kestra's, not implemented by Chorus yet: accepted, fails at run
        "{{ isPublicHoliday(trigger.date, 'FR') }}",
        "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) }}",
        "{% set total = 1 %}{{ total | numberFormat('#') }}",
        "{{ x is defined and y is empty }}",
        "{% raw %}{{ notAFunction() }}{% endraw %}",
        "{{ loopOutputs(outputs.l.outputs, 'id') | join(',') }}",
    ],
)
def test_names_kestra_or_the_template_defines_are_not_reported(template: str) -> None:
    assert expression_problems(template) == []


def test_a_syntax_error_is_a_warning_since_kestra_deploys_it_and_fails_the_task_at_run_time() -> None:
    source = "id: f\nnamespace: t\n" + textwrap.dedent(_log('"{{ x"'))

    flow, warnings = parse_flow_with_warnings(source)

    assert flow.tasks[0].id == "a"
    assert [(w.path, w.line) for w in warnings] == [("tasks[0].message", 7)]
    assert "missing closing" in warnings[0].message


def test_every_public_conformance_flow_still_validates_for_deployment() -> None:
    files = sorted(CONFORMANCE.glob("**/*.y*ml"))
    assert files, "the conformance suite is missing"

    refused = {}
    for path in files:
        try:
            validate_flow_with_warnings(path.read_text())
        except FlowInvalid as e:
            refused[path.name] = e.message
    assert refused == {}


def test_trigger_when_inputs_and_flow_outputs_are_checked_too() -> None:
    errors = _errors("""
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
        triggers:
          - id: s
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "0 9 * * *"
            when: "{{ dayOfWeak(trigger.date) == 'MONDAY' }}"
        outputs:
          - id: o
            type: STRING
            value: "{{ outputs.a | nope }}"
        """)

    assert [e.path for e in errors] == ["triggers[0].when", "outputs[0].value"]


@pytest.mark.parametrize("cron", ["61 * * * *", "0 25 * * *", "* * * 13 *", "not a cron at all"])
def test_an_impossible_cron_expression_is_refused_at_deploy(cron: str) -> None:
    errors = _errors(
        f"""
        tasks:
          - {{id: a, type: io.kestra.plugin.core.log.Log, message: hi}}
        triggers:
          - id: s
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "{cron}"
        """,
        deploy=True,
    )

    assert [e.path for e in errors] in (["triggers[0].cron"], ["triggers[0]"])


@pytest.mark.parametrize("cron", ["0 9 * * MON-FRI", "*/5 * * * *", "@daily", "0 0 L * *", "0 0 9 * * *"])
def test_valid_cron_expressions_deploy(cron: str) -> None:
    flow = validate_flow(
        "id: f\nnamespace: t\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}\n"
        f"triggers:\n  - id: s\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: '{cron}'\n"
    )

    assert flow.triggers[0].properties["cron"] == cron


def test_an_unknown_time_zone_is_refused_at_deploy() -> None:
    errors = _errors(
        """
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
        triggers:
          - {id: s, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 9 * * *", timezone: Mars/Olympus}
        """,
        deploy=True,
    )

    assert [e.path for e in errors] == ["triggers[0].timezone"]


def test_an_unknown_trigger_property_is_refused_with_a_suggestion() -> None:
    errors = _errors("""
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
        triggers:
          - id: s
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "0 9 * * *"
            timeZone: Europe/Paris
        """)

    assert [(e.path, e.line, e.suggestion) for e in errors] == [("triggers[0].timeZone", 10, "timezone")]
    assert "unknown property 'timeZone' on a Schedule trigger" in errors[0].message


def test_an_unknown_condition_property_is_refused_even_when_nested() -> None:
    errors = _errors("""
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
        triggers:
          - id: f
            type: io.kestra.plugin.core.trigger.Flow
            conditions:
              - type: io.kestra.plugin.core.condition.ExecutionStatus
                in: [SUCCESS]
                notin: [FAILED]
              - type: io.kestra.plugin.core.condition.Not
                conditions:
                  - type: io.kestra.plugin.core.condition.ExecutionFlow
                    namespace: a
                    flow: b
        """)

    assert [(e.path, e.suggestion) for e in errors] == [
        ("triggers[0].conditions[0].notin", "notIn"),
        ("triggers[0].conditions[1].conditions[0].flow", "flowId"),
    ]


def test_a_plugin_condition_type_is_not_checked() -> None:
    flow = parse_flow(
        "id: f\nnamespace: t\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}\n"
        "triggers:\n  - id: f\n    type: io.kestra.plugin.core.trigger.Flow\n"
        "    conditions:\n      - {type: io.kestra.plugin.ee.condition.Custom, anything: 1}\n"
    )

    assert flow.triggers[0].id == "f"
