"""Patterns from flows and requests match in linear time (RE2); patterns RE2 cannot run are refused with the reason."""

from __future__ import annotations

import time

import pytest

from orchestrator.core import regex
from orchestrator.core.errors import FlowInvalid, InputInvalid
from orchestrator.core.flow_conditions import EndedExecution, flow_trigger_matches
from orchestrator.core.inputs import coerce_declared
from orchestrator.core.parse import parse_flow

CATASTROPHIC = ["(a|a)*", "(a+)+", "(a*)*b", "(x+x+)+y", "^(([a-z])+.)+[A-Z]([a-z])+$"]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_patterns_fail_to_match_in_linear_time(pattern: str) -> None:
    started = time.monotonic()
    assert not regex.fullmatch(pattern, "a" * 20_000 + "!")
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [("(a)\\1", "\\1"), ("(?=a)a", "(?="), ("(?<!a)b", "(?<"), ("a*+", "*+"), ("(", "missing )")],
)
def test_patterns_re2_cannot_run_are_refused_with_the_reason(pattern: str, fragment: str) -> None:
    with pytest.raises(regex.RegexInvalid) as caught:
        regex.compile_pattern(pattern)
    assert fragment in str(caught.value)


def test_a_pattern_python_accepts_but_re2_does_not_names_what_re2_lacks() -> None:
    with pytest.raises(regex.RegexInvalid, match="RE2, which has no backreferences, lookahead or lookbehind"):
        regex.compile_pattern("(a)\\1")


def test_a_pattern_too_large_to_compile_is_refused() -> None:
    with pytest.raises(regex.RegexInvalid):
        regex.compile_pattern("((a{1,100}){1,100}){1,100}")


def test_substitute_reads_dollar_groups_and_checks_the_growing_size() -> None:
    assert regex.substitute("(b+)", "<$1>", "abbc", lambda size: None) == "a<bb>c"
    sizes: list[int] = []
    with pytest.raises(OverflowError):

        def check(size: int) -> None:
            sizes.append(size)
            if size > 100:
                raise OverflowError

        regex.substitute("", "x" * 50, "abcdef", check)
    assert sizes[-1] > 100 and len(sizes) <= 3  # stopped at the first match past the cap


FLOW = """
id: f
namespace: company.team
inputs:
  - id: name
    type: STRING
    validator: {validator}
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def test_a_catastrophic_input_validator_answers_at_once() -> None:
    flow = parse_flow(FLOW.format(validator="'(a|a)*'"))
    started = time.monotonic()
    with pytest.raises(InputInvalid, match="must match the pattern"):
        coerce_declared(flow.inputs, {"name": "a" * 28 + "!"})
    assert time.monotonic() - started < 0.5
    assert coerce_declared(flow.inputs, {"name": "aaa"}) == {"name": "aaa"}


def test_a_validator_with_a_backreference_is_refused_at_deploy_on_its_line() -> None:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(FLOW.format(validator="'(a)\\1'"))
    detail = next(d for d in caught.value.errors if d.path == "inputs[0].validator")
    assert detail.line == 7
    assert "no backreferences" in detail.message


def test_a_regex_flow_condition_runs_in_linear_time_and_an_unsupported_one_never_holds() -> None:
    flow = parse_flow(
        """
id: watcher
namespace: company.team
triggers:
  - id: on_flow
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: p
      where:
        - id: w
          filters:
            - field: FLOW_ID
              type: REGEX
              value: "{pattern}"
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
""".replace("{pattern}", "(a|a)*")
    )
    ended = EndedExecution("e1", "company.team", "a" * 40 + "!", 1, "SUCCESS")
    started = time.monotonic()
    assert not flow_trigger_matches(flow.triggers[0], ended)
    assert time.monotonic() - started < 0.5
    assert flow_trigger_matches(flow.triggers[0], EndedExecution("e2", "company.team", "aaaa", 1, "SUCCESS"))


def test_a_regex_flow_condition_re2_cannot_run_is_refused_at_deploy_on_its_line() -> None:
    source = """
id: watcher
namespace: company.team
triggers:
  - id: on_flow
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: p
      where:
        - id: w
          filters:
            - field: FLOW_ID
              type: REGEX
              value: "(a)\\\\1"
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
"""
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(source)
    [detail] = caught.value.errors
    assert detail.path == "triggers[0].preconditions.where[0].filters[0].value"
    assert detail.line == 14
    assert "no backreferences" in detail.message
