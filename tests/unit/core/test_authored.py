"""render() evaluates only the flow's own text: user data re-rendered stays data (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.authored import Code, skeleton
from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import authored, render, render_typed

#: What a webhook caller with no account may post as an input value, trying to have it evaluated.
HOSTILE = [
    "{{ 7 * 7 }}",
    "{{ flow.id }}",
    "{{ secret('ADMIN') }}",
    "{{ {} | jq('env') }}",
    "{% for i in range(0, 3) %}x{% endfor %}",
    "{# comment #}",
    "{{ render(vars.greeting) }}",
    "{{ '{{ flow.id }}' }}",
    "}}{{ flow.id }}{{",
    "{{{ flow.id }}}",
]


class Secrets:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def secret(self, name: str) -> str:
        self.asked.append(name)
        return "s3cr3t"


def _variables(name: str, **flow_vars: str) -> dict[str, Any]:
    return {
        "flow": {"id": "f", "namespace": "n"},
        "inputs": {"name": name},
        "trigger": {"body": {"name": name}},
        "outputs": {"t": {"value": name}},
        "vars": authored({"greeting": "Hello {{ inputs.name }}", **flow_vars}),
    }


@pytest.mark.parametrize("name", HOSTILE)
def test_re_rendering_a_variable_prints_an_input_as_posted(name: str) -> None:
    secrets = Secrets()
    assert render("{{ render(vars.greeting) }}", _variables(name), functions=secrets) == f"Hello {name}"
    assert secrets.asked == []


@pytest.mark.parametrize(
    "variable",
    [
        "{{ inputs.name | lower }}",
        "{{ inputs.name | trim }}",
        "{{ 'x' ~ inputs.name }}",
        "{{ inputs.name | replace({'a': 'a'}) }}",
        "{% filter lower %}{{ inputs.name }}{% endfilter %}",
        "{% macro copy() %}{{ inputs.name }}{% endmacro %}{{ copy() }}",
        "{{ trigger.body.name }}",
        "{{ outputs.t.value }}",
        "{{ inputs }}",
    ],
)
def test_data_stays_data_through_filters_blocks_and_other_sources(variable: str) -> None:
    rendered = render("{{ render(vars.probe) }}", _variables("<{{ FLOW.ID }}>", probe=variable)).lower()
    assert "<{{ flow.id }}>" in rendered
    assert "<f>" not in rendered


@pytest.mark.parametrize(
    "template", ["{{ render(inputs.name) }}", "{{ renderOnce(trigger.body.name) }}", "{{ render(outputs.t.value) }}"]
)
def test_render_of_data_returns_it_unchanged(template: str) -> None:
    assert render(template, _variables("{{ flow.id }}")) == "{{ flow.id }}"


def test_nested_flow_variables_still_render_recursively_as_in_kestra() -> None:
    variables = _variables("Ada", first="1", second="{{ vars.first }} > 2", third="{{ vars.second }} > 3")
    assert render("{{ render(vars.third) }}", variables) == "1 > 2 > 3"
    assert render("{{ render(vars.third, false) }}", variables) == "{{ vars.first }} > 2 > 3"
    assert render("{{ render('{{ vars.greeting }}') }}", variables) == "Hello Ada"


def test_a_variable_printing_an_input_next_to_a_brace_does_not_merge_into_a_tag() -> None:
    assert render("{{ render(vars.j) }}", _variables("{ flow.id }}", j="{{ '{' }}{{ inputs.name }}")) == "{{ flow.id }}"


def test_an_invalid_template_in_a_variable_is_still_an_error() -> None:
    with pytest.raises(ExpressionError):
        render("{{ render(vars.bad) }}", _variables("x", bad="{{ inputs.name "))


def test_skeleton_keeps_code_and_puts_data_behind_placeholders() -> None:
    source, data = skeleton([Code("a{{ x }}"), "{{ evil }}", "more", Code("b{"), Code("c")])
    assert source == "a{{ x }}{{ __chorus_data[0] }}b{{ __chorus_data[1] }}c"
    assert data == ("{{ evil }}more", "{")


def test_a_flow_variable_leaves_a_typed_render_as_plain_text() -> None:
    value = render_typed("{{ vars.greeting }}", _variables("x"))
    assert value == "Hello {{ inputs.name }}" and type(value) is str


def test_a_flow_variable_is_a_java_string_to_class_name() -> None:
    assert render("{{ vars.greeting | className }}", _variables("x")) == "java.lang.String"


_TEMPLATE_PIECES = st.sampled_from(
    ["{{", "}}", "{%", "%}", "{#", "#}", "{", "}", " ", "flow.id", "7*7", "render(vars.greeting)", "raw", "endraw",
     "for i in range(0, 9)", "endfor", "'", '"', "-", "__chorus_data[0]", "\n", "jq('env')", "secret('A')"]
)  # fmt: skip


#: Flow variables around the posted text, and what each renders to: the text must come out as posted.
_SHAPES = {
    "Hello {{ inputs.name }}": "Hello {}",
    "{{ inputs.name }}": "{}",
    "{{ inputs.name }}{{ trigger.body.name }}": "{}{}",
    "{{ '{' }}{{ inputs.name }}{{ '}' }}": "{{{}}}",
    "{{ vars.inner }}!": "{}!",
}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(_SHAPES)), st.lists(_TEMPLATE_PIECES, max_size=12).map("".join))
def test_fuzz_no_posted_text_is_ever_evaluated_by_render(shape: str, name: str) -> None:
    secrets = Secrets()
    variables = _variables(name, probe=shape, inner="{{ inputs.name }}")
    expected = _SHAPES[shape].replace("{}", "\0").replace("{{", "{").replace("}}", "}").replace("\0", name)
    assert render("{{ render(vars.probe) }}", variables, functions=secrets) == expected
    assert secrets.asked == []
