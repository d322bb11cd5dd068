"""The walking skeleton end to end: HTTP -> engine -> Redis -> Celery worker processes -> PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from tests.e2e.conftest import Stack
from tests.harness.services import psycopg_url

LOG_IF_RETURN = """
id: log-if-return
namespace: {ns}
inputs:
  - id: who
    type: STRING
  - id: loud
    type: BOOLEAN
    defaults: false
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.who }}"
  - id: branch
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.loud }}"
    then:
      - id: shout
        type: io.kestra.plugin.core.debug.Return
        format: "{{ inputs.who | upper }}"
    else:
      - id: whisper
        type: io.kestra.plugin.core.debug.Return
        format: "{{ inputs.who | lower }}"
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "done {{ outputs.shout.value ?? outputs.whisper.value }}"
outputs:
  - id: result
    type: STRING
    value: "{{ outputs.last.value }}"
"""


def test_log_if_return_runs_to_success_with_every_task_run_listed(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(LOG_IF_RETURN)
    created = stack.run(unique_namespace, "log-if-return", who="Ada", loud="true")

    execution = stack.wait_for_state(created["id"])

    assert execution["state"]["current"] == "SUCCESS"
    runs = {t["taskId"]: t for t in execution["taskRunList"]}
    assert list(runs) == ["hello", "branch", "shout", "last"]
    assert all(t["state"]["current"] == "SUCCESS" for t in runs.values())
    assert runs["shout"]["parentTaskRunId"] == runs["branch"]["id"]
    assert runs["shout"]["outputs"] == {"value": "ADA"}
    assert execution["outputs"] == {"result": "done ADA"}
    assert execution["inputs"] == {"who": "Ada", "loud": True}
    assert [h["state"] for h in execution["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]


def test_the_else_branch_runs_when_the_condition_is_false(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(LOG_IF_RETURN)
    created = stack.run(unique_namespace, "log-if-return", who="Ada")

    execution = stack.wait_for_state(created["id"])

    assert [t["taskId"] for t in execution["taskRunList"]] == ["hello", "branch", "whisper", "last"]
    assert execution["outputs"] == {"result": "done ada"}


def test_the_log_task_writes_its_rendered_message(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(LOG_IF_RETURN)
    execution = stack.wait_for_state(stack.run(unique_namespace, "log-if-return", who="Ada")["id"])

    logs = stack.api.get(f"/logs/{execution['id']}").json()

    assert [(entry["taskId"], entry["level"], entry["message"]) for entry in logs] == [("hello", "INFO", "Hello Ada")]


def test_the_audit_trail_has_one_verified_event_per_transition(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(LOG_IF_RETURN)
    execution = stack.wait_for_state(stack.run(unique_namespace, "log-if-return", who="Ada", loud="true")["id"])

    audit = stack.api.get(f"/audit/executions/{execution['id']}").json()

    transitions = [e for e in audit["events"] if e["action"] != "task_run.decided"]
    task_run_changes = sum(len(t["state"]["histories"]) for t in execution["taskRunList"])
    execution_changes = len(execution["state"]["histories"])
    assert len(transitions) == task_run_changes + execution_changes
    assert audit["verified"] is True
    with psycopg.connect(psycopg_url(stack.settings.database_url)) as conn:
        rows = conn.execute("SELECT count(*) FROM audit_events WHERE chain_key = %s", (execution["id"],)).fetchone()
    assert rows is not None and rows[0] == len(audit["events"])
