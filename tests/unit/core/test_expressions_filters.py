"""Kestra's Pebble filters and functions: string, collection, JSON/YAML, date, jq and the caller's I/O functions."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.core.errors import ExpressionError, ExpressionLimitExceeded
from orchestrator.core.expressions import RenderLimits, authored, render, render_typed

CONTEXT: dict[str, Any] = {
    "start": "2024-03-01T10:20:30.123456Z",
    "taskrun": {"value": '{"key": "k1", "value": 2}'},
    "payload": {"name": "John", "score": {"English": 72, "Maths": 88}},
    "flow": {"id": "f", "namespace": "company.team"},
}


def r(template: str, **extra: Any) -> str:
    return render(template, {**CONTEXT, **extra})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 'LOUD' | lower }}|{{ 'quiet' | upper }}", "loud|QUIET"),
        ("{{ '  padded  ' | trim }}", "padded"),
        ("{{ 'article title' | title }}", "Article Title"),
        ("{{ 'hello WORLD' | capitalize }}", "Hello WORLD"),
        ("{{ 'I like %this%.' | replace({'%this%': 'cake'}) }}", "I like cake."),
        ("{{ 'a-b-c' | replace('-', '+') }}", "a+b+c"),
        ("{{ 'a1b22' | replace({'[0-9]+': '#'}, true) }}", "a#b#"),
        ("{{ ['x-1', {'k': 'y-2'}] | replace({'-': '_'}) }}", '["x_1",{"k":"y_2"}]'),
        ("{{ 'a,b,,c,,' | split(',') }}", '["a","b","","c"]'),
        ("{{ 'a,b,c' | split(',', 2) }}", '["a","b,c"]'),
        ("{{ ['a', 'b', 1] | join(', ') }}", "a, b, 1"),
        ("{{ [1, 2] | join }}", "12"),
        ("{{ ['x', 'y'] | first }}|{{ ['x', 'y'] | last }}", "x|y"),
        ("{{ 'abc' | first }}|{{ 'abc' | last }}", "a|c"),
        ("{{ [] | first }}", ""),
        ("{{ [1, 2, 3] | length }}|{{ 'abcd' | length }}|{{ {'a': 1} | length }}|{{ null | length }}", "3|4|1|0"),
        ("{{ {'foo': 'bar', 'baz': 'qux'} | keys }}", '["foo","baz"]'),
        ("{{ {'foo': 'bar', 'baz': 'qux'} | values }}", '["bar","qux"]'),
        ("{{ -7 | abs }}", "7"),
        ("{{ '12' | number + 1 }}|{{ '12.5' | number }}", "13|12.5"),
        ("{{ '12' | number('FLOAT') }}|{{ '7' | number('INT') }}", "12.0|7"),
        ("{{ 3.141592653 | numberFormat('#.##') }}", "3.14"),
        ("{{ 2.5 | numberFormat('0.000') }}|{{ 1234567.891 | numberFormat('#,##0.00') }}", "2.500|1,234,567.89"),
        ("{{ 'this is a long sentence.' | abbreviate(7) }}", "this..."),
        ("{{ 'short' | abbreviate(7) }}", "short"),
        ("{{ 'Hello World!' | slugify }}", "hello-world"),
        ("{{ ' Éléphant  _ Café ' | slugify }}", "elephant-cafe"),
        ("{{ 'test' | base64encode }}|{{ 'dGVzdA==' | base64decode }}", "dGVzdA==|test"),
        ("{{ 'The string ü@foo-bar' | urlencode }}", "The+string+%C3%BC%40foo-bar"),
        ("{{ 'a+b%40c' | urldecode }}", "a b@c"),
        ("{{ 'test' | sha256 }}", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        ("{{ 'test' | md5 }}", "098f6bcd4621d373cade4e832627b4f6"),
        ("{{ 'test' | sha1 }}", "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"),
        ("{{ 'a.b.c' | substringBefore('.') }}|{{ 'a.b.c' | substringBeforeLast('.') }}", "a|a.b"),
        ("{{ 'a.b.c' | substringAfter('.') }}|{{ 'a.b.c' | substringAfterLast('.') }}", "b.c|c"),
        ("{{ 'abc' | substringAfter('x') }}|{{ 'abc' | substringBefore('x') }}", "|abc"),
        ("{{ 'kestra' | startsWith('kes') }}|{{ 'kestra' | endsWith('x') }}", "true|false"),
        ("{{ [1, 2, 3, 4, 5] | chunk(2) }}", "[[1,2],[3,4],[5]]"),
        ("{{ [1, 2, 1, 3, 2] | distinct }}", "[1,2,3]"),
        ("{{ [1, [2, 3], [4]] | flatten }}", "[1,2,3,4]"),
        ("{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | rsort }}|{{ [1, 2, 3] | reverse }}", "[1,2,3]|[3,2,1]|[3,2,1]"),
        ("{{ ['apple', 'banana', 'cherry'] | slice(1, 2) }}|{{ 'abcdef' | slice(2) }}", '["banana"]|cdef'),
        ("{{ [1] | merge([2, 3]) }}|{{ {'a': 1} | merge({'b': 2}) }}", '[1,2,3]|{"a":1,"b":2}'),
        ("{{ 'it\\'s' | escapeChar('single') }}", "it\\'s"),
        ("{{ 'say \"hi\"' | escapeChar('double') }}", 'say \\"hi\\"'),
        ("{{ 'it\\'s' | escapeChar('shell') }}", "it'\\''s"),
        ("{{ 42 | string }}|{{ '3.50' | string }}", "42|3.50"),
        (
            "{{ 'x' | className }}|{{ 1 | className }}|{{ [1] | className }}",
            "java.lang.String|java.lang.Long|java.util.ArrayList",
        ),
        ("{{ 'a\nb' | indent(2) }}", "a\n  b"),
        ("{{ 'a\nb' | nindent(2) }}", "\n  a\n  b"),
        ("{{ 'a\nb' | indent(1, '>') }}", "a\n>b"),
    ],
)
def test_string_and_collection_filters(template: str, expected: str) -> None:
    assert r(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ [1, 2, 3] | toJson }}", "[1,2,3]"),
        ("{{ true | toJson }}|{{ 'foo' | toJson }}|{{ null | toJson }}", 'true|"foo"|null'),
        ("{{ {'a': null, 'b': 1} | toJson }}", '{"b":1}'),
        ("{{ {'a': null, 'b': 1} | toJson(includeNulls=true) }}", '{"a":null,"b":1}'),
        ("{{ payload | json }}", '{"name":"John","score":{"English":72,"Maths":88}}'),
        ("{{ {'key': 'value', 'list': [1, 2]} | yaml }}", "key: value\nlist:\n  - 1\n  - 2\n"),
        ("{{ 'foo: bar' | yaml }}", "'foo: bar'\n"),
        ("{{ fromJson('[1, 2, 3]')[0] }}", "1"),
        ("{{ json(taskrun.value).key }}", "k1"),
        ("{{ fromJson(null) }}", ""),
        ("{{ yaml('foo: [666, 1, 2]').foo[0] }}", "666"),
        ("{{ fromYaml('a: b').a }}", "b"),
        ("{% for entry in json(taskrun.value) %}{{ entry.key }};{% endfor %}", "key;value;"),
    ],
)
def test_json_and_yaml_filters_and_functions(template: str, expected: str) -> None:
    assert r(template) == expected


def test_from_json_rejects_invalid_json() -> None:
    with pytest.raises(ExpressionError, match="fromJson\\(\\): invalid JSON"):
        r("{{ fromJson('{nope') }}")


def test_yaml_function_rejects_aliases() -> None:
    with pytest.raises(ExpressionError, match="aliases are not allowed"):
        r("{{ yaml('a: &x [1]\nb: *x') }}")


# -- dates ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ start | date('yyyy-MM-dd') }}", "2024-03-01"),
        ("{{ start | date(\"yyyy-MM-dd'T'HH:mm:ss\") }}", "2024-03-01T10:20:30"),
        ("{{ start | date('yyyy-MM-dd HH:mm:ss.SSS') }}", "2024-03-01 10:20:30.123"),
        ("{{ start | date('dd/MM/yy h:mm a') }}", "01/03/24 10:20 AM"),
        ("{{ start | date('EEEE d MMMM yyyy, EEE MMM') }}", "Friday 1 March 2024, Fri Mar"),
        ("{{ start | date(\"yyyy-MM-dd'T'HH:mm:ssXXX\", timeZone='Europe/Paris') }}", "2024-03-01T11:20:30+01:00"),
        ("{{ start | date('HH:mm X', timeZone='UTC') }}", "10:20 Z"),
        ("{{ start | date('HH:mm Z', timeZone='Asia/Kolkata') }}", "15:50 +0530"),
        ("{{ start }}", "2024-03-01T10:20:30.123456Z"),
        ("{{ start | date }}", "2024-03-01T10:20:30.123456Z"),
        ("{{ start | date('iso_sec') }}", "2024-03-01T10:20:30Z"),
        ("{{ start | date('sql_seq') }}", "2024-03-01 10:20:30"),
        ("{{ '2024-03-01T10:20:30.123456789+02:00' | date('HH:mm') }}", "08:20"),
        ("{{ '01/03/2024' | date('yyyy-MM-dd', existingFormat='dd/MM/yyyy') }}", "2024-03-01"),
        ("{{ 0 | date('yyyy-MM-dd HH:mm') }}", "1970-01-01 00:00"),
        ("{{ start | dateAdd(-1, 'DAYS') }}", "2024-02-29T10:20:30.123456Z"),
        ("{{ start | dateAdd(2, 'HOURS', 'HH:mm') }}", "12:20"),
        ("{{ '2024-01-31T00:00:00Z' | dateAdd(1, 'MONTHS', 'yyyy-MM-dd') }}", "2024-02-29"),
        ("{{ '2024-02-29T00:00:00Z' | dateAdd(1, 'YEARS', 'yyyy-MM-dd') }}", "2025-02-28"),
        ("{{ start | timestamp }}", "1709288430"),
        ("{{ start | timestampMilli }}", "1709288430123"),
        ("{{ start | timestampMicro }}", "1709288430123456"),
        ("{{ start | timestampNano }}", "1709288430123456000"),
        ("{{ (execution ?? {'startDate': start}).startDate | date('yyyy') }}", "2024"),
    ],
)
def test_date_filters_use_java_patterns(template: str, expected: str) -> None:
    assert r(template) == expected


def test_now_returns_the_current_time_in_iso_format() -> None:
    before = datetime.now(UTC)
    rendered = r("{{ now() }}")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rendered)
    assert abs((datetime.fromisoformat(rendered) - before).total_seconds()) < 5


def test_now_accepts_a_format_and_time_zone() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", r("{{ now(format='yyyy-MM-dd', timeZone='Asia/Tokyo') }}"))
    assert re.fullmatch(r"\d{4}", r("{{ now() | date('yyyy') }}"))


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'not a date' | date('yyyy') }}", "Cannot read 'not a date' as a date"),
        ("{{ start | date('yyyy', timeZone='Mars/Olympus') }}", "Unknown time zone 'Mars/Olympus'"),
        ("{{ start | dateAdd(1, 'FORTNIGHTS') }}", "unknown unit"),
        ("{{ start | date('yyyy ww') }}", "Unsupported date pattern letter 'w'"),
    ],
)
def test_date_errors_are_expression_errors(template: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        r(template)


# -- jq -------------------------------------------------------------------------------------------------
def test_jq_applies_the_program_to_json_text_and_returns_all_results() -> None:
    assert r("{{ taskrun.value | jq('.key') | first }}") == "k1"
    assert render_typed("{{ taskrun.value | jq('.key') }}", CONTEXT) == ["k1"]
    assert render_typed("{{ taskrun.value | jq('.[]') }}", CONTEXT) == ["k1", 2]


# -- functions ------------------------------------------------------------------------------------------
class Functions:
    def __init__(self) -> None:
        self.kv_calls: list[tuple[str, str | None, bool]] = []

    def secret(self, name: str) -> str:
        if name == "missing":
            raise KeyError(name)
        return {"my_secret": '{"secretKey": "s3cr3t"}', "token": "abc"}[name]

    def kv(self, key: str, namespace: str | None, error_on_missing: bool) -> Any:
        self.kv_calls.append((key, namespace, error_on_missing))
        return {"field": "v"} if key == "my-key" else None

    def error_logs(self) -> list[dict[str, Any]]:
        return [{"taskId": "t1", "message": "boom"}]


def test_secret_reads_from_the_callers_functions() -> None:
    assert render("{{ secret('token') }}", {}, functions=Functions()) == "abc"
    assert render("{{ json(secret('my_secret')).secretKey }}", {}, functions=Functions()) == "s3cr3t"


def test_a_failing_secret_lookup_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match=re.escape("Cannot render `{{ secret('missing') }}`")):
        render("{{ secret('missing') }}", {}, functions=Functions())


def test_kv_passes_namespace_and_error_on_missing() -> None:
    functions = Functions()
    variables = {"inputs": {"namespace": "other", "errorOnMissing": False}}
    assert render("{{ kv('my-key').field }}", variables, functions=functions) == "v"
    assert render("{{ kv('my-key', inputs.namespace, inputs.errorOnMissing).field }}", variables, functions=functions)
    assert render("{{ kv(key='x', errorOnMissing=false) ?? 'none' }}", variables, functions=functions) == "none"
    assert functions.kv_calls == [("my-key", None, True), ("my-key", "other", False), ("x", None, False)]


def test_error_logs_returns_the_callers_logs() -> None:
    assert render("{{ errorLogs()[0].message }}", {}, functions=Functions()) == "boom"


def test_io_functions_fail_clearly_when_the_caller_provides_none() -> None:
    with pytest.raises(ExpressionError, match=re.escape("The secret() function is not available here")):
        render("{{ secret('token') }}", {})


def test_time_spent_in_the_callers_io_does_not_count_against_the_render_budget() -> None:
    class SlowFunctions(Functions):
        def secret(self, name: str) -> str:
            deadline = datetime.now(UTC).timestamp() + 0.3
            while datetime.now(UTC).timestamp() < deadline:
                pass
            return "slow"

    limits = RenderLimits(max_seconds=0.2)
    assert render("{{ secret('a') }}", {}, functions=SlowFunctions(), limits=limits) == "slow"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ range(0, 8, 2) }}", "[0,2,4,6,8]"),
        ("{{ range(3, 1, -1) }}", "[3,2,1]"),
        ("{{ max(1, 5, 3) }}|{{ min([4, 2]) }}", "5|2"),
        ("{{ uuid() | length }}", "36"),
        ("{{ randomInt(1, 2) }}", "1"),
        ('{{ render("{{ flow.id }}") }}', "f"),
        ("{{ renderOnce(\"{{ '{{ flow.id }}' }}\") }}", "{{ flow.id }}"),
        ("{{ render(\"{{ '{{ flow.id }}' }}\") }}", "f"),
        ("{{ render(\"{{ '{{ flow.id }}' }}\", recursive=false) }}", "{{ flow.id }}"),
        ("{{ render(null) }}", ""),
        ("{{ render('plain') }}", "plain"),
    ],
)
def test_utility_functions(template: str, expected: str) -> None:
    assert r(template) == expected


def test_current_each_output_indexes_outputs_by_the_loop_values() -> None:
    variables = {
        "outputs": {"make": {"outer": {"inner": {"value": 42}}}},
        "parents": [{"taskrun": {"value": "outer"}}],
        "taskrun": {"value": "inner"},
    }
    assert render("{{ currentEachOutput(outputs.make).value }}", variables) == "42"


def test_render_recursion_is_bounded() -> None:
    with pytest.raises(ExpressionLimitExceeded, match="render\\(\\) is nested more than 3 levels deep"):
        render("{{ render(x) }}", {"x": authored("{{ render(x) }}")}, limits=RenderLimits(max_recursion=3))


def test_render_of_a_non_string_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="render\\(\\) expects a string"):
        r("{{ render(1) }}")
