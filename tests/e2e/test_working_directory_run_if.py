"""A WorkingDirectory evaluates its children's runIf itself, as Kestra's WorkingDirectoryTaskProcessor does.

The condition is rendered in the WorkingDirectory's context before the child has a task run: false makes the
child SKIPPED; a condition that cannot be rendered fails the WorkingDirectory, and the child never gets a task
run (WorkingDirectoryTest#invalidRunIf: 2 task runs, FAILED).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

Deploy = Callable[[str], dict[str, Any]]

INVALID_RUN_IF = """
id: working-directory-invalid-runif
namespace: {ns}
tasks:
  - id: workingDirectory
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: s1
        type: io.kestra.plugin.core.debug.Return
        format: 1
      - id: s2
        type: io.kestra.plugin.core.debug.Return
        runIf: "{{ outputs.failed }}"
        format: 2
"""

RUN_IF_SEES_SIBLINGS = """
id: working-directory-runif-siblings
namespace: {ns}
tasks:
  - id: workingDirectory
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: s1
        type: io.kestra.plugin.core.debug.Return
        format: "false"
      - id: s2
        type: io.kestra.plugin.core.debug.Return
        runIf: "{{ outputs.s1.value }}"
        format: skipped
      - id: s3
        type: io.kestra.plugin.core.debug.Return
        runIf: "{{ outputs.s1.value == 'false' }}"
        format: ran
"""


def _states(execution: dict[str, Any]) -> dict[str, str]:
    return {r["taskId"]: r["state"]["current"] for r in execution["taskRunList"]}


def test_a_runif_that_cannot_render_fails_the_working_directory_before_the_child_runs(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    deploy_flow(INVALID_RUN_IF)

    execution = stack.run_to_end(unique_namespace, "working-directory-invalid-runif")

    assert execution["state"]["current"] == "FAILED"
    assert _states(execution) == {"workingDirectory": "FAILED", "s1": "SUCCESS"}
    errors = [line["message"] for line in stack.api.get(f"/logs/{execution['id']}").json() if line["level"] == "ERROR"]
    assert any("runIf of task 's2'" in message for message in errors), errors


def test_a_childs_runif_sees_the_outputs_of_the_children_before_it(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    deploy_flow(RUN_IF_SEES_SIBLINGS)

    execution = stack.run_to_end(unique_namespace, "working-directory-runif-siblings")

    assert execution["state"]["current"] == "SUCCESS"
    assert _states(execution) == {"workingDirectory": "SUCCESS", "s1": "SUCCESS", "s2": "SKIPPED", "s3": "SUCCESS"}
    s3 = next(r for r in execution["taskRunList"] if r["taskId"] == "s3")
    assert s3["outputs"] == {"value": "ran"}
