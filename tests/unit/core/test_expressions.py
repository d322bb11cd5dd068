"""Rendering Kestra (Pebble) expressions: variables, output formatting, operators, tags and the public API."""

from __future__ import annotations

import re
from typing import Any

import pytest

from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import (
    authored,
    check_syntax,
    has_expression,
    is_true,
    render,
    render_typed,
    render_value,
)

CONTEXT: dict[str, Any] = {
    "flow": {"id": "hello", "namespace": "company.team", "revision": 3},
    "execution": {"id": "exec-1", "startDate": "2024-03-01T10:20:30.123456Z"},
    "task": {"id": "log", "type": "io.kestra.plugin.core.log.Log"},
    "taskrun": {"id": "tr-1", "value": "value 1", "startDate": "2024-03-01T10:20:31Z", "attemptsCount": 1},
    "parent": {"taskrun": {"value": "outer"}},
    "parents": [{"taskrun": {"value": "outer"}}, {"taskrun": {"value": "outermost"}}],
    "inputs": {"name": "Ada", "flag": True, "count": 3, "ratio": 0.5, "empty": "", "nothing": None, "dash-ed": "d"},
    "outputs": {
        "first": {"value": "first value"},
        "analyze-sentiment": {"choices": [{"message": {"content": "NEGATIVE"}}]},
        "output_values": {"values": {"count": "6", "keys": "k", "items": [1, 2]}},
    },
    "vars": authored({"greeting": "Hello {{ inputs.name }}"}),  # as orchestrator.engine.variables marks the flow's
    "labels": {"team": "data"},
}


def r(template: str, **extra: Any) -> str:
    return render(template, {**CONTEXT, **extra})


# -- variables ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ flow.id }}", "hello"),
        ("{{flow.namespace}}", "company.team"),
        ("{{ flow.revision }}", "3"),
        ("{{ execution.id }}", "exec-1"),
        ("{{task.id}} > {{taskrun.startDate}}", "log > 2024-03-01T10:20:31Z"),
        ("{{ taskrun.value }}", "value 1"),
        ("{{ parent.taskrun.value }}", "outer"),
        ("{{ parents[0].taskrun.value }}", "outer"),
        ("{{ parents[1].taskrun.value }}", "outermost"),
        ("{{ outputs.first.value }}", "first value"),
        ("{{ outputs['first'].value }}", "first value"),
        ("{{ outputs['analyze-sentiment'].choices[0].message.content }}", "NEGATIVE"),
        ("{{ inputs['dash-ed'] }}", "d"),
        ("{{ labels.team }}", "data"),
    ],
)
def test_variables_of_the_run_context_are_visible(template: str, expected: str) -> None:
    assert r(template) == expected


def test_dot_access_on_a_map_reads_keys_that_shadow_dict_methods() -> None:
    assert r("{{ outputs.output_values.values.count }}|{{ outputs.output_values.values.keys }}") == "6|k"
    assert r("{{ outputs.output_values.values.items }}") == "[1,2]"


def test_text_without_expressions_is_returned_unchanged() -> None:
    text = 'plain {"json": true} text'
    assert render(text, {}) == text


# -- output formatting ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ true }}", "true"),
        ("{{ inputs.flag }}", "true"),
        ("{{ false }}", "false"),
        ("{{ null }}", ""),
        ("{{ inputs.nothing }}", ""),
        ("{{ 42 }}", "42"),
        ("{{ 10l }}", "10"),
        ("{{ 2.5 }}", "2.5"),
        ("{{ 2.0 }}", "2.0"),
        ("{{ [1, 'a', true, null] }}", '[1,"a",true,null]'),
        ("{{ {'a': 1, 'b': [2], 'c': {'d': 'é'}} }}", '{"a":1,"b":[2],"c":{"d":"é"}}'),
        ("{{ {'kept': 1, 'dropped': null} }}", '{"kept":1}'),
        ("{{ 'raw <b>text</b> & stuff' }}", "raw <b>text</b> & stuff"),
    ],
)
def test_values_print_as_kestra_prints_them(template: str, expected: str) -> None:
    assert r(template) == expected


