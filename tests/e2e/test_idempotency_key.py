"""`{{ taskrun.idempotencyKey }}` in expressions: the key the task run's side effects carry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.core.ids import idempotency_key
from tests.harness.stack import Stack

SIMPLE = """
id: keyed-simple
namespace: {ns}
tasks:
  - id: key
    type: io.kestra.plugin.core.debug.Return
    format: "{{ taskrun.idempotencyKey }}"
"""


def test_an_expression_reads_the_task_runs_idempotency_key(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SIMPLE)

    execution = stack.wait_for_state(stack.run(unique_namespace, "keyed-simple")["id"])

    assert execution["state"]["current"] == "SUCCESS", execution
    [run] = [t for t in execution["taskRunList"] if t["taskId"] == "key"]
    assert run["outputs"] == {"value": idempotency_key(run["id"])}
