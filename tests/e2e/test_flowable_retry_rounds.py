"""A flowable's `retry` retries its failed children in rounds; the errors (and finally) of a failed round go, so
each round runs them afresh and the execution keeps only the last round's (Kestra's
RetryCaseTest#retryWithFlowableErrors: set_kv, the AllowFailure and its retried child are the 3 task runs left)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

ALWAYS_FAILS = """
id: rounds
namespace: {ns}
tasks:
  - id: block
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: child
        type: io.kestra.plugin.core.execution.Fail
    errors:
      - id: on_error
        type: io.kestra.plugin.core.log.Log
        message: "round {{{{ taskrun.attemptsCount }}}}"
    retry:
      type: constant
      behavior: RETRY_FAILED_TASK
      maxAttempts: 3
      interval: PT0.2S
"""


def _runs(execution: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    return [t for t in execution["taskRunList"] if t["taskId"] == task_id]


def test_each_failed_round_runs_the_errors_again_and_only_the_last_rounds_stay(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(ALWAYS_FAILS.format(ns=unique_namespace))

    ended = stack.run_to_end(unique_namespace, "rounds", timeout_s=60)

    assert ended["state"]["current"] == "FAILED"
    [child] = _runs(ended, "child")
    assert [a["state"]["current"] for a in child["attempts"]] == ["FAILED", "FAILED", "FAILED"]
    assert len(_runs(ended, "on_error")) == 1  # the earlier rounds' errors were discarded, not piled up
    assert len(ended["taskRunList"]) == 3
    audit = stack.api.get(f"/executions/{ended['id']}/audit").json()
    assert sum(1 for e in audit["events"] if e["action"] == "task_run.discarded") == 2
