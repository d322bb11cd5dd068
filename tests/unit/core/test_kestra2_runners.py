"""Kestra 2.x behaviours of the k2-runners slice, pure: the subflow() function's checks and result, the
`assets` task property and the 2.x concurrency queue bounds (flows of valids/ must load)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrator.core.errors import ExpressionError, FlowInvalid
from orchestrator.core.expressions import render
from orchestrator.core.parse import parse_flow

FLOW = {"flow": {"id": "caller", "namespace": "io.kestra.tests", "tenantId": "main"}}


class _Runs:
    """A caller that runs children the way Kestra's ExecutionService.runAndWait reports them: one flow known,
    whose declared output echoes its `region` input (valids/subflow-function-child.yaml)."""

    def __init__(self, state: str = "SUCCESS", nested: str | None = None) -> None:
        self.state, self.nested, self.calls = state, nested, []  # type: ignore[var-annotated]

    def run_subflow(self, **call: Any) -> dict[str, Any]:
        self.calls.append(call)
        if self.nested is not None:  # the child's own input default calls subflow() again, on this same render
            render(self.nested, FLOW, functions=self)
        region = call["inputs"].get("region", "eu")
        outputs = {"datacenters": f"dc-{region}"}
        return {"id": "child1", "state": self.state, "outputs": outputs, "labels": call["labels"]}


def _subflow(args: str, functions: Any = None, variables: dict[str, Any] | None = None) -> str:
    return render("{{ subflow(" + args + ") }}", FLOW if variables is None else variables, functions=functions)


CHILD = "namespace='io.kestra.tests', id='subflow-function-child'"


def test_subflow_returns_the_childs_outputs_state_and_labels() -> None:
    # SubflowFunctionTest#shouldRunSubflowAndExposeFlowOutputs, #shouldExposeStateAndLabelsOnTheResult,
    # #shouldMergeProvidedLabels, #shouldUseSubflowInputDefaultsWhenNotProvided
    runs = _Runs()
    us = "{{ subflow(" + CHILD + ", inputs={'region': 'us'}).outputs.datacenters }}"
    assert render(us, FLOW, functions=runs) == "dc-us"
    assert render("{{ subflow(" + CHILD + ").outputs.datacenters }}", FLOW, functions=runs) == "dc-eu"
    assert render("{{ subflow(" + CHILD + ").state }}", FLOW, functions=runs) == "SUCCESS"
    assert render("{{ subflow(" + CHILD + ").labels['system.from'] }}", FLOW, functions=runs) == "subflow"
    assert render("{{ subflow(" + CHILD + ", labels={'team': 'data'}).labels.team }}", FLOW, functions=runs) == "data"
    # shouldAllowCorrelationIdSystemLabel: the one system label a caller may pass on
    assert _subflow(CHILD + ", labels={'system.correlationId': 'abc'}", runs) != ""
    call = runs.calls[-1]
    assert call["caller"] == {"namespace": "io.kestra.tests", "id": "caller"}
    assert call["timeout"] == timedelta(minutes=1)  # SubflowFunctionConfiguration's defaultTimeout
    assert {"key": "system.correlationId", "value": "abc"} in call["labels"]


@pytest.mark.parametrize(
    ("args", "variables", "message"),
    [
        # SubflowFunctionTest#shouldThrowWhenUsedInTaskContext / #shouldThrowWhenUsedInTriggerContext
        (CHILD, {**FLOW, "taskrun": {"id": "abc"}}, "task or trigger"),
        (CHILD, {**FLOW, "trigger": {"id": "schedule"}}, "task or trigger"),
        ("id='subflow-function-child'", FLOW, "'namespace' and 'id'"),  # #shouldThrowWhenNamespaceOrIdMissing
        (CHILD, {}, "flow context"),  # #shouldThrowWhenNoFlowContext
        (CHILD + ", timeout='PT10M'", FLOW, "exceeds the maximum allowed (PT5M)"),  # #shouldThrowWhenTimeoutExceedsMax
        (CHILD + ", timeout='ten minutes'", FLOW, "ISO-8601 duration"),
        (CHILD + ", labels={'system.test': 'x'}", FLOW, "system label"),  # #shouldThrowWhenSettingReservedSystemLabel
        (CHILD + ", labels='team'", FLOW, "map of string keys"),
    ],
)
def test_subflow_refuses_what_kestra_refuses_before_running_anything(
    args: str, variables: dict[str, Any], message: str
) -> None:
    runs = _Runs()
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _subflow(args, runs, variables)
    assert runs.calls == []


def test_a_failed_child_and_runaway_recursion_are_errors() -> None:
    # SubflowFunctionTest#shouldThrowWhenSubflowFails
    with pytest.raises(ExpressionError, match="ended in state FAILED"):
        _subflow(CHILD, _Runs(state="FAILED"))
    # #shouldThrowWhenFlowCallsItself: the child's input default calls subflow() again on the same render
    recursive = _Runs(nested="{{ subflow(" + CHILD + ") }}")
    with pytest.raises(ExpressionError, match="maximum nesting depth of 3"):
        _subflow(CHILD, recursive)
    assert len(recursive.calls) == 3
    # the depth is given back: a later, flat call runs
    assert _subflow(CHILD, _Runs()) != ""


def test_without_a_caller_that_runs_flows_subflow_says_it_is_not_available() -> None:
    with pytest.raises(ExpressionError, match="not available here"):
        _subflow(CHILD)


def test_a_flow_calling_subflow_in_a_task_loads() -> None:
    # Kestra registers the function, so the flow parses; the call fails when the task renders (above).
    flow = parse_flow(
        "id: f\nnamespace: t\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n"
        "    format: \"{{ subflow(namespace='t', id='c').state }}\"\n"
    )
    assert flow.tasks[0].id == "r"


ASSETS = """id: f
namespace: t
tasks:
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: whatever
    assets:
      enableAuto: false
      inputs:
        - id: some-input-uid
      outputs:
        - namespace: t
          id: some-output-uid
          type: TABLE
