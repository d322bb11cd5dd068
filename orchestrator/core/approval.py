"""Kestra 2's Approval task: its properties, decisions and the states a decision leads to (pure rules).

As in Kestra (`io.kestra.plugin.core.flow.Approval`): `onWait` runs, then the task run pauses until a
reviewer decides APPROVED (`onApprove` runs) or DENIED (`onDeny` runs), or its `timeout` passes
(EXPIRED, no branch). Once the branch ends, the decision's behaviour maps a branch that did not fail:
CONTINUE keeps its state, WARN/FAIL/SUCCEED/CANCEL/KILL set the task run's state, and SUCCEED, CANCEL
and KILL also end the whole execution in that state. A failed branch is never hidden by a behaviour.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Annotated

from pydantic import JsonValue, PlainValidator

from orchestrator.core import prop_types as p
from orchestrator.core.durations import is_expression
from orchestrator.core.errors import InputInvalid
from orchestrator.core.states import State

__all__ = [
    "APPROVAL",
    "ApprovalProps",
    "Behavior",
    "DecisionType",
    "behavior_of",
    "branch_of",
    "check_comment",
    "execution_outcome",
    "final_state",
    "parse_decision",
    "rendered_settings",
]

APPROVAL = "Approval"


class DecisionType(enum.StrEnum):
    """What a review decided."""

    APPROVED = "APPROVED"  #: `onApprove` runs
    DENIED = "DENIED"  #: `onDeny` runs
    EXPIRED = "EXPIRED"  #: the `timeout` passed without a decision; no branch runs


class Behavior(enum.StrEnum):
    """What happens once the decided branch ended without failing."""

    CONTINUE = "CONTINUE"  #: the task run takes its branch's state
    WARN = "WARN"  #: WARNING
    FAIL = "FAIL"  #: FAILED (the flow's `errors` run)
    SUCCEED = "SUCCEED"  #: SUCCESS, and the execution ends SUCCESS
    CANCEL = "CANCEL"  #: CANCELLED, and the execution ends CANCELLED
    KILL = "KILL"  #: KILLED, and the execution is killed


_BEHAVIOR_STATE = {
    Behavior.WARN: State.WARNING,
    Behavior.FAIL: State.FAILED,
    Behavior.SUCCEED: State.SUCCESS,
    Behavior.CANCEL: State.CANCELLED,
    Behavior.KILL: State.KILLED,
}
_EXECUTION_OUTCOME = {Behavior.SUCCEED: State.SUCCESS, Behavior.CANCEL: State.CANCELLED, Behavior.KILL: State.KILLED}
#: Kestra's defaults: an approval continues the flow, a denial or an expiry cancels it.
DEFAULT_BEHAVIOR = {
    DecisionType.APPROVED: Behavior.CONTINUE,
    DecisionType.DENIED: Behavior.CANCEL,
    DecisionType.EXPIRED: Behavior.CANCEL,
}
_COMMENT_RULES = ("NEVER", "ALWAYS", "ON_DENY", "ON_APPROVE")
_BEHAVIOR_KEY = {
    DecisionType.APPROVED: "approveBehavior",
    DecisionType.DENIED: "denyBehavior",
    DecisionType.EXPIRED: "expireBehavior",
}


_SETTINGS: dict[str, tuple[str, ...]] = {
    **{key: tuple(Behavior) for key in _BEHAVIOR_KEY.values()},
    "commentRequired": _COMMENT_RULES,
}


def _enum_or_expression(*choices: str) -> PlainValidator:
    def validate(value: object) -> object:
        if isinstance(value, str) and (value in choices or is_expression(value)):
            return value
        raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")

    return PlainValidator(validate)


_BehaviorValue = Annotated[JsonValue, _enum_or_expression(*Behavior)]


class Decisions(p.Properties):
    """The names of the two decisions on the review dialog."""

    approve: p.Text | None = None
    deny: p.Text | None = None


class ApprovalProps(p.Properties):
    """`io.kestra.plugin.core.flow.Approval` (Kestra 2)."""

    inputs: p.ListValue | None = None  #: fields of the review dialog; each is checked as an input declaration
    decisions: Decisions | None = None
    comment_required: Annotated[JsonValue, _enum_or_expression(*_COMMENT_RULES)] | None = None
    auto_approve: p.Bool | None = None
    approve_behavior: _BehaviorValue | None = None
    deny_behavior: _BehaviorValue | None = None
    expire_behavior: _BehaviorValue | None = None
    # Kestra Enterprise's properties, accepted so its flows deploy; Chorus does not act on them (its RBAC
    # approver role decides who may review).
    title: p.Text | None = None
    assignment: JsonValue | None = None
    case: JsonValue | None = None


def parse_decision(raw: object) -> DecisionType:
    """A reviewer's decision as the API receives it: APPROVED/APPROVE or DENIED/DENY (any case)."""
    text = str(raw).strip().upper()
    aliases = {"APPROVE": DecisionType.APPROVED, "DENY": DecisionType.DENIED, "REJECT": DecisionType.DENIED}
    if text in aliases:
        return aliases[text]
    if text in (DecisionType.APPROVED, DecisionType.DENIED):
        return DecisionType(text)
    raise InputInvalid("decision", f"expected APPROVED or DENIED, got {raw!r}")


