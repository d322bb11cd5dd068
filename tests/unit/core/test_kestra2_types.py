"""Kestra 2 properties of existing types: Pause `onPause`, Parallel/Dag `onChildFailure` and `failFast`."""

from __future__ import annotations

import textwrap

import pytest

from orchestrator.core.errors import FlowInvalid
from orchestrator.core.flow import Flow
from orchestrator.core.parse import parse_flow
from orchestrator.core.states import State
from orchestrator.engine.child_failure import flowable_state, policy


def _flow(body: str) -> Flow:
    return parse_flow("id: f\nnamespace: t\n" + textwrap.dedent(body))


def test_on_pause_is_one_task_read_as_the_pause_s_first_branch() -> None:
    flow = _flow(
        """
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            onPause: {id: notify, type: io.kestra.plugin.core.log.Log, message: paused}
        """
    )

    assert [t.id for t in flow.task("pause").branches["onPause"]] == ["notify"]
    with pytest.raises(FlowInvalid, match="onPause"):
        _flow("tasks: [{id: p, type: io.kestra.plugin.core.flow.Pause, onPause: 3}]")


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ("onChildFailure: FAIL", State.FAILED),
        ("onChildFailure: cancel", State.CANCELLED),
        ("onChildFailure: CONTINUE", None),
        ("failFast: true", State.KILLED),
        ("concurrent: 2", None),
    ],
)
def test_parallel_reads_on_child_failure_and_fail_fast(props: str, expected: State | None) -> None:
    flow = _flow(
        f"""
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            {props}
            tasks: [{{id: a, type: io.kestra.plugin.core.log.Log, message: a}}]
        """
    )

    assert policy(flow.task("parallel")) is expected


def test_a_fail_fast_parallel_ends_failed_not_killed_and_an_unknown_policy_is_refused() -> None:
    fail_fast = _flow(
        """
        tasks:
          - id: p
            type: io.kestra.plugin.core.flow.Parallel
            failFast: true
            tasks: [{id: a, type: io.kestra.plugin.core.log.Log, message: a}]
        """
    ).task("p")

    assert flowable_state(fail_fast, State.KILLED) is State.FAILED
    assert flowable_state(fail_fast, State.SUCCESS) is State.SUCCESS
    with pytest.raises(FlowInvalid, match="onChildFailure"):
        _flow(
            """
            tasks:
              - id: d
                type: io.kestra.plugin.core.flow.Dag
                onChildFailure: EXPLODE
                tasks: [{task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}}]
            """
        )
