"""Kestra 2.x syntax beside 1.x: Loop, task and trigger `when`, Flow-trigger `dependsOn` + `window`, `checks`."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.core.errors import FlowErrorDetail, FlowInvalid
from orchestrator.core.flow import Flow
from orchestrator.core.flow_conditions import EndedExecution, flow_trigger_matches, is_windowed, window_complete
from orchestrator.core.flow_conditions import Window as TimeWindow
from orchestrator.core.kestra2 import failed_checks, when_holds
from orchestrator.core.parse import parse_flow
from orchestrator.core.plan import child_lists


def _flow(body: str) -> Flow:
    return parse_flow("id: f\nnamespace: t\n" + textwrap.dedent(body))


def _errors(body: str) -> list[FlowErrorDetail]:
    with pytest.raises(FlowInvalid) as caught:
        _flow(body)
    return caught.value.errors


LOOP = """
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: {values}
    tasks:
      - id: show
        type: io.kestra.plugin.core.log.Log
        message: "{{{{ item.value }}}}"
"""


@pytest.mark.parametrize("values", ['["a", "b"]', "{a: 1, b: 2}", '"{{ inputs.list }}"', '"kestra:///x/y.ion"'])
def test_a_loop_accepts_a_list_a_map_an_expression_or_a_storage_uri(values: str) -> None:
    flow = _flow(LOOP.format(values=values))

    assert flow.tasks[0].type == "Loop"
    assert [t.id for t in flow.tasks[0].branches["tasks"]] == ["show"]


def test_a_loop_without_values_is_refused_at_its_line() -> None:
    errors = _errors(LOOP.format(values="x").replace("    values: x\n", ""))

    assert [(e.path, e.line) for e in errors] == [("tasks[0].values", 5)]
    assert "missing required property 'values'" in errors[0].message


def test_a_loop_refuses_a_negative_concurrency_limit_and_an_unknown_fetch_type() -> None:
    body = LOOP.format(values="[1]").replace(
        "    tasks:\n      - id: show", "    concurrencyLimit: -1\n    tasks:\n      - id: show"
    )
    messages = [e.message for e in _errors(body)]
    assert any("concurrencyLimit must be 0" in m for m in messages)

    body = LOOP.format(values="[1]").replace(
        "    tasks:\n      - id: show", "    fetchType: LATER\n    tasks:\n      - id: show"
    )
    assert any("AUTO, FETCH, STORE" in e.message for e in _errors(body))


def test_a_loop_accepts_break_when() -> None:
    when = "    breakWhen: \"{{ iteration.state == 'FAILED' }}\"\n"
    body = LOOP.format(values="[1]").replace("    tasks:\n      - id: show", when + "    tasks:\n      - id: show")
    assert _flow(body).tasks[0].properties["breakWhen"] == "{{ iteration.state == 'FAILED' }}"


def test_a_loop_runs_every_iteration_at_once_by_default_and_a_for_each_one_at_a_time() -> None:
    loop = _flow(LOOP.format(values="[1, 2, 3]")).tasks[0]
    for_each = loop.model_copy(update={"type": "ForEach"})

    assert len(child_lists(_flow(LOOP.format(values="[1]")), loop, {"values": [1, 2, 3]}).main) == 3
    assert len(child_lists(_flow(LOOP.format(values="[1]")), for_each, {"values": [1, 2, 3]}).main) == 1


def test_when_on_a_task_is_kestra_2s_name_for_run_if() -> None:
    flow = _flow("""
        tasks:
          - id: maybe
            type: io.kestra.plugin.core.log.Log
            message: hi
            when: "{{ inputs.go }}"
        """)

    assert flow.tasks[0].run_if == "{{ inputs.go }}"


def test_a_task_with_both_when_and_run_if_is_refused() -> None:
    errors = _errors("""
        tasks:
          - id: maybe
            type: io.kestra.plugin.core.log.Log
            message: hi
            when: "{{ true }}"
            runIf: "{{ true }}"
        """)

    assert [e.path for e in errors] == ["tasks[0].when"]


@pytest.mark.parametrize(
    "trigger",
    [
        "type: io.kestra.plugin.core.trigger.Schedule\n    cron: '0 9 * * *'",
        "type: io.kestra.plugin.core.trigger.Webhook\n    key: abc",
        "type: io.kestra.plugin.core.trigger.Flow",
    ],
)
def test_every_trigger_accepts_when(trigger: str) -> None:
    flow = _flow(f"""
