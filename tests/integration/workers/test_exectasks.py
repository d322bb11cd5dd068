"""execution.SetVariables and UnsetVariables: what they output, and when they refuse."""

from __future__ import annotations

from orchestrator.core.states import State
from tests.integration.workers.conftest import Runner, one_task_flow

_VARIABLES = "variables:\n  name: World\n  nested:\n    a: 1\n"


def test_set_variables_outputs_the_rendered_map(run_task: Runner) -> None:
    task = '    type: io.kestra.plugin.core.execution.SetVariables\n    variables:\n      n: "{{ 1 + 1 }}"'

    assert run_task(one_task_flow(task), "t").outputs == {"variables": {"n": "2"}}


def test_set_variables_without_overwrite_refuses_an_existing_name(run_task: Runner) -> None:
    task = (
        "    type: io.kestra.plugin.core.execution.SetVariables\n    overwrite: false\n"
        "    variables:\n      name: Ada\n      other: 1"
    )

    outcome = run_task(one_task_flow(task, extra=_VARIABLES), "t")

    assert outcome.state is State.FAILED
    assert outcome.error == "`overwrite` is set to false and the following variables already exist: name"


def test_unset_variables_fails_on_a_missing_map_unless_ignore_missing(run_task: Runner) -> None:
    task = "    type: io.kestra.plugin.core.execution.UnsetVariables\n    variables: [absent, missing.key]"

    failed = run_task(one_task_flow(task), "t")
    ignored = run_task(one_task_flow(task + "\n    ignoreMissing: true"), "t")

    assert failed.state is State.FAILED
    assert failed.error == "variables not found: missing.key"
    assert ignored.outputs == {"unset": ["absent", "missing.key"]}
