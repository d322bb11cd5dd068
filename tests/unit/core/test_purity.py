"""Which tasks any process may run inside the transaction that records them (core/purity.py)."""

from __future__ import annotations

import pytest

from orchestrator.core.parse import parse_flow
from orchestrator.core.purity import is_pure, template_is_pure

FLOW = """
id: p
namespace: tests.purity
tasks:
  - {id: plain, type: io.kestra.plugin.core.log.Log, message: hello}
  - {id: filtered, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.x | default('a') | upper }}"}
  - {id: secret, type: io.kestra.plugin.core.log.Log, message: "{{ secret('TOKEN') }}"}
  - {id: kv, type: io.kestra.plugin.core.debug.Return, format: "{{ kv('k') }}"}
  - {id: guarded, type: io.kestra.plugin.core.log.Log, message: hi, runIf: "{{ read('f.txt') == 'x' }}"}
  - {id: timed, type: io.kestra.plugin.core.log.Log, message: hi, timeout: PT1S}
  - {id: grouped, type: io.kestra.plugin.core.log.Log, message: hi, workerGroup: {key: gpu}}
  - {id: sleep, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S}
  - id: branch
    type: io.kestra.plugin.core.flow.If
    condition: "{{ 1 == 1 }}"
    then:
      - {id: inner, type: io.kestra.plugin.core.log.Log, message: in}
  - {id: wait, type: io.kestra.plugin.core.flow.Pause}
"""


@pytest.mark.parametrize(
    ("task_id", "pure"),
    [
        ("plain", True),
        ("filtered", True),
        ("secret", False),
        ("kv", False),
        ("guarded", False),
        ("timed", False),
        ("grouped", False),
        ("sleep", False),
        ("branch", True),
        ("wait", False),
    ],
)
def test_a_task_is_pure_only_when_its_type_and_every_expression_are(task_id: str, pure: bool) -> None:
    flow = parse_flow(FLOW)

    assert is_pure(flow, flow.task(task_id)) is pure


def test_a_flow_variable_calling_a_process_bound_function_makes_every_task_impure() -> None:
    flow = parse_flow(FLOW + "variables:\n  token: \"{{ secret('TOKEN') }}\"\n")

    assert not is_pure(flow, flow.task("plain"))


@pytest.mark.parametrize(
    ("template", "pure"),
    [
        ("no expression", True),
        ("{{ now() | date('yyyy') }}", True),
        ("{{ errorLogs() }}", False),
        ("{{ x | jq('.a') }}", False),  # a sandboxed subprocess
        ("{{ fileExists('a') }}", False),  # not on the allow-list
        ("{{ unclosed", False),
    ],
)
def test_a_template_is_pure_when_it_calls_only_allow_listed_functions_and_filters(template: str, pure: bool) -> None:
    assert template_is_pure(template) is pure