def test_a_trailing_newline_is_kept() -> None:
    assert r("{{ flow.id }}\n") == "hello\n"


def test_newlines_after_tags_are_kept() -> None:
    assert r("{% if true %}\nyes\n{% endif %}\n") == "\nyes\n\n"


# -- operators ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ outputs['analyze-sentiment'].choices[0].message.content == 'NEGATIVE' }}", "true"),
        ("{{ outputs['analyze-sentiment'].choices[0].message.content == 'POSITIVE' }}", "false"),
        ("{{ inputs.count != 3 }}", "false"),
        ("{{ taskrun.value equals 'value 1' }}", "true"),
        ("{{ 1 < 2 }}|{{ 2 <= 2 }}|{{ 3 > 4 }}|{{ 3 >= 4 }}", "true|true|false|false"),
        ("{{ 1 == 1.0 }}", "true"),
        ("{{ '6' == 6 }}", "false"),
        ("{{ true and false }}|{{ true or false }}", "false|true"),
        ("{{ not inputs.flag }}", "false"),
        ("{{ not false and true }}", "true"),
        ("{{ 2 + 3 * 4 }}", "14"),
        ("{{ (2 + 3) * 4 }}", "20"),
        ("{{ 10 - 4 - 3 }}", "3"),
        ("{{ 10 / 4 }}", "2"),
        ("{{ -7 / 2 }}", "-3"),
        ("{{ 10 / 4.0 }}", "2.5"),
        ("{{ 10 % 3 }}", "1"),
        ("{{ -7 % 2 }}", "-1"),
        ("{{ -inputs.count }}", "-3"),
        ("{{ 'a' ~ 'b' ~ 1 ~ true ~ null }}", "ab1true"),
        ("{{ flow.namespace ~ '.' ~ flow.id }}", "company.team.hello"),
        ("{{ 'ab' ~ 'cd' | upper }}", "ABCD"),
        ("{{ [1, 2, 3] contains 2 }}", "true"),
        ("{{ [1, 2, 3] contains [1, 3] }}", "true"),
        ("{{ [1, 2, 3] contains [1, 4] }}", "false"),
        ("{{ {'a': 1} contains 'a' }}", "true"),
        ("{{ 'hello world' contains 'lo w' }}", "true"),
        ("{{ null contains 'x' }}", "false"),
        ("{{ 'b' isIn ['a', 'b'] }}", "true"),
        ("{{ 2 isIn ['1', '2'] }}", "true"),
        ("{{ 'c' isNotIn ['a', 'b'] }}", "true"),
        ("{{ 'v' isIn {'k': 'v'} }}", "true"),
        ("{{ 1..4 }}", "[1,2,3,4]"),
        ("{{ inputs.count == 3 and inputs.name == 'Ada' }}", "true"),
        ("{{ 1 + 1 == 2 }}", "true"),
    ],
)
def test_operators_follow_pebble_semantics(template: str, expected: str) -> None:
    assert r(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.flag ? 'yes' : 'no' }}", "yes"),
        ("{{ inputs.nothing ? 'yes' : 'no' }}", "no"),
        ("{{ inputs.count > 5 ? 'big' : inputs.count > 2 ? 'mid' : 'small' }}", "mid"),
        ("{{ taskrun.attemptsCount == 1 ? 'ok' : ko }}", "ok"),
        ("{{ (inputs.failed ?? 'NONE') == 'SECOND' ? ko : '0' }}", "0"),
    ],
)
def test_ternary_evaluates_only_the_chosen_branch(template: str, expected: str) -> None:
    assert r(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.name ?? 'World' }}", "Ada"),
        ("{{ inputs.missing ?? 'World' }}", "World"),
        ("{{ inputs.nothing ?? 'World' }}", "World"),
        ("{{ undefinedRoot ?? 'World' }}", "World"),
        ("{{ outputs.nope.value ?? outputs.first.value }}", "first value"),
        ("{{ a ?? b ?? 'last' }}", "last"),
        ("{{ inputs.empty ?? 'x' }}", ""),
        ("{{ inputs.missing ?? 'd' | upper }}", "D"),
        ("{{ inputs.missing ??? 'World' }}", "World"),
        ("{{ inputs.nothing ??? 'World' }}", ""),
    ],
)
def test_coalescing_operators_fall_back_on_undefined_and_null(template: str, expected: str) -> None:
    assert r(template) == expected