"""


def test_the_assets_declaration_of_kestra_2_is_read() -> None:
    # valids/assets.yaml (AssetsDeclaration: enableAuto, inputs, outputs)
    assert parse_flow(ASSETS).tasks[0].id == "r"


def test_a_malformed_assets_declaration_names_the_field() -> None:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(ASSETS.replace("enableAuto: false", "lineage: true"))
    assert "tasks[0].assets.lineage" in str(caught.value)
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(ASSETS.replace("      inputs:\n        - id: some-input-uid\n", "      inputs: 3\n"))
    assert "tasks[0].assets.inputs" in str(caught.value)


QUEUE = (
    "id: f\nnamespace: t\nconcurrency:\n  behavior: QUEUE\n  limit: 1\n  {key}: {value}\n"
    "tasks:\n  - {{id: a, type: Return, format: x}}\n"
)


@pytest.mark.parametrize("key", ["queueLimit", "queueSize"])
def test_the_2x_queue_bounds_load_and_must_be_positive(key: str) -> None:
    # valids/flow-concurrency-queue-limit.yml, valids/flow-concurrency-queue-size.yml
    concurrency = parse_flow(QUEUE.format(key=key, value=1)).concurrency
    assert concurrency is not None and concurrency.limit == 1
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(QUEUE.format(key=key, value=0))
    assert f"concurrency.{key}" in str(caught.value)


def test_the_2x_concurrency_duration_loads_and_must_be_an_iso_duration() -> None:
    # valids/flow-concurrency-queue-duration.yml
    concurrency = parse_flow(QUEUE.format(key="duration", value="PT5S")).concurrency
    assert concurrency is not None and concurrency.duration == timedelta(seconds=5)
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(QUEUE.format(key="duration", value="soon"))
    assert "concurrency.duration" in str(caught.value)
