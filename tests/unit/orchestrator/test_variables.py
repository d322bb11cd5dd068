"""`vars` is the flow's variables changed, in order, by the SetVariables and UnsetVariables runs that succeeded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.core.parse import parse_flow
from orchestrator.engine.variables import execution_vars, label_variables
from orchestrator.store.tables import TaskRunRow

FLOW = parse_flow(
    """
id: f
namespace: n
variables:
  name: World
  nested: {a: 1}
tasks:
  - id: set
    type: io.kestra.plugin.core.execution.SetVariables
    variables: {name: Ada}
  - id: unset
    type: io.kestra.plugin.core.execution.UnsetVariables
    variables: [nested.a]
  - id: other
    type: io.kestra.plugin.core.debug.Return
    format: x
"""
)


def _run(task_id: str, outputs: dict[str, Any], state: str = "SUCCESS") -> TaskRunRow:
    now = datetime.now(UTC)
    return TaskRunRow(
        id=task_id, execution_id="e", task_id=task_id, state=state, outputs=outputs, created_at=now, updated_at=now
    )


def test_set_then_unset_change_the_flows_variables_in_order() -> None:
    runs = [
        _run("set", {"variables": {"name": "Ada", "nested": {"b": 2}}}),
        _run("unset", {"unset": ["nested.a", "absent"]}),
        _run("other", {"variables": {"name": "ignored"}}),
    ]

    assert execution_vars(FLOW, runs) == {"name": "Ada", "nested": {"b": 2}}


def test_a_failed_set_variables_changes_nothing() -> None:
    assert execution_vars(FLOW, [_run("set", {"variables": {"name": "Ada"}}, state="FAILED")]) == {
        "name": "World",
        "nested": {"a": 1},
    }


def test_system_labels_read_as_labels_system_and_the_first_repeated_key_wins() -> None:
    labels: list[dict[str, Any]] = [
        {"key": "system.correlationId", "value": "E1"},
        {"key": "team", "value": "a"},
        {"key": "team", "value": "b"},
        {"key": "empty", "value": None},
    ]

    assert label_variables(labels) == {"system": {"correlationId": "E1"}, "team": "a"}