def test_null_coalescing_does_not_evaluate_the_fallback_when_not_needed() -> None:
    assert r("{{ inputs.name ?? undefinedVariable.deeper }}") == "Ada"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.name is defined }}", "true"),
        ("{{ inputs.missing is defined }}", "false"),
        ("{{ outputs.nope.value is defined }}", "false"),
        ("{{ inputs.missing is not defined }}", "true"),
        ("{{ inputs.nothing is defined }}", "false"),
        ("{{ inputs.nothing is not defined }}", "true"),
        ("{{ null is defined }}|{{ inputs.empty is defined }}", "false|true"),
        ("{{ inputs.nothing is null }}", "true"),
        ("{{ inputs.name is not null }}", "true"),
        ("{{ inputs.empty is empty }}", "true"),
        ("{{ '  ' is empty }}", "true"),
        ("{{ [] is empty }}", "true"),
        ("{{ {} is empty }}", "true"),
        ("{{ inputs.name is empty }}", "false"),
        ("{{ 2 is even }}|{{ 3 is odd }}|{{ 3 is even }}", "true|true|false"),
        ("{{ [1] is iterable }}|{{ 'x' is iterable }}", "true|false"),
        ("{{ {'a': 1} is map }}", "true"),
        ("{{ '{\"a\": 1}' is json }}|{{ 'nope' is json }}", "true|false"),
    ],
)
def test_tests_answer_pebble_questions(template: str, expected: str) -> None:
    assert r(template) == expected


# -- tags -----------------------------------------------------------------------------------------------
def test_if_elseif_else_picks_the_first_true_branch() -> None:
    template = "{% if inputs.count > 5 %}big{% elseif inputs.count > 2 %}mid{% else %}small{% endif %}"
    assert r(template) == "mid"


def test_if_treats_the_string_false_as_false() -> None:
    assert r("{% if 'false' %}yes{% else %}no{% endif %}") == "no"


def test_for_loop_exposes_pebbles_zero_based_loop_variables() -> None:
    template = (
        "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ x }}{{ loop.revindex }}"
        "{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}/{{ loop.length }} {% endfor %}"
    )
    assert r(template) == "0a2F/3 1b1/3 2c0L/3 "


def test_for_loop_over_a_map_yields_entries_with_key_and_value() -> None:
    assert r("{% for e in {'a': 1, 'b': 2} %}{{ e.key }}={{ e.value }};{% endfor %}") == "a=1;b=2;"


def test_for_loop_over_an_empty_list_renders_its_else_branch() -> None:
    assert r("{% for x in [] %}{{ x }}{% else %}none{% endfor %}") == "none"


def test_for_loop_over_an_inclusive_range() -> None:
    assert r("{% for i in range(1, 3) %}{{ i }}{% endfor %}|{% for i in 0..2 %}{{ i }}{% endfor %}") == "123|012"


def test_set_assigns_a_variable() -> None:
    assert r("{% set greeting = 'Hi ' ~ inputs.name %}{{ greeting }}") == "Hi Ada"


def test_raw_outputs_its_content_verbatim() -> None:
    assert r("{% raw %}{{ inputs.name }} {% if %}{% endraw %}") == "{{ inputs.name }} {% if %}"


def test_comments_render_nothing() -> None:
    assert r("a{# a comment {{ x }} #}b") == "ab"


