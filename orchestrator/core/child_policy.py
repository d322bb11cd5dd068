"""What a child's failure does to the children beside it: one rule, `sibling_rule`, read from the three ways a
flow says it (a flow may use one of them only: `parse_tasks` refuses two together).

- `childFailurePolicy` of Parallel, Dag and ForEach (kestra-io/kestra#15366, Kestra 2.x test flows);
- `onChildFailure` of Parallel and Dag (Kestra 2, #18314): FAIL or CANCEL end the running siblings so;
- `failFast: true` of Parallel and Dag (earlier Kestra 2): it kills them, as FAIL_FAST does.

The engine performs the rule at two moments: `engine/child_failure.py` ends the running siblings when one fails
(`SiblingRule.running_to`), `engine/sibling_policy.py` keeps a not-yet-created sibling from starting
(`SiblingRule.holds_new`); the planner (`core/plan.py`) reads CONTINUE to keep its lanes going.

`FAIL_FAST` ends the running ones KILLED and starts no new one; `STOP` lets the running ones finish and starts no
new one (Kestra 1.x); `CONTINUE` starts and runs every one and fails the parent once all have ended. Kestra 2.x
test flows set it (`childFailurePolicy: STOP` on a ForEach), so Chorus reads it, case-insensitively as Kestra's
`@JsonCreator` does. A ForEach with `concurrencyLimit: 1` (its default) runs its iterations one after the other
and ignores it, as in #15366. Absent, Chorus keeps its own behaviour (Kestra 1.x's, which the 1.x flows expect)
rather than #15366's FAIL_FAST default: Kestra never shipped that default (it merged `onChildFailure`, #18314).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orchestrator.core.flow import TaskSpec
from orchestrator.core.states import State

__all__ = [
    "FLOWABLES",
    "PROPERTY",
    "ChildFailurePolicy",
    "SiblingRule",
    "flowable_state",
    "parse",
    "policy_of",
    "sequential",
    "sibling_rule",
]

PROPERTY = "childFailurePolicy"
#: The task types #15366 gave the property to.
FLOWABLES = ("Parallel", "Dag", "ForEach")


class ChildFailurePolicy(StrEnum):
    """What a failed child does to its siblings."""

    FAIL_FAST = "FAIL_FAST"  #: the running siblings end KILLED, no new one starts
    STOP = "STOP"  #: the running siblings finish, no new one starts
    CONTINUE = "CONTINUE"  #: every sibling starts and runs; the parent fails once all ended


def parse(value: object) -> ChildFailurePolicy | None:
    """The policy a YAML value names (any case, surrounding blanks ignored), None when it names none."""
    if not isinstance(value, str):
        return None
    try:
        return ChildFailurePolicy(value.strip().upper())
    except ValueError:
        return None


def sequential(spec: TaskSpec) -> bool:
    """Whether a ForEach runs its iterations one after the other (`concurrencyLimit` 1, its default)."""
    limit = spec.properties.get("concurrencyLimit", 1)
    return spec.type == "ForEach" and str(limit).strip() == "1"


def policy_of(spec: TaskSpec) -> ChildFailurePolicy | None:
    """The policy a flowable applies to its children, None when it sets none (or cannot apply one)."""
    if spec.type not in FLOWABLES or sequential(spec):
        return None
    return parse(spec.properties.get(PROPERTY))


@dataclass(frozen=True)
class SiblingRule:
    """What a flowable does to its other children once one of its children failed."""

    running_to: State | None = None  #: the state the running ones end in; None lets them run to completion
    holds_new: bool = False  #: whether a main child not created yet never starts


_LET_RUN = SiblingRule()
#: `onChildFailure` (Kestra 2's OnChildFailure enum; the state names are accepted too). CONTINUE, or anything else
#: Kestra would not read, lets the siblings run.
_ON_CHILD_FAILURE = {
    "FAIL": State.FAILED,
    "FAILED": State.FAILED,
    "CANCEL": State.CANCELLED,
    "CANCELLED": State.CANCELLED,
}
#: The task types `onChildFailure` and `failFast` belong to.
_TWO_FLOWABLES = ("Parallel", "Dag")


def sibling_rule(spec: TaskSpec) -> SiblingRule:
    """The rule a flowable applies to its children when one fails, whichever property the flow says it with."""
    chosen = policy_of(spec)
    if chosen is ChildFailurePolicy.FAIL_FAST:
        return SiblingRule(State.KILLED, holds_new=True)  # #15366 (ForEach too): the flowable itself ends FAILED
    if chosen is ChildFailurePolicy.STOP:
        return SiblingRule(holds_new=True)
    if chosen is ChildFailurePolicy.CONTINUE or spec.type not in _TWO_FLOWABLES:
        return _LET_RUN
    raw = spec.properties.get("onChildFailure")
    if raw is not None:
        return SiblingRule(_ON_CHILD_FAILURE.get(str(raw).strip().upper()))
    if str(spec.properties.get("failFast", "false")).strip().lower() == "true":
        return SiblingRule(State.KILLED)
    return _LET_RUN


def flowable_state(spec: TaskSpec | None, state: State) -> State:
    """A flowable that killed its siblings ends FAILED, not KILLED: the cause is a failure (Parallel.resolveState)."""
    if spec is not None and state is State.KILLED and sibling_rule(spec).running_to is State.KILLED:
        return State.FAILED
    return state
