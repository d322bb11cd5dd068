"""Flow trigger conditions: which ended executions start a flow, and the `trigger` variables it gets."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.core.flow import TriggerSpec
from orchestrator.core.flow_conditions import (
    EndedExecution,
    flow_trigger_matches,
    flow_trigger_variables,
    is_windowed,
    preconditions_matched,
    window_at,
    window_complete,
)

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


# -- several preconditions: what an execution meets, and the time windows ------------------------------

TWO_FLOWS = {
    "flows": [
        {"namespace": "company.team.sales", "flowId": "upstream", "states": ["SUCCESS"]},
        {"namespace": "company.team.sales", "flowId": "other"},
    ]
}
AT = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


def test_with_several_preconditions_meeting_one_is_enough_to_count() -> None:
    assert is_windowed(trigger(preconditions=TWO_FLOWS))
    assert preconditions_matched(TWO_FLOWS, ENDED) == {"flow:0"}
    assert flow_trigger_matches(trigger(preconditions=TWO_FLOWS), ENDED)
    failed = EndedExecution(**{**ENDED.__dict__, "state": "FAILED"})
    assert not flow_trigger_matches(trigger(preconditions=TWO_FLOWS), failed)


@pytest.mark.parametrize(
    ("filters", "operand", "expected"),
    [
        ([{"field": "NAMESPACE", "type": "STARTS_WITH", "value": "company"}], "AND", True),
        ([{"field": "FLOW_ID", "type": "IN", "values": ["a", "upstream"]}], "AND", True),
        ([{"field": "STATE", "type": "NOT_EQUAL_TO", "value": "SUCCESS"}], "AND", False),
        ([{"field": "EXPRESSION", "type": "IS_TRUE", "value": "{{ trigger.outputs.total > 5 }}"}], "AND", True),
        (
            [{"field": "STATE", "type": "EQUAL_TO", "value": "FAILED"}, {"field": "FLOW_ID", "value": "upstream"}],
            "OR",
            True,
        ),
        ([{"field": "LABELS", "type": "EQUAL_TO", "value": "x"}], "AND", False),  # unknown field: never holds
        # Kestra renders EXPRESSION in a run context of the upstream execution: its labels and id are there
        # (flow-trigger-preconditions-flow-listen.yaml: `{{labels.some == 'label'}}`).
        ([{"field": "EXPRESSION", "type": "IS_TRUE", "value": "{{ labels.env == 'prod' }}"}], "AND", True),
        ([{"field": "EXPRESSION", "type": "IS_TRUE", "value": "{{ labels.env == 'dev' }}"}], "AND", False),
        ([{"field": "EXPRESSION", "type": "IS_FALSE", "value": "{{ execution.id == 'E1' }}"}], "AND", False),
        ([{"field": "EXPRESSION", "type": "IS_TRUE", "value": "{{ labels.missing }}"}], "AND", False),  # undefined
    ],
)
def test_where_filters(filters: list[dict[str, Any]], operand: str, expected: bool) -> None:
    preconditions = {"where": [{"id": "mine", "filters": filters, "operand": operand}], "flows": [{"flowId": "x"}]}
    assert ("where:mine" in preconditions_matched(preconditions, ENDED)) is expected


def test_a_duration_window_is_aligned_on_midnight_plus_its_advance() -> None:
    window = window_at({"timeWindow": {"type": "DURATION_WINDOW", "window": "PT4H", "windowAdvance": "PT1H"}}, AT)
    assert window is not None
    assert (window.start.hour, window.end.hour) == (9, 13)


def test_the_default_window_is_the_day() -> None:
    window = window_at({}, AT)
    assert (
        window is not None
        and window.start == AT.replace(hour=0, minute=0)
        and window.end - window.start == timedelta(days=1)
    )


def test_daily_windows_exist_only_within_their_hours() -> None:
    deadline = {"timeWindow": {"type": "DAILY_TIME_DEADLINE", "deadline": "09:00:00"}}
    hours = {"timeWindow": {"type": "DAILY_TIME_WINDOW", "startTime": "10:00", "endTime": "11:00"}}
    assert window_at(deadline, AT) is None
    assert window_at(hours, AT) is not None
    assert window_at(hours, AT.replace(hour=12)) is None


def test_a_window_completes_when_every_precondition_was_met() -> None:
    window = window_at(TWO_FLOWS, AT)
    assert window is not None
    assert not window_complete(TWO_FLOWS, window, {"flow:0": AT.isoformat()}, AT)
    assert window_complete(TWO_FLOWS, window, {"flow:0": AT.isoformat(), "flow:1": AT.isoformat()}, AT)


def test_a_sliding_window_forgets_what_was_met_too_long_ago() -> None:
    sliding = {**TWO_FLOWS, "timeWindow": {"type": "SLIDING_WINDOW", "window": "PT1H"}}
    window = window_at(sliding, AT)
    assert window is not None
    old = (AT - timedelta(hours=2)).isoformat()
    assert not window_complete(sliding, window, {"flow:0": old, "flow:1": AT.isoformat()}, AT)
    assert window_complete(
        sliding, window, {"flow:0": (AT - timedelta(minutes=30)).isoformat(), "flow:1": AT.isoformat()}, AT
    )


def test_an_expression_condition_reads_the_ended_execution_as_trigger() -> None:
    accepted = condition("ExpressionCondition", expression="{{ trigger.outputs.total > 5 }}")
    refused = condition("Expression", expression="{{ trigger.flowId == 'other' }}")

    assert flow_trigger_matches(trigger(conditions=[accepted]), ENDED)
    assert not flow_trigger_matches(trigger(conditions=[refused]), ENDED)


def test_not_and_or_combine_nested_flow_conditions() -> None:
    flow = condition("ExecutionFlow", namespace="company.team.sales", flowId="upstream")
    other = condition("ExecutionFlow", namespace="company.team.sales", flowId="other")

    assert flow_trigger_matches(trigger(conditions=[condition("Or", conditions=[other, flow])]), ENDED)
    assert not flow_trigger_matches(trigger(conditions=[condition("Not", conditions=[other, flow])]), ENDED)
    assert flow_trigger_matches(trigger(conditions=[condition("Not", conditions=[other])]), ENDED)


def test_has_retry_attempt_looks_at_the_attempts_of_retried_task_runs() -> None:
    retried = replace(ENDED, retried_attempts=("FAILED", "SUCCESS"))

    assert flow_trigger_matches(trigger(conditions=[condition("HasRetryAttempt")]), retried)
    assert flow_trigger_matches(trigger(conditions=[condition("HasRetryAttempt", **{"in": ["FAILED"]})]), retried)
    assert not flow_trigger_matches(
        trigger(conditions=[condition("HasRetryAttempt", notIn=["FAILED", "SUCCESS"])]), retried
    )
    assert not flow_trigger_matches(trigger(conditions=[condition("HasRetryAttempt")]), ENDED)


def test_flow_conditions_look_at_the_triggered_flow() -> None:
    seen = replace(ENDED, triggered_flow=("company.team.ops", "listener"))

    assert flow_trigger_matches(
        trigger(conditions=[condition("FlowCondition", namespace="company.team.ops", flowId="listener")]), seen
    )
    assert not flow_trigger_matches(
        trigger(conditions=[condition("FlowCondition", namespace="company.team.ops", flowId="x")]), seen
    )
    assert flow_trigger_matches(
        trigger(conditions=[condition("FlowNamespaceCondition", namespace="company.team", prefix=True)]), seen
    )
    assert not flow_trigger_matches(
        trigger(conditions=[condition("FlowNamespaceCondition", namespace="company.team")]), seen
    )
    assert not flow_trigger_matches(trigger(conditions=[condition("FlowCondition", namespace="n", flowId="f")]), ENDED)


def test_an_expression_condition_sees_the_upstream_execution_and_the_listening_flow() -> None:
    seen = replace(ENDED, triggered_flow=("company.team", "listener"))
    holds = condition("ExpressionCondition", expression="{{ labels.env == 'prod' and flow.id == 'listener' }}")
    assert flow_trigger_matches(trigger(conditions=[holds]), seen)
    refused = condition("ExpressionCondition", expression="{{ labels.env == 'prod' and flow.id == 'upstream' }}")
    assert not flow_trigger_matches(trigger(conditions=[refused]), seen)