def test_dash_markers_trim_whitespace_around_tags() -> None:
    assert r("a   {{- inputs.name -}}   b\n{%- if true -%}\n  c  {%- endif %}") == "aAdabc"


def test_whitespace_control_in_a_multiline_error_logs_loop() -> None:
    template = "{%- for log in errorLogs() -%}\n- task: {{ log.taskId }}, message: {{ log.message }}\n{%- endfor -%}"
    logs = [{"taskId": "t1", "message": "boom"}, {"taskId": "t2", "message": "bang"}]

    class Functions:
        def error_logs(self) -> list[dict[str, Any]]:
            return logs

    rendered = render(template, CONTEXT, functions=Functions())  # type: ignore[arg-type]
    assert rendered == "- task: t1, message: boom- task: t2, message: bang"


def test_macros_render_with_their_arguments() -> None:
    template = "{% macro hi(who, punct='!') %}Hi {{ who }}{{ punct }}{% endmacro %}{{ hi('Ada') }} {{ hi('Bo', '?') }}"
    assert r(template) == "Hi Ada! Hi Bo?"


def test_filter_blocks_apply_filters_to_their_body() -> None:
    assert r("{% filter upper %}hello {{ inputs.name }}{% endfilter %}") == "HELLO ADA"


def test_literal_braces_next_to_expressions_stay_literal() -> None:
    assert r('{"name": "{{ inputs.name }}", "n": {{ inputs.count }}}') == '{"name": "Ada", "n": 3}'
    assert r("{{ '}}' }}{{ \"%}\" }}") == "}}%}"


def test_multiline_map_literal_renders_as_json() -> None:
    template = '{{ {\n  "title": inputs.name,\n  "count": inputs.count\n} | toJson }}'
    assert r(template) == '{"title":"Ada","count":3}'


def test_string_escapes_are_understood() -> None:
    assert r(r"{{ 'it\'s' ~ '\n' ~ '\u00e9' }}") == "it's\né"


# -- undefined variables and errors ---------------------------------------------------------------------
def test_an_undefined_variable_fails_with_kestras_message() -> None:
    with pytest.raises(ExpressionError) as caught:
        r("{{ missingVar }}")
    assert str(caught.value) == "Unable to find `missingVar` used in the expression `{{ missingVar }}` at line 1"
    assert caught.value.expression == "{{ missingVar }}"


def test_an_undefined_attribute_names_the_missing_key_and_its_line() -> None:
    with pytest.raises(ExpressionError) as caught:
        r("first line\nsecond {{ outputs.missing.value }}")
    assert "Unable to find `missing`" in str(caught.value)
    assert "`{{ outputs.missing.value }}` at line 2" in str(caught.value)


def test_an_undefined_value_in_a_condition_fails() -> None:
    with pytest.raises(ExpressionError, match="Unable to find `ko`"):
        r("{{ taskrun.attemptsCount == 3 ? 'ok' : ko }}")


def test_an_undefined_value_passed_to_a_filter_fails() -> None:
    with pytest.raises(ExpressionError, match="Unable to find `nope`"):
        r("{{ inputs.nope | upper }}")


def test_default_filter_accepts_undefined_null_and_empty_values() -> None:
    assert r("{{ inputs.missing | default('d') }}|{{ outputs.x.y | default('d') }}") == "d|d"
    assert r("{{ inputs.nothing | default('d') }}|{{ inputs.empty | default('d') }}") == "d|d"
    assert r("{{ inputs.name | default('d') }}") == "Ada"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 1 + }}", "Syntax error in `{{ 1 + }}` at line 1"),
        ("{{ inputs.name", "missing closing `}}`"),
        ("{% if true %}x", "Syntax error"),
        ("{% endif %}", "Syntax error"),
        ("{{ x | noSuchFilter }}", "No filter named 'noSuchFilter'"),
        ("{{ x is noSuchTest }}", "No test named 'noSuchTest'"),
        ("{% include 'other' %}", "the `include` tag is not supported"),
        ("{{ a ? b }}", "expected `:`"),
        ("{# never closed", "unclosed comment"),
        ("{{ }}", "empty expression"),
        ("{{ __pebble_iter(x) }}", "reserved"),
        ("{{ 'unterminated }}", "Syntax error"),
        ("{{ a $ b }}", "unexpected character"),
    ],
)
def test_syntax_errors_raise_an_expression_error_naming_the_expression(template: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        r(template)


def test_runtime_type_errors_raise_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match=r"Cannot render `\{\{ 'a' < 1 \}\}` at line 1"):
        r("{{ 'a' < 1 }}")