tasks:
  - {{id: a, type: io.kestra.plugin.core.log.Log, message: hi}}
triggers:
  - id: t
    {trigger}
    when: "{{{{ isWeekend(trigger.date) }}}}"
""")

    assert flow.triggers[0].properties["when"] == "{{ isWeekend(trigger.date) }}"


DEPENDS_ON = """
tasks:
  - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
"""


def _ended(flow_id: str, state: str = "SUCCESS", **labels: str) -> EndedExecution:
    return EndedExecution("e1", "company.team", flow_id, 1, state, labels=labels, outputs={"rows": 3})


def test_one_depends_on_entry_fires_on_that_flow_in_its_states_only() -> None:
    trigger = _flow(
        DEPENDS_ON + "    dependsOn:\n      - {namespace: company.team, flowId: extract, states: [SUCCESS]}\n"
    ).triggers[0]

    assert flow_trigger_matches(trigger, _ended("extract"))
    assert not flow_trigger_matches(trigger, _ended("extract", "FAILED"))
    assert not flow_trigger_matches(trigger, _ended("other"))
    assert not is_windowed(trigger)


def test_a_depends_on_entry_without_states_matches_paused_as_kestra_2_does() -> None:
    trigger = _flow(DEPENDS_ON + "    dependsOn:\n      - {namespace: company.team, flowId: extract}\n").triggers[0]

    assert flow_trigger_matches(trigger, _ended("extract", "PAUSED"))
    assert flow_trigger_matches(trigger, _ended("extract", "KILLED"))


def test_a_depends_on_entry_filters_with_its_when_and_labels() -> None:
    trigger = _flow(
        DEPENDS_ON
        + "    dependsOn:\n      - when: \"{{ namespace | startsWith('company') and outputs.rows > 2 }}\"\n"
        + "        labels: {env: prod}\n"
    ).triggers[0]

    assert flow_trigger_matches(trigger, _ended("any", env="prod"))
    assert not flow_trigger_matches(trigger, _ended("any", env="dev"))


def _condition_ids(preconditions: dict[str, Any]) -> list[str]:
    """The window keys of a compiled `dependsOn`, in entry order."""
    return [f"flow:{entry['conditionId']}" for entry in preconditions["flows"]]


def test_several_depends_on_entries_wait_for_all_of_them_in_the_window() -> None:
    trigger = _flow(
        DEPENDS_ON
        + "    dependsOn:\n      - {namespace: company.team, flowId: a}\n      - {namespace: company.team, flowId: b}\n"
        + "    window:\n      deadline: '09:00:00'\n"
    ).triggers[0]
    preconditions = trigger.properties["preconditions"]
    assert isinstance(preconditions, dict)

    assert is_windowed(trigger)
    assert preconditions["timeWindow"] == {"type": "DAILY_TIME_DEADLINE", "deadline": "09:00:00"}
    window = TimeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    now = window.start
    a, b = _condition_ids(preconditions)
    assert not window_complete(preconditions, window, {a: now.isoformat()}, now)
    assert window_complete(preconditions, window, {a: now.isoformat(), b: now.isoformat()}, now)


def test_depends_on_condition_ids_are_content_hashes_that_survive_a_reordering() -> None:
    """FlowTriggerCaseTest.triggerDependsOnWithStableConditionId: ids do not move with the entries."""
    entries = ["      - {namespace: company.team, flowId: a}\n", "      - {namespace: company.team, flowId: b}\n"]
    ids = []
    for order in (entries, entries[::-1]):
        trigger = _flow(DEPENDS_ON + "    dependsOn:\n" + "".join(order)).triggers[0]
        preconditions = trigger.properties["preconditions"]
        assert isinstance(preconditions, dict)
        flows = preconditions["flows"]
        assert isinstance(flows, list)
        ids.append({str(f["flowId"]): str(f["conditionId"]) for f in flows if isinstance(f, dict)})
    assert ids[0] == ids[1] and ids[0]["a"] != ids[0]["b"]


def test_mode_any_fires_when_one_depends_on_entry_is_met() -> None:
    trigger = _flow(
        DEPENDS_ON
        + "    mode: ANY\n"
        + "    dependsOn:\n      - {namespace: company.team, flowId: a}\n      - {namespace: company.team, flowId: b}\n"
    ).triggers[0]
    preconditions = trigger.properties["preconditions"]
    assert isinstance(preconditions, dict)
    window = TimeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))

    _, b = _condition_ids(preconditions)
    assert window_complete(preconditions, window, {b: window.start.isoformat()}, window.start)


@pytest.mark.parametrize(
    ("extra", "path", "fragment"),
    [
        ("    window: {every: P1D}\n", "triggers[0].window", "needs 'dependsOn'"),
        ("    dependsOn: []\n", "triggers[0].dependsOn", "at least one"),
        (
            "    dependsOn: [{flowId: a}]\n    preconditions: {id: x, flows: [{flowId: a}]}\n",
            "triggers[0].preconditions",
            "cannot be combined",
        ),
        (
            "    dependsOn: [{flowId: a}]\n    mode: AT_LEAST\n    minSatisfied: 2\n",
            "triggers[0].minSatisfied",
            "between 1 and 1",
        ),
        ("    dependsOn: [{flowId: a}]\n    window: {deadline: '09:00', every: P1D}\n", "triggers[0].window", "one of"),
        ("    dependsOn: [{flowId: a, flow: b}]\n", "triggers[0].dependsOn[0].flow", "unknown property 'flow'"),
    ],
)
def test_a_malformed_kestra_2_flow_trigger_is_refused_at_its_property(extra: str, path: str, fragment: str) -> None:
    errors = _errors(DEPENDS_ON + extra)

    assert any(e.path == path and fragment in e.message for e in errors), errors


CHECKS = """
inputs:
  - {id: env, type: STRING}
