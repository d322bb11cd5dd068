"""Which tasks a ledger replay serves (before `liveFrom` in the flow's order), and how its diff compares outputs."""

from __future__ import annotations

import pytest

from orchestrator.core.parse import parse_flow
from orchestrator.engine.ledger_replay import ReplayInvalid, _placed, check_live_from, is_live

FLOW = parse_flow(
    """
id: f
namespace: n
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: branch
    type: io.kestra.plugin.core.flow.If
    condition: "{{ true }}"
    then:
      - id: inside
        type: io.kestra.plugin.core.debug.Return
        format: two
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: three
errors:
  - id: on-error
    type: io.kestra.plugin.core.debug.Return
    format: oops
"""
)


def test_without_live_from_every_task_is_served() -> None:
    assert [is_live(FLOW, t, None) for t in ("first", "inside", "last", "on-error")] == [False] * 4


def test_live_from_a_flowable_takes_its_children_and_what_follows_live() -> None:
    live = {t.id: is_live(FLOW, t.id, "branch") for t in FLOW.iter_tasks()}

    assert live == {"first": False, "branch": True, "inside": True, "last": True, "on-error": True}


def test_a_task_the_flow_no_longer_has_is_live_never_served() -> None:
    assert is_live(FLOW, "gone", "last") is True


def test_live_from_must_name_a_task_of_the_flow() -> None:
    check_live_from(FLOW, "inside")
    with pytest.raises(ReplayInvalid) as raised:
        check_live_from(FLOW, "nope")
    assert raised.value.path == "liveFrom"
    assert "no task 'nope'" in raised.value.message and "first, branch, inside" in raised.value.message


def test_the_diff_compares_outputs_with_each_executions_own_ids_named() -> None:
    mine = {"toolExecutions": [{"taskRunId": "RUN_A"}], "uri": "kestra:///n/f/executions/EXEC_A/file.txt"}
    theirs = {"toolExecutions": [{"taskRunId": "RUN_B"}], "uri": "kestra:///n/f/executions/EXEC_B/file.txt"}

    named_mine = _placed(mine, {"EXEC_A": "{execution}", "RUN_A": "{taskrun:agent/lookup[0]}"})
    named_theirs = _placed(theirs, {"EXEC_B": "{execution}", "RUN_B": "{taskrun:agent/lookup[0]}"})

    assert named_mine == named_theirs
    assert named_mine["toolExecutions"][0]["taskRunId"] == "{taskrun:agent/lookup[0]}"
