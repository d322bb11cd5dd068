from __future__ import annotations

import pytest

from orchestrator.core.errors import IllegalTransition
from orchestrator.core.states import TERMINAL, TRANSITIONS, State, apply_allowances, check_transition, worst_of


def test_every_state_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize("state", sorted(TERMINAL - {State.RETRIED, State.CANCELLED, State.SKIPPED}))
def test_terminal_states_move_only_through_restart_or_a_retry(state: State) -> None:
    # RETRYING from FAILED: a flowable's retry policy sends its failed children to another attempt.
    assert TRANSITIONS[state] <= {State.RESTARTED, State.RETRIED, State.RETRYING}


def test_an_illegal_transition_names_both_states_and_the_subject() -> None:
    with pytest.raises(IllegalTransition) as raised:
        check_transition("execution abc", State.SUCCESS, State.RUNNING)
    assert (raised.value.subject, raised.value.current, raised.value.requested) == (
        "execution abc",
        State.SUCCESS,
        State.RUNNING,
    )


def test_a_legal_transition_passes() -> None:
    check_transition("task run x", State.RUNNING, State.SUCCESS)


@pytest.mark.parametrize(
    ("children", "expected"),
    [
        ([], State.SUCCESS),
        ([State.SUCCESS, State.SKIPPED], State.SUCCESS),
        ([State.SUCCESS, State.WARNING], State.WARNING),
        ([State.WARNING, State.FAILED, State.SUCCESS], State.FAILED),
        ([State.FAILED, State.KILLED], State.KILLED),
        ([State.PAUSED, State.SUCCESS], State.PAUSED),
    ],
)
def test_a_flowable_takes_the_worst_state_of_its_children(children: list[State], expected: State) -> None:
    assert worst_of(children) is expected


@pytest.mark.parametrize(
    ("state", "allow_failure", "allow_warning", "expected"),
    [
        (State.FAILED, False, False, State.FAILED),
        (State.FAILED, True, False, State.WARNING),
        (State.FAILED, True, True, State.SUCCESS),
        (State.WARNING, False, True, State.SUCCESS),
        (State.SUCCESS, True, True, State.SUCCESS),
    ],
)
def test_allow_failure_and_allow_warning_soften_the_state(
    state: State, allow_failure: bool, allow_warning: bool, expected: State
) -> None:
    assert apply_allowances(state, allow_failure=allow_failure, allow_warning=allow_warning) is expected
