"""Flow trigger conditions: which ended executions start a flow, and the `trigger` variables it gets."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.flow import TriggerSpec
from orchestrator.core.flow_conditions import EndedExecution, flow_trigger_matches, flow_trigger_variables

ENDED = EndedExecution(
    id="E1",
    namespace="company.team.sales",
    flow_id="upstream",
    flow_revision=3,
    state="SUCCESS",
    labels={"env": "prod"},
    outputs={"total": 7},
)


def trigger(**properties: Any) -> TriggerSpec:
    return TriggerSpec(
        id="on-upstream", type="Flow", type_name="io.kestra.plugin.core.trigger.Flow", properties=properties
    )


def condition(kind: str, **properties: Any) -> dict[str, Any]:
    return {"type": f"io.kestra.plugin.core.condition.{kind}", **properties}


def test_without_conditions_any_terminal_state_matches() -> None:
    assert flow_trigger_matches(trigger(), ENDED)


def test_states_restrict_the_ended_states() -> None:
    assert not flow_trigger_matches(trigger(states=["FAILED"]), ENDED)
    assert flow_trigger_matches(trigger(states=["SUCCESS", "WARNING"]), ENDED)


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"in": ["SUCCESS"]}, True),
        ({"in": ["FAILED", "KILLED"]}, False),
        ({"notIn": ["SUCCESS"]}, False),
        ({"notIn": ["FAILED"]}, True),
    ],
)
def test_execution_status_checks_in_and_not_in(props: dict[str, Any], expected: bool) -> None:
    assert flow_trigger_matches(trigger(conditions=[condition("ExecutionStatus", **props)]), ENDED) is expected


def test_execution_flow_names_one_flow() -> None:
    same = condition("ExecutionFlow", namespace="company.team.sales", flowId="upstream")
    other = condition("ExecutionFlow", namespace="company.team.sales", flowId="other")
    assert flow_trigger_matches(trigger(conditions=[same]), ENDED)
    assert not flow_trigger_matches(trigger(conditions=[other]), ENDED)


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"namespace": "company.team", "prefix": True}, True),
        ({"namespace": "company.team", "comparison": "PREFIX"}, True),
        ({"namespace": "company.te", "comparison": "PREFIX"}, False),
        ({"namespace": "company.team"}, False),
        ({"namespace": "company.team.sales"}, True),
        ({"namespace": "sales", "comparison": "SUFFIX"}, True),
    ],
)
def test_execution_namespace_compares_equal_prefix_or_suffix(props: dict[str, Any], expected: bool) -> None:
    assert flow_trigger_matches(trigger(conditions=[condition("ExecutionNamespace", **props)]), ENDED) is expected


def test_execution_labels_must_all_be_present() -> None:
    assert flow_trigger_matches(trigger(conditions=[condition("ExecutionLabels", labels={"env": "prod"})]), ENDED)
    listed = condition("ExecutionLabels", labels=[{"key": "env", "value": "dev"}])
    assert not flow_trigger_matches(trigger(conditions=[listed]), ENDED)


def test_legacy_condition_type_names_are_understood() -> None:
    legacy = {"type": "io.kestra.core.models.conditions.types.ExecutionStatusCondition", "in": ["FAILED"]}
    assert not flow_trigger_matches(trigger(conditions=[legacy]), ENDED)


def test_an_unknown_condition_never_holds() -> None:
    assert not flow_trigger_matches(trigger(conditions=[condition("DayWeek", dayOfWeek="MONDAY")]), ENDED)


def test_a_one_flow_precondition_filters_flow_and_states() -> None:
    ok = {"flows": [{"namespace": "company.team.sales", "flowId": "upstream", "states": ["SUCCESS"]}]}
    failed_only = {"flows": [{"namespace": "company.team.sales", "flowId": "upstream", "states": ["FAILED"]}]}
    assert flow_trigger_matches(trigger(preconditions=ok), ENDED)
    assert not flow_trigger_matches(trigger(preconditions=failed_only), ENDED)


def test_trigger_variables_describe_the_ended_execution() -> None:
    assert flow_trigger_variables(ENDED) == {
        "executionId": "E1",
        "namespace": "company.team.sales",
        "flowId": "upstream",
        "flowRevision": 3,
        "state": "SUCCESS",
        "outputs": {"total": 7},
        "labels": {"env": "prod"},
    }


def test_execution_outputs_renders_an_expression_over_trigger_outputs() -> None:
    seven = condition("ExecutionOutputs", expression="{{ trigger.outputs.total == 7 }}")
    eight = condition("ExecutionOutputs", expression="{{ trigger.outputs.total == 8 }}")
    assert flow_trigger_matches(trigger(conditions=[seven]), ENDED)
    assert not flow_trigger_matches(trigger(conditions=[eight]), ENDED)


def test_execution_outputs_never_holds_without_outputs_or_on_a_broken_expression() -> None:
    any_output = condition("ExecutionOutputs", expression="{{ true }}")
    assert not flow_trigger_matches(trigger(conditions=[any_output]), EndedExecution("E2", "ns", "f", 1, "SUCCESS"))
    broken = condition("ExecutionOutputs", expression="{{ trigger.outputs.total | nosuchfilter }}")
    assert not flow_trigger_matches(trigger(conditions=[broken]), ENDED)