def test_division_by_zero_raises_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="Division by zero"):
        r("{{ 1 / 0 }}")


def test_check_syntax_compiles_without_rendering() -> None:
    check_syntax("{{ undefinedVariable | upper }}")
    with pytest.raises(ExpressionError):
        check_syntax("{{ undefinedVariable | }}")


# -- render_typed ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.count }}", 3),
        ("{{ inputs.flag }}", True),
        ("{{ inputs.nothing }}", None),
        ("{{ [1, inputs.count] }}", [1, 3]),
        ("{{ {'a': inputs.ratio} }}", {"a": 0.5}),
        ("  {{ inputs.name }}\n", "Ada"),
        ("{{ 1..3 }}", [1, 2, 3]),
        ("{{ outputs.first }}", {"value": "first value"}),
    ],
)
def test_render_typed_returns_the_native_value_of_a_lone_expression(template: str, expected: object) -> None:
    assert render_typed(template, CONTEXT) == expected


def test_render_typed_falls_back_to_text_when_the_template_has_more_than_one_part() -> None:
    assert render_typed("n={{ inputs.count }}", CONTEXT) == "n=3"
    assert render_typed("{{ inputs.count }}{{ inputs.count }}", CONTEXT) == "33"
    assert render_typed("{% if true %}{{ inputs.count }}{% endif %}", CONTEXT) == "3"
    assert render_typed("no expression", CONTEXT) == "no expression"


def test_render_typed_reports_an_undefined_variable() -> None:
    with pytest.raises(ExpressionError, match="Unable to find `nope`"):
        render_typed("\n{{ nope }}", CONTEXT)


# -- render_value ---------------------------------------------------------------------------------------
def test_render_value_renders_strings_inside_dicts_and_lists() -> None:
    value = {
        "{{ flow.id }}": ["{{ inputs.name }}", 1, None, True, {"deep": "{{ inputs.count + 1 }}"}],
        "plain": 2.5,
    }
    assert render_value(value, CONTEXT) == {"hello": ["Ada", 1, None, True, {"deep": "4"}], "plain": 2.5}


def test_render_value_leaves_scalars_unchanged() -> None:
    assert render_value(7, CONTEXT) == 7
    assert render_value(None, CONTEXT) is None


# -- is_true and has_expression -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" true\n", True),
        ("false", False),
        ("False", False),
        ("  false  ", False),
        ("0", False),
        ("-0", False),
        ("", False),
        ("   ", False),
        ("yes", True),
        ("1", True),
        (True, True),
        (False, False),
        (0, False),
        (0.0, False),
        (2, True),
        (None, False),
        ([], True),
    ],
)
def test_is_true_follows_kestra_truthiness(rendered: object, expected: bool) -> None:
    assert is_true(rendered) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{{ x }}", True), ("a {% if x %}", True), ("{# c #}", True), ("{}", False), ("plain", False), ("{ {", False)],
)
def test_has_expression_detects_pebble_delimiters(text: str, expected: bool) -> None:
    assert has_expression(text) is expected


def test_render_of_a_variable_holding_an_expression_renders_it_again() -> None:
    assert r("{{ render(vars.greeting) }}") == "Hello Ada"


def test_a_variable_holding_an_expression_is_printed_as_is_without_render() -> None:
    assert r("{{ vars.greeting }}") == "Hello {{ inputs.name }}"