def check_comment(required: object, decision: DecisionType, comment: str | None) -> None:
    """Refuse a decision without the comment `commentRequired` asks for (Kestra: IllegalArgumentException)."""
    rule = str(required or "NEVER").upper()
    needed = rule == "ALWAYS" or (rule == "ON_DENY" and decision is DecisionType.DENIED)
    needed = needed or (rule == "ON_APPROVE" and decision is DecisionType.APPROVED)
    if needed and not (comment or "").strip():
        verb = "approve" if decision is DecisionType.APPROVED else "deny"
        raise InputInvalid("comment", f"a comment is required to {verb} (commentRequired: {rule})")


def branch_of(decision: DecisionType) -> str:
    """The branch a decision runs; EXPIRED runs none (a branch name no task list has)."""
    return {DecisionType.APPROVED: "onApprove", DecisionType.DENIED: "onDeny"}.get(decision, "expired")


def behavior_of(settings: Mapping[str, object], decision: DecisionType) -> Behavior:
    """The behaviour for a decision, from the task's rendered settings (its defaults when unset)."""
    raw = settings.get(_BEHAVIOR_KEY[decision])
    if raw is None:
        return DEFAULT_BEHAVIOR[decision]
    return Behavior(str(raw).strip().upper())


def rendered_settings(properties: Mapping[str, JsonValue], render: Callable[[JsonValue], object]) -> dict[str, str]:
    """The behaviours and comment rule, rendered once when the task starts (they may be expressions).

    Raise InputInvalid naming the property when one renders to no known value.
    """
    settings: dict[str, str] = {}
    for key, choices in _SETTINGS.items():
        raw = properties.get(key)
        if raw is None:
            continue
        value = str(render(raw)).strip().upper()
        if value not in choices:
            raise InputInvalid(key, f"expected one of {', '.join(choices)}, got {value!r}")
        settings[key] = value
    return settings


def final_state(behavior: Behavior, branch_state: State) -> State:
    """The task run's state once its branch ended: a failed branch keeps its state, whatever the behaviour."""
    if branch_state.is_failure or behavior is Behavior.CONTINUE:
        return branch_state
    return _BEHAVIOR_STATE[behavior]


def execution_outcome(behavior: Behavior, branch_state: State) -> State | None:
    """The state the whole execution ends in (SUCCEED, CANCEL, KILL), or None to let the flow go on."""
    if branch_state.is_failure:
        return None
    return _EXECUTION_OUTCOME.get(behavior)
