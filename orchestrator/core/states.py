"""States of executions and task runs, the transition table, and pure rules that combine states."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from orchestrator.core.errors import IllegalTransition


class State(StrEnum):
    """Kestra's state names, shared by executions, task runs and attempts."""

    CREATED = "CREATED"  #: known, not started
    QUEUED = "QUEUED"  #: held back by a concurrency limit
    RUNNING = "RUNNING"  #: started; for a flowable, some child is not terminal
    PAUSED = "PAUSED"  #: waiting for a resume or a delay
    RETRYING = "RETRYING"  #: an attempt failed and another one is due
    RETRIED = "RETRIED"  #: replaced by a new execution (retry behavior CREATE_NEW_EXECUTION)
    RESTARTED = "RESTARTED"  #: a terminal execution or task run sent back to run its failed work again
    KILLING = "KILLING"  #: a kill was asked; running work is being stopped
    SUCCESS = "SUCCESS"  #: ended well
    WARNING = "WARNING"  #: ended with warnings (or an allowed failure)
    FAILED = "FAILED"  #: ended badly
    KILLED = "KILLED"  #: stopped by a kill
    CANCELLED = "CANCELLED"  #: never ran (concurrency behavior CANCEL)
    SKIPPED = "SKIPPED"  #: not run (disabled, runIf false)

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_failure(self) -> bool:
        return self in (State.FAILED, State.KILLED)


TERMINAL = frozenset(
    {State.SUCCESS, State.WARNING, State.FAILED, State.KILLED, State.CANCELLED, State.SKIPPED, State.RETRIED}
)

_S = State
#: Allowed moves. Terminal states only move through RESTARTED (restart) or to KILLED/SUCCESS/FAILED/WARNING
#: by an explicit "change state" on a task run, which the engine checks separately.
TRANSITIONS: dict[State, frozenset[State]] = {
    _S.CREATED: frozenset({_S.QUEUED, _S.RUNNING, _S.SKIPPED, _S.KILLED, _S.CANCELLED, _S.FAILED}),
    _S.QUEUED: frozenset({_S.RUNNING, _S.CANCELLED, _S.KILLED, _S.FAILED}),
    # CANCELLED from RUNNING, PAUSED or KILLING: an SLA with behavior CANCEL stops the execution.
    _S.RUNNING: frozenset(
        {_S.PAUSED, _S.RETRYING, _S.KILLING, _S.KILLED, _S.SUCCESS, _S.WARNING, _S.FAILED, _S.SKIPPED, _S.RETRIED}
        | {_S.CANCELLED}
    ),
    _S.PAUSED: frozenset({_S.RUNNING, _S.KILLING, _S.KILLED, _S.SUCCESS, _S.WARNING, _S.FAILED, _S.CANCELLED}),
    _S.RETRYING: frozenset({_S.RUNNING, _S.KILLING, _S.KILLED, _S.FAILED}),
    # QUEUED: a restart over its flow's concurrency limit waits for a slot (admission.admit).
    _S.RESTARTED: frozenset({_S.RUNNING, _S.QUEUED, _S.KILLING, _S.KILLED, _S.FAILED}),
    # FAILED/CANCELLED: an SLA stops it; SUCCESS: an Approval whose approveBehavior is SUCCEED ends it.
    _S.KILLING: frozenset({_S.KILLED, _S.FAILED, _S.CANCELLED, _S.SUCCESS}),
    _S.SUCCESS: frozenset({_S.RESTARTED}),
    _S.WARNING: frozenset({_S.RESTARTED}),
    _S.FAILED: frozenset({_S.RESTARTED, _S.RETRIED, _S.RETRYING}),  # RETRYING: a flowable's retry
    _S.KILLED: frozenset({_S.RESTARTED}),
    _S.CANCELLED: frozenset(),
    _S.SKIPPED: frozenset(),
    _S.RETRIED: frozenset(),
}


def check_transition(subject: str, current: State, requested: State) -> None:
    """Raise IllegalTransition unless the table allows ``current -> requested``."""
    if requested not in TRANSITIONS[current]:
        raise IllegalTransition(subject, current, requested)


# Severity used to combine children into a flowable's state: Kestra takes the worst child.
_SEVERITY = {
    State.KILLED: 5,
    State.FAILED: 4,
    State.WARNING: 3,
    State.PAUSED: 2,
    State.SUCCESS: 1,
    State.SKIPPED: 0,
    State.CANCELLED: 0,
}


def worst_of(states: Iterable[State]) -> State:
    """The combined state of terminal (or paused) children; SUCCESS when there are none."""
    worst = State.SUCCESS
    for state in states:
        if _SEVERITY.get(state, 1) > _SEVERITY[worst]:
            worst = state
    return worst


def apply_allowances(state: State, *, allow_failure: bool, allow_warning: bool) -> State:
    """`allowFailure` turns FAILED into WARNING; `allowWarning` then turns WARNING into SUCCESS."""
    if state is State.FAILED and allow_failure:
        state = State.WARNING
    if state is State.WARNING and allow_warning:
        state = State.SUCCESS
    return state
