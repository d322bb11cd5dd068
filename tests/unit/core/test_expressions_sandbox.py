"""The expression sandbox: template injection attempts fail, and time and size bombs stop at their bounds."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from orchestrator.core.errors import ExpressionError, ExpressionLimitExceeded
from orchestrator.core.expressions import RenderLimits, check_syntax, render, render_typed

CONTEXT: dict[str, Any] = {"inputs": {"name": "Ada"}, "items": [1, 2, 3], "text": "hello"}


#: Template injection attempts (also sent through every expression position of a running flow, tests/security).
INJECTIONS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''['__class__'] }}",
    "{{ inputs.__class__ }}",
    "{{ items.__class__.__base__ }}",
    "{{ text.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self }}",
    "{{ lipsum.__globals__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ range.__globals__ }}",
    "{{ now.__globals__ }}",
    "{{ render.__globals__['os'] }}",
    "{{ secret.__code__ }}",
    "{{ (1).__class__ }}",
    "{{ text.format }}",
    "{{ '{0.__class__}'.format(text) }}",
    "{{ text.ljust(10) }}",
    "{{ items.append(4) }}",
    "{{ inputs.update({'x': 1}) }}",
    "{{ inputs.items() }}",
    "{{ __import__('os') }}",
    "{{ __builtins__ }}",
    "{{ globals() }}",
    "{{ loop.__class__ }}",
    "{% for x in items %}{{ loop.__class__ }}{% endfor %}",
    "{% macro m() %}{% endmacro %}{{ m.__globals__ }}",
    "{{ caller }}",
    "{{ dict }}",
    "{{ attr }}",
    "{% set x = items.pop() %}",
    "{{ (1).to_bytes(1000000000, 'big') }}",
    "{{ (1.5).hex() }}",
    # The environment and files through jq (issue 16): builtins off the allow-list fail by name.
    "{{ {} | jq('env') }}",
    "{{ {} | jq('env.PATH') }}",
    "{{ {} | jq('input_filename') }}",
    "{{ {} | jq('[inputs]') }}",
    "{{ {} | jq('get_search_list') }}",
    '{{ {} | jq(\'import "passwd" as $p {search: "/etc"}; $p\') }}',
    "{{ {} | jq('include \"x\"; .') }}",
    "{{ {} | jq('debug') }}",
    # Files: time zones named by path (tags that load files are refused at deploy: FILE_TAGS).
    "{{ now(timeZone='../../../../etc/passwd') }}",
    "{{ '2024-01-01' | date(timeZone='/etc/shadow') }}",
    # Python's printf operator, the one `%` Pebble does not have.
    "{{ '%s' % text }}",
    "{{ '%(x)s' % inputs }}",
]

#: Template tags that would read files: not Pebble's, refused when the flow is deployed.
FILE_TAGS = ['{% include "/etc/passwd" %}', '{% import "/etc/passwd" as p %}', '{% extends "/etc/passwd" %}']

#: Probes that may render without error but must never show the environment or a file's content.
ENVIRONMENT_PROBES = [
    "{{ {} | jq('$ENV') }}",
    "{{ {} | jq('$ENV.PATH') }}",
    "{{ {} | jq('[$ENV[]]') }}",
    "{{ {} | jq('$__loc__') }}",
    "{{ {} | jq('def env: $ENV; env') }}",
    "{{ {} | jq('1) | $ENV | (1') }}",
    "{{ envs }}",
    "{{ globals }}",
    "{{ read('/etc/passwd') }}",
    "{{ render('{{ range.__globals__ }}') }}",
]


@pytest.mark.parametrize("template", INJECTIONS)
def test_template_injection_attempts_raise_an_expression_error(template: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        render(template, CONTEXT)
    assert not isinstance(caught.value, ExpressionLimitExceeded)


@pytest.mark.parametrize("template", FILE_TAGS)
def test_template_tags_that_read_files_are_syntax_errors(template: str) -> None:
    with pytest.raises(ExpressionError, match="tag is not supported"):
        check_syntax(template)


@pytest.mark.parametrize("template", ENVIRONMENT_PROBES)
def test_environment_and_file_probes_reveal_neither(template: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_SANDBOX_PROBE", "probe-value-5d2e")
    try:
        text = render(template, CONTEXT)
    except ExpressionError as e:
        text = str(e)
    assert "probe-value-5d2e" not in text
    assert os.environ["PATH"] not in text
    assert "root:" not in text


def test_dunder_attributes_are_reported_as_forbidden() -> None:
    with pytest.raises(
        ExpressionError, match=r"Forbidden .* access to attribute '__class__' of 'str' object is unsafe"
    ):
        render("{{ ''.__class__ }}", {})


def test_safe_string_methods_stay_available() -> None:
    assert render("{{ text.upper() }}|{{ text.startswith('he') }}|{{ 'a,b'.split(',') }}", CONTEXT) == (
        'HELLO|true|["a","b"]'
    )


def test_a_variable_named_like_a_jinja_special_name_is_an_ordinary_variable() -> None:
    assert render("{{ self }}|{{ caller.name }}", {"self": "me", "caller": {"name": "c"}}) == "me|c"


def test_the_defined_test_reveals_nothing_about_internals() -> None:
    assert render("{{ ''.__class__ is defined }}|{{ cycler is defined }}", {}) == "false|false"


def _assert_stops_quickly(template: str, limit_seconds: float = 2.0) -> ExpressionLimitExceeded:
    started = time.monotonic()
    with pytest.raises(ExpressionLimitExceeded) as caught:
        render(template, CONTEXT, limits=RenderLimits(max_seconds=limit_seconds))
    assert time.monotonic() - started < limit_seconds + 1.0
    return caught.value


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(0, 999999) %}{% for j in range(0, 999999) %}{% endfor %}{% endfor %}",
        "{% for i in 0..999999 %}{% for j in 0..999999 %}{{ '' }}{% endfor %}{% endfor %}",
        "{% for i in range(0, 999999) %}{% for j in range(0, 999999) %}{% set x = j + 1 %}{% endfor %}{% endfor %}",
        "{% for i in range(0, 999999) %}{% for j in range(0, 999999) %}{{ x ?? 1 }}{% endfor %}{% endfor %}",
    ],
)
def test_a_loop_that_runs_too_long_stops_at_the_deadline(template: str) -> None:
    error = _assert_stops_quickly(template, limit_seconds=0.3)
    assert "time limit" in str(error)


def test_an_empty_loop_over_a_billion_steps_stops_within_the_default_two_seconds() -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionLimitExceeded, match="time limit"):
        render("{% for i in range(0, 999999) %}{% for j in range(0, 999) %}{% endfor %}{% endfor %}", {})
    assert 1.9 < time.monotonic() - started < 3.0


def test_indenting_a_single_line_by_a_huge_amount_allocates_nothing() -> None:
    assert render("{{ 'x' | indent(1000000000) }}", {}) == "x"


def test_a_huge_range_is_refused_without_being_allocated() -> None:
    error = _assert_stops_quickly("{% for i in range(0, 1000000000000) %}{% endfor %}", limit_seconds=0.5)
    assert "range() cannot produce more than 1000000 elements" in str(error)


def test_a_huge_inclusive_range_operator_is_refused() -> None:
    _assert_stops_quickly("{{ (0..999999999999) | length }}", limit_seconds=0.5)


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'a' * 1000000000 }}",
        "{{ [1] * 1000000000 }}",
        "{% set s = 'aaaaaaaaaaaaaaaa' %}" + "{% set s = s ~ s %}" * 40 + "{{ s | length }}",
        "{% set s = 'aaaaaaaaaaaaaaaa' %}" + "{% set s = s + s %}" * 40 + "{{ s | length }}",
        "{% for i in range(0, 999999) %}{{ i }}{% endfor %}",
        "{{ range(0, 999999) | join('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') }}",
        "{{ ('a' * 100000) | replace({'a': 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'}) }}",
        "{{ 'a\nb\nc' | indent(900000) }}",
        "{{ range(0, 999999) | merge(range(0, 999999)) }}",
    ],
)
def test_output_and_intermediate_values_are_bounded_in_size(template: str) -> None:
    error = _assert_stops_quickly(template)
    assert "limit" in str(error)


def test_the_output_limit_is_configurable() -> None:
    with pytest.raises(ExpressionLimitExceeded, match="over the limit of 10"):
        render("{{ 'hello world!' }}", {}, limits=RenderLimits(max_output_chars=10))


def test_the_time_limit_is_configurable() -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionLimitExceeded):
        render("{% for i in range(0, 999999) %}{% for j in range(0, 999999) %}{% endfor %}{% endfor %}", {},
               limits=RenderLimits(max_seconds=0.1))  # fmt: skip
    assert time.monotonic() - started < 1.0


def test_unbounded_macro_recursion_is_a_limit_error() -> None:
    _assert_stops_quickly("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}")


def test_deeply_nested_expressions_are_a_limit_error() -> None:
    _assert_stops_quickly("{{ " + "[" * 5000 + "]" * 5000 + " }}")


def test_a_catastrophic_regular_expression_runs_in_linear_time() -> None:
    started = time.monotonic()
    assert render("{{ (('a' * 5000) ~ '!') | replace({'(a+)+$': 'x', '(a|a)*b': 'y'}, true) | length }}", {}) == "5001"
    assert time.monotonic() - started < 1.0


def test_a_backreference_in_a_replace_pattern_is_refused_with_the_reason() -> None:
    with pytest.raises(ExpressionError, match=r"replace\(\): invalid regular expression .*no backreferences"):
        render("{{ 'aa' | replace({'(a)\\1': 'x'}, true) }}", {})


def test_typed_rendering_is_bounded_too() -> None:
    with pytest.raises(ExpressionLimitExceeded):
        render_typed("{{ 'a' * 1000000000 }}", {})


def test_limits_apply_again_on_the_next_render() -> None:
    with pytest.raises(ExpressionLimitExceeded):
        render("{{ 'a' * 1000000000 }}", {})
    assert render("{{ 'a' * 3 }}", {}) == "aaa"


#: Templates that build far more than they say, each a separate path to memory or time (issue 16).
ALLOCATION_BOMBS = [
    "{{ '%0200000000d' % 1 }}",
    "{{ '%s%s' % ('a', 'b') }}",
    "{% set x = 3 %}" + "{% set x = x * x %}" * 30 + "{{ x > 1 }}",
    "{{ [[1] * 1000] * 100000 }}",
    "{{ ([['x' * 1000]] * 100000) | length }}",
    "{% set s = [[1] * 1000] %}" + "{% set s = [s, s] %}" * 12 + "{{ s }}",
    "{% set s = [[1] * 1000] %}" + "{% set s = [s, s] %}" * 12 + "{{ s | toJson | length }}",
    "{% set s = [[1] * 1000] %}" + "{% set s = [s, s] %}" * 12 + "{{ s | yaml | length }}",
    "{% set s = [[1] * 1000] %}" + "{% set s = [s, s] %}" * 12 + "{{ s | jq('length') }}",
]


@pytest.mark.parametrize("template", ALLOCATION_BOMBS)
def test_allocation_bombs_are_refused_before_they_allocate(template: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionError):
        render(template, {})
    assert time.monotonic() - started < 3.0


def test_percent_stays_the_remainder_of_two_numbers() -> None:
    assert render("{{ 10 % 3 }}|{{ -7 % 3 }}|{{ 7.5 % 2 }}", {}) == "1|-1|1.5"
    with pytest.raises(ExpressionError, match="`%` is the remainder of two numbers"):
        render("{{ '%d' % 1 }}", {})


def test_repetition_counts_what_the_items_hold() -> None:
    assert render("{{ ([1] * 1000000) | length }}|{{ ([[1, 2]] * 3) | length }}", {}) == "1000000|3"
    with pytest.raises(ExpressionLimitExceeded, match="2000000 characters or items"):
        render("{{ [[1, 2]] * 1000000 }}", {})
