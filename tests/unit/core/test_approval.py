"""Kestra 2's Approval: its validation, the review rules and the states its behaviours lead to."""

from __future__ import annotations

import textwrap

import pytest

from orchestrator.core import approval as rules
from orchestrator.core import tasktypes
from orchestrator.core.approval import Behavior, DecisionType
from orchestrator.core.errors import FlowErrorDetail, FlowInvalid, InputInvalid
from orchestrator.core.flow import Flow
from orchestrator.core.parse import parse_flow
from orchestrator.core.states import State


def _flow(body: str) -> Flow:
    return parse_flow("id: f\nnamespace: t\n" + textwrap.dedent(body))


def _errors(body: str) -> list[FlowErrorDetail]:
    with pytest.raises(FlowInvalid) as caught:
        _flow(body)
    return caught.value.errors


def test_an_approval_with_every_branch_and_enterprise_properties_parses() -> None:
    flow = _flow(
        """
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            title: "Deploy {{ inputs.version }}"
            assignment: {users: [a@b.c], groups: [Leads]}
            timeout: PT4H
            commentRequired: ON_DENY
            denyBehavior: "{{ inputs.behavior }}"
            inputs:
              - id: reason
                type: STRING
            onWait: [{id: notify, type: io.kestra.plugin.core.log.Log, message: w}]
            onApprove: [{id: ok, type: io.kestra.plugin.core.log.Log, message: a}]
            onDeny: [{id: no, type: io.kestra.plugin.core.log.Log, message: d}]
            finally: [{id: cleanup, type: io.kestra.plugin.core.log.Log, message: c}]
        """
    )

    task = flow.task("approval")
    assert task.type == "Approval"
    assert list(task.branches) == ["onWait", "onApprove", "onDeny", "finally"]
    assert _flow("tasks: [{id: a, type: io.kestra.plugin.core.flow.Approval}]").task("a").branches == {}


def test_an_approval_refuses_an_unknown_behaviour_a_bad_input_and_an_unknown_property() -> None:
    errors = _errors(
        """
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            denyBehavior: EXPLODE
            inputs:
              - id: reason
                type: NOPE
            approvers: [me]
        """
    )

    paths = {e.path: e.message for e in errors}
    assert "EXPLODE" in paths["tasks[0].denyBehavior"]
    assert any(path.startswith("tasks[0].inputs[0]") for path in paths)
    assert "tasks[0].approvers" in paths


def test_the_default_behaviours_continue_on_approval_and_cancel_on_denial_or_expiry() -> None:
    assert rules.behavior_of({}, DecisionType.APPROVED) is Behavior.CONTINUE
    assert rules.behavior_of({}, DecisionType.DENIED) is Behavior.CANCEL
    assert rules.behavior_of({}, DecisionType.EXPIRED) is Behavior.CANCEL
    assert rules.behavior_of({"approveBehavior": "SUCCEED"}, DecisionType.APPROVED) is Behavior.SUCCEED


@pytest.mark.parametrize(
    ("behavior", "task_state", "execution_state"),
    [
        (Behavior.CONTINUE, State.SUCCESS, None),
        (Behavior.WARN, State.WARNING, None),
        (Behavior.FAIL, State.FAILED, None),
        (Behavior.SUCCEED, State.SUCCESS, State.SUCCESS),
        (Behavior.CANCEL, State.CANCELLED, State.CANCELLED),
        (Behavior.KILL, State.KILLED, State.KILLED),
    ],
)
def test_a_behaviour_maps_a_branch_that_succeeded(
    behavior: Behavior, task_state: State, execution_state: State
) -> None:
    assert rules.final_state(behavior, State.SUCCESS) is task_state
    assert rules.execution_outcome(behavior, State.SUCCESS) is execution_state


def test_a_failed_branch_is_never_hidden_by_its_behaviour() -> None:
    assert rules.final_state(Behavior.SUCCEED, State.FAILED) is State.FAILED
    assert rules.execution_outcome(Behavior.SUCCEED, State.FAILED) is None


def test_a_review_needs_the_comment_its_rule_asks_for() -> None:
    rules.check_comment("ON_DENY", DecisionType.APPROVED, None)
    rules.check_comment(None, DecisionType.DENIED, None)
    with pytest.raises(InputInvalid, match="comment"):
        rules.check_comment("ON_DENY", DecisionType.DENIED, "  ")
    with pytest.raises(InputInvalid, match="comment"):
        rules.check_comment("ALWAYS", DecisionType.APPROVED, None)
    with pytest.raises(InputInvalid, match="comment"):
        rules.check_comment("ON_APPROVE", DecisionType.APPROVED, "")


def test_decisions_are_read_in_kestra_words_and_anything_else_is_refused() -> None:
    assert rules.parse_decision("approve") is DecisionType.APPROVED
    assert rules.parse_decision("DENIED") is DecisionType.DENIED
    with pytest.raises(InputInvalid, match="decision"):
        rules.parse_decision("EXPIRED")  # only the timer expires a request


def test_settings_are_rendered_once_and_one_that_renders_to_nothing_known_is_refused() -> None:
    values = {"denyBehavior": "{{ b }}", "commentRequired": "always"}

    settings = rules.rendered_settings(values, lambda raw: "kill" if raw == "{{ b }}" else raw)

    assert settings == {"denyBehavior": "KILL", "commentRequired": "ALWAYS"}
    with pytest.raises(InputInvalid, match="denyBehavior"):
        rules.rendered_settings(values, lambda raw: "maybe")


def test_approval_is_in_the_catalogue_and_no_longer_listed_as_unsupported() -> None:
    # The stale "not implemented yet (use Pause)" entry was dead: the catalogue resolves the type first.
    assert tasktypes.resolve("io.kestra.plugin.core.flow.Approval").name == "Approval"
    assert tasktypes.unsupported("io.kestra.plugin.core.flow.Approval") is None
    assert tasktypes.unsupported("io.kestra.plugin.core.flow.Template") is not None  # still refused, with why