tasks:
  - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
checks:
"""


def test_checks_read_when_or_its_1x_name_condition_with_kestra_defaults() -> None:
    flow = _flow(
        CHECKS
        + "  - when: \"{{ inputs.env == 'prod' }}\"\n    message: prod only\n"
        + "  - condition: \"{{ inputs.env != '' }}\"\n    message: not empty\n    behavior: FAIL_EXECUTION\n"
    )

    assert [c.expression for c in flow.checks] == ["{{ inputs.env == 'prod' }}", "{{ inputs.env != '' }}"]
    assert failed_checks(flow.checks, {"inputs": {"env": "prod"}}) == ("CREATE_EXECUTION", [])
    assert failed_checks(flow.checks, {"inputs": {"env": "dev"}}) == ("BLOCK_EXECUTION", ["prod only"])
    assert failed_checks(flow.checks[1:], {"inputs": {"env": ""}}) == ("FAIL_EXECUTION", ["not empty"])


def test_a_check_that_cannot_render_counts_as_failed_with_its_error() -> None:
    flow = _flow(
        CHECKS + '  - when: "{{ inputs.missing.deeper }}"\n    message: broken\n    behavior: CREATE_EXECUTION\n'
    )

    behavior, messages = failed_checks(flow.checks, {"inputs": {}})

    assert behavior == "CREATE_EXECUTION" and messages[0].startswith("broken (")


@pytest.mark.parametrize(
    ("check", "fragment"),
    [
        ("  - message: no expression\n", "needs 'when'"),
        ("  - when: x\n    condition: y\n    message: both\n", "needs 'when'"),
        ("  - when: x\n", "missing required property 'message'"),
        ("  - when: x\n    message: m\n    behavior: STOP\n", "BLOCK_EXECUTION"),
    ],
)
def test_a_malformed_check_is_refused(check: str, fragment: str) -> None:
    assert any(fragment in e.message for e in _errors(CHECKS + check))


def test_when_holds_is_false_for_a_falsy_or_broken_expression_and_true_when_absent() -> None:
    assert when_holds(None, {})
    assert when_holds("{{ dayOfWeek(trigger.date) == 'MONDAY' }}", {"trigger": {"date": "2026-12-07T09:00:00+01:00"}})
    assert not when_holds("{{ isWeekend(trigger.date) }}", {"trigger": {"date": "2026-12-07T09:00:00+01:00"}})
    assert not when_holds("{{ trigger.nothing.here }}", {"trigger": {}})


def test_a_flow_trigger_with_when_alone_also_fires_on_paused_and_sees_the_upstream_flow() -> None:
    trigger = _flow(DEPENDS_ON + "    when: \"{{ flow.namespace | startsWith('company') }}\"\n").triggers[0]

    assert flow_trigger_matches(trigger, _ended("any", "PAUSED"))
    assert not flow_trigger_matches(
        trigger, EndedExecution("e1", "other.team", "any", 1, "FAILED", labels={}, outputs={})
    )


def test_depends_on_without_a_window_fires_once_per_match_and_with_one_as_fire_once_says() -> None:
    single = _flow(DEPENDS_ON + "    dependsOn: [{flowId: a}, {flowId: b}]\n").triggers[0].properties
    windowed = _flow(DEPENDS_ON + "    dependsOn: [{flowId: a}, {flowId: b}]\n    window: {lookback: PT1H}\n")
    preconditions = windowed.triggers[0].properties["preconditions"]

    assert isinstance(single["preconditions"], dict) and single["preconditions"]["resetOnSuccess"] is True
    assert isinstance(preconditions, dict) and preconditions["resetOnSuccess"] is False
    assert preconditions["timeWindow"] == {"type": "SLIDING_WINDOW", "window": "PT1H"}


def test_a_depends_on_when_can_ask_whether_the_upstream_execution_retried() -> None:
    trigger = _flow(
        DEPENDS_ON + '    dependsOn:\n      - {flowId: flaky, when: "{{ hasRetryAttempt == true }}"}\n'
    ).triggers[0]
    retried = EndedExecution("e1", "company.team", "flaky", 1, "SUCCESS", retried_attempts=("FAILED", "SUCCESS"))

    assert flow_trigger_matches(trigger, retried)
    assert not flow_trigger_matches(trigger, _ended("flaky"))


def test_a_bool_input_reads_like_a_boolean_one() -> None:
    from orchestrator.core.inputs import coerce_inputs

    flow = _flow(
        "inputs:\n  - {id: failed, type: BOOL, defaults: false}\ntasks:\n  - {id: a, type: Log, message: hi}\n"
    )

    assert coerce_inputs(flow, {}) == {"failed": False}
    assert coerce_inputs(flow, {"failed": "true"}) == {"failed": True}


EXIT = """
tasks:
  - id: exit
    type: io.kestra.plugin.core.execution.Exit
    state: {state}
