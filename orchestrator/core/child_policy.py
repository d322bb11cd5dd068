"""`childFailurePolicy` of Parallel, Dag and ForEach (kestra-io/kestra#15366): what a child's failure does to the
children beside it.

`FAIL_FAST` ends the running ones KILLED and starts no new one; `STOP` lets the running ones finish and starts no
new one (Kestra 1.x); `CONTINUE` starts and runs every one and fails the parent once all have ended. Kestra 2.x
test flows set it (`childFailurePolicy: STOP` on a ForEach), so Chorus reads it, case-insensitively as Kestra's
`@JsonCreator` does. A ForEach with `concurrencyLimit: 1` (its default) runs its iterations one after the other
and ignores it, as in #15366. Absent, Chorus keeps its own behaviour (Kestra 1.x's, which the 1.x flows expect)
rather than #15366's FAIL_FAST default: Kestra never shipped that default (it merged `onChildFailure`, #18314).
"""

from __future__ import annotations

from enum import StrEnum

from orchestrator.core.flow import TaskSpec

__all__ = ["FLOWABLES", "PROPERTY", "ChildFailurePolicy", "parse", "policy_of", "sequential"]

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
