"""Kestra 2 properties of existing types: Pause `onPause`, Parallel/Dag `onChildFailure` refused when unknown."""

from __future__ import annotations

import textwrap

import pytest

from orchestrator.core.errors import FlowInvalid
from orchestrator.core.flow import Flow
from orchestrator.core.parse import parse_flow


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


def test_an_unknown_on_child_failure_is_refused() -> None:
    # What Parallel and Dag do with `onChildFailure` is tested with the other spellings of the rule, in
    # test_child_policy.py (core/child_policy.sibling_rule).
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