"""


def test_exit_accepts_both_spellings_of_cancelled_as_kestra_2_does() -> None:
    for state in ("CANCELED", "CANCELLED"):
        assert _flow(EXIT.format(state=state)).tasks[0].properties["state"] == state


def test_exit_refuses_an_unknown_state_naming_the_property() -> None:
    errors = _errors(EXIT.format(state="CANCEL"))

    assert [e.path for e in errors] == ["tasks[0].state"]
    assert "CANCELED or CANCELLED" in errors[0].message


INDEXED = """
indexedFields:
{fields}
tasks:
  - id: setoutput
    type: io.kestra.plugin.core.debug.Return
    format: europe
"""


def test_indexed_fields_are_accepted_as_kestra_2_writes_them() -> None:
    """valids/indexed-fields.yaml (IndexedFieldsTest): a list of {id, value}, values rendered at the end."""
    fields = '  - id: customerId\n    value: "acme-corp"\n  - id: region\n    value: "{{ outputs.setoutput.value }}"'

    assert _flow(INDEXED.format(fields=fields)).tasks[0].id == "setoutput"


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ("  - value: x", "indexedFields[0].id", "missing required property 'id'"),
        ("  - id: region", "indexedFields[0].value", "missing required property 'value' of indexed field region"),
        ("  - just-a-name", "indexedFields[0]", "expected an indexed field as {id, value}, got text"),
        ("  region: europe", "indexedFields", "expected a list of {id, value}, got a mapping"),
    ],
)
def test_a_malformed_indexed_field_is_refused_naming_it(fields: str, path: str, message: str) -> None:
    errors = _errors(INDEXED.format(fields=fields))

    assert [e.path for e in errors] == [path]
    assert message in errors[0].message
    assert errors[0].line is not None


@pytest.mark.parametrize(
    "task",
    [
        "type: io.kestra.plugin.core.flow.Parallel\n    concurrent: 0",
        'type: io.kestra.plugin.core.flow.Parallel\n    concurrent: "{{ vars.n }}"',
        'type: io.kestra.plugin.core.flow.LoopUntil\n    condition: "{{ true }}"\n    checkFrequency:\n'
        "      maxIterations: 1",
    ],
)
def test_zero_concurrency_and_one_iteration_are_accepted(task: str) -> None:
    """FlowableConcurrencyValidationTest: Parallel's `concurrent` is @PositiveOrZero (0: no limit), LoopUntil's
    `maxIterations` @Positive; the refusals are tests/unit/core/invalid_flows/*-negative, *-zero."""
    child = "    tasks:\n      - id: a\n        type: io.kestra.plugin.core.log.Log\n        message: hi\n"
    flow = _flow(f"tasks:\n  - id: t\n    {task}\n{child}")

    assert flow.tasks[0].id == "t"
